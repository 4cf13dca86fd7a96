"""The real MiniLM BERT on real CoNLL-2003: it learns, evaluate reproduces training, predict equals the pipeline.

One short CPU run (2,000 training sentences, one epoch, the config's precision: auto; about 1-2 minutes on 2
cores) is shared by the tests of this module.
"""

import json

import pytest

from seqtag.cli import main
from seqtag.config import load_config
from seqtag.data.conll import read_conll

pytestmark = pytest.mark.slow

# Measured on this project's 2-core CPU machine (seed 42): dev F1 0.625 on the first 500 dev sentences.
# Chance is ~0 (an untrained head predicts O or noise); the threshold leaves room for other CPUs' bf16 kernels.
MIN_DEV_F1 = 0.45


@pytest.fixture(scope="module")
def conll_run(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("conll") / "run"
    conll = shared_data / "conll2003"
    rc = main(["train", "configs/conll2003_local.yaml", f"data.train={conll / 'train.txt'}",
               f"data.dev={conll / 'dev.txt'}", "data.test=null", "data.max_train_examples=2000",
               "data.max_eval_examples=500", "train.epochs=1", "train.learning_rate=2e-4", "train.plot=true",
               f"train.output_dir={out}"])
    assert rc == 0
    return out


def test_learns_entities(conll_run):
    metrics = json.loads((conll_run / "metrics.json").read_text())["dev"]
    assert metrics["f1"] >= MIN_DEV_F1
    assert metrics["per_type"]["PER"]["f1"] > 0.7  # the easiest type is clearly learnt
    assert set(metrics["per_type"]) == {"PER", "LOC", "ORG", "MISC"}
    info = json.loads((conll_run / "run_info.json").read_text())
    assert info["status"] == "finished" and info["global_steps"] == 63 and info["train_examples"] == 2000
    assert (conll_run / "model.safetensors").is_file() and (conll_run / "training_curves.png").stat().st_size > 5000
    cfg = json.loads((conll_run / "config.json").read_text())
    assert cfg["id2label"]["0"] == "O" and len(cfg["id2label"]) == 9


def test_evaluate_reproduces_training_metrics(conll_run, shared_data, tmp_path):
    dev = tmp_path / "dev500.txt"
    sents = read_conll(shared_data / "conll2003" / "dev.txt", tag_column=3)[:500]
    dev.write_text("\n\n".join("\n".join(f"{w} _ _ {t}" for w, t in zip(s.tokens, s.tags)) for s in sents) + "\n")
    out = tmp_path / "m.json"
    assert main(["evaluate", str(conll_run), "--data", str(dev), "--output", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads((conll_run / "metrics.json").read_text())["dev"]


def test_predict_equals_plain_transformers_pipeline(conll_run, shared_data, tmp_path):
    from transformers import pipeline

    sents = read_conll(shared_data / "conll2003" / "dev.txt", tag_column=3)[500:650]
    texts = [" ".join(s.tokens) for s in sents]
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(texts) + "\n")
    out = tmp_path / "pred.jsonl"
    # pipeline() decodes word by word: seqtag's argmax decoding (the default is the scheme-constrained Viterbi)
    assert main(["predict", str(conll_run), "--input", str(src), "--output", str(out), "--decoding", "argmax"]) == 0
    ours = [{(e["type"], e["start"], e["end"]) for e in json.loads(line)["entities"]}
            for line in out.read_text().splitlines()]
    assert len(ours) == len(texts) and sum(map(len, ours)) > 100
    strategy = "first"  # what the model card recommends for first-subword training
    ner = pipeline("token-classification", model=str(conll_run), aggregation_strategy=strategy)
    theirs = [{(e["entity_group"], e["start"], e["end"]) for e in ner(t)} for t in texts]
    assert ours == theirs
    assert load_config(conll_run / "seqtag_config.yaml").data.label_all_tokens is False
