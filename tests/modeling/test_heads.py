"""The CRF head end to end on a tiny BERT: it trains through seqtag.training.loop.train, the run directory holds a plain
encoder and the transitions file, and `seqtag evaluate` / `seqtag predict` reproduce training's scores exactly,
long sentences (several windows) decoded whole."""

from __future__ import annotations

import json

import pytest
import torch

from seqtag.cli import main
from seqtag.config import from_dict
from seqtag.data.align import encode_sentences
from seqtag.data.schemes import find_problems
from seqtag.errors import DataError
from seqtag.inference.engine import load_finished_run, word_logits
from seqtag.inference.predict import load_tagger
from seqtag.modeling.crf import TRANSITIONS_FILE, load_transitions, save_transitions, viterbi_from_file
from seqtag.modeling.heads import CRFTagger, crf_of, load_crf_tagger, new_crf_tagger
from seqtag.training.loop import param_groups, train
from tests.tiny import sentences, tiny_config, write_config, write_conll


def long_sentence(seed: int) -> list[tuple[str, str]]:
    """Six tiny sentences as one: 24-40 words, more than one 32-subword window."""
    return [pair for s in sentences(6, seed) for pair in s]


@pytest.fixture(scope="module")
def crf_run(tmp_path_factory):
    """A CRF run on the tiny task: 64 training sentences plus 4 long ones (trained as window fragments), and a
    dev set with 2 long sentences."""
    tmp = tmp_path_factory.mktemp("crf")
    raw = tiny_config(tmp, n_train=64, model={"head": "crf"},
                      train={"epochs": 6, "batch_size": 8, "learning_rate": 3e-3})
    raw["data"]["train"] = str(write_conll(tmp / "train_long.txt", sentences(64, 1) + [long_sentence(s) for s in range(4)]))
    raw["data"]["dev"] = str(write_conll(tmp / "dev_long.txt", sentences(7, 2) + [long_sentence(10), long_sentence(11)]))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = train(from_dict(raw))
    finally:
        torch.set_num_threads(threads)
    return raw, run


def test_crf_run_learns_and_records_its_head(crf_run):
    raw, run = crf_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dev"]["f1"] >= 0.9 and metrics["test"]["f1"] >= 0.9  # measured: 1.0 and 1.0
    assert metrics["dev"]["invalid_sequences"] == 0
    steps = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines() if '"type": "step"' in x]
    assert steps[-1]["loss"] < 0.3 * steps[0]["loss"]
    info = json.loads((run / "run_info.json").read_text())
    assert (info["model_head"], info["decoding"], info["windows"]["dev"]["windowed"]) == ("crf", "viterbi", 2)
    assert info["windows"]["train"]["windowed"] == 3  # three of the four long sentences need two windows


def test_run_directory_is_a_plain_encoder_and_the_transitions_file(crf_run):
    from safetensors.torch import load_file
    from transformers import AutoModelForTokenClassification

    _, run = crf_run
    config = json.loads((run / "config.json").read_text())
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    assert not any(k.startswith(("crf.", "encoder.")) for k in load_file(str(run / "model.safetensors")))
    AutoModelForTokenClassification.from_pretrained(str(run))  # loads as a plain token classifier
    saved_labels, trans, start, end = load_transitions(run / TRANSITIONS_FILE, labels)
    assert saved_labels == labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert torch.isneginf(trans[0, labels.index("I-PER")]) and torch.isneginf(start[labels.index("I-LOC")])
    learned = trans[torch.isfinite(trans)]
    assert learned.abs().max() > 0.1  # moved from 0 at train.crf_learning_rate
    # the reloaded model holds exactly the scores training evaluated with
    finished = load_finished_run(run, device="cpu")
    assert isinstance(finished.model, CRFTagger) and finished.labels == labels
    for got, want in zip(crf_of(finished.model).scores(), (trans, start, end)):
        assert torch.equal(got.detach(), want)


def test_transitions_of_other_labels_are_refused(crf_run, tmp_path):
    from transformers import AutoModelForTokenClassification

    _, run = crf_run
    encoder = AutoModelForTokenClassification.from_pretrained(str(run))
    tagger = load_crf_tagger(encoder, run, ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"])
    save_transitions(tmp_path / TRANSITIONS_FILE, tagger.crf, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    with pytest.raises(DataError, match="indexes the labels .* but the model has"):
        load_crf_tagger(encoder, tmp_path, tagger.labels)
    with pytest.raises(DataError, match="indexes the labels"):
        tagger.load_transitions(tmp_path / TRANSITIONS_FILE)


@pytest.mark.parametrize("decoding", ["argmax", "viterbi"])
def test_evaluate_and_predict_reproduce_trainings_dev_scores(crf_run, tmp_path, decoding, capsys):
    raw, run = crf_run
    dev = raw["data"]["dev"]
    metrics = tmp_path / "m.json"
    assert main(["evaluate", str(run), "--data", dev, "--output", str(metrics), "--predictions",
                 str(tmp_path / "p.txt"), "--decoding", decoding]) == 0
    got = json.loads(metrics.read_text())
    if decoding == "viterbi":  # training evaluated with the run's predict.decoding (viterbi, a CRF run's default)
        assert got == json.loads((run / "metrics.json").read_text())["dev"]
    rows = [r.split("\n") for r in (tmp_path / "p.txt").read_text().strip().split("\n\n")]
    evaluated = [[line.split()[2] for line in r] for r in rows]
    assert main(["predict", str(run), "--input", dev, "--input-format", "conll", "--output",
                 str(tmp_path / "pred.jsonl"), "--decoding", decoding]) == 0
    predicted = [json.loads(line)["tags"] for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert predicted == evaluated and len(predicted) == 9
    assert all(not find_problems(tags, "IOB2") for tags in predicted) or decoding == "argmax"


def test_a_sentence_longer_than_a_window_is_decoded_whole(crf_run):
    raw, run = crf_run
    words = [[w for w, _ in long_sentence(seed)] for seed in (20, 21, 22)]
    tagger = load_tagger(run, decoding="viterbi", device="cpu")
    enc = encode_sentences(tagger.tokenizer, words, None, max_length=tagger.max_length, stride=tagger.stride)
    assert min(enc["num_windows"]) >= 2
    tagged = [tags for tags, _ in tagger.tag(words)]
    emissions = word_logits(tagger.model, enc, [len(w) for w in words], tagger.tokenizer.pad_token_id, batch_size=8)
    crf = crf_of(tagger.model)
    for x, tags in zip(emissions, tagged):
        whole = crf.decode(torch.from_numpy(x)[None], torch.ones(1, len(x), dtype=torch.bool))[0]
        assert tags == [tagger.labels[i] for i in whole]  # one Viterbi over the merged words of all windows
        assert not find_problems(tags, "IOB2")
    gold = [[t for _, t in long_sentence(seed)] for seed in (20, 21, 22)]
    assert sum(a == b for g, p in zip(gold, tagged) for a, b in zip(g, p)) >= 0.95 * sum(map(len, gold))


def test_the_model_cards_plain_pytorch_decoding_equals_seqtags(crf_run):
    """What a model card tells transformers users: the plain encoder's logits at first subwords, then Viterbi
    with the transitions file (seqtag.modeling.crf.viterbi_from_file), give seqtag's Viterbi tags."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    _, run = crf_run
    tokenizer, model = AutoTokenizer.from_pretrained(str(run)), AutoModelForTokenClassification.from_pretrained(str(run))
    sents = [[w for w, _ in s] for s in sentences(12, seed=30)]
    expected = [tags for tags, _ in load_tagger(run, decoding="viterbi", device="cpu").tag(sents)]
    for words, tags in zip(sents, expected):
        enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits[0]
        ids = enc.word_ids()
        x = logits[[i for i, w in enumerate(ids) if w is not None and (i == 0 or ids[i - 1] != w)]]
        assert viterbi_from_file(run / TRANSITIONS_FILE, x) == tags


def test_crf_scores_train_at_their_own_rate_without_weight_decay(tmp_path):
    from transformers import BertConfig, BertForTokenClassification

    encoder = BertForTokenClassification(BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1,
                                                    num_attention_heads=1, intermediate_size=8, num_labels=3))
    model = new_crf_tagger(encoder, ["O", "B-X", "I-X"], "IOB2")
    groups = param_groups(model, 0.01, crf_learning_rate=0.05)
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0, 0.0]
    assert groups[2]["params"] == list(model.crf.parameters()) and groups[2]["lr"] == 0.05
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    plain = param_groups(encoder, 0.01, crf_learning_rate=0.05)  # a linear head: two groups, as before
    assert len(plain) == 2 and all("lr" not in g for g in plain)
    out = model(input_ids=torch.tensor([[1, 2, 3]]))
    assert out.logits.shape == (1, 3, 3)
    model.save_pretrained(tmp_path)
    assert (tmp_path / TRANSITIONS_FILE).is_file() and (tmp_path / "model.safetensors").is_file()


def test_crf_config_written_by_the_run_reloads(crf_run, tmp_path):
    """The saved config resolves to the same head (used by evaluate/predict to rebuild the model)."""
    raw, run = crf_run
    # the run's own directory holds the run, so validating its config for a new start names train.overwrite
    assert main(["validate", str(run / "seqtag_config.yaml")]) == 2
    assert main(["validate", str(run / "seqtag_config.yaml"), "train.overwrite=true"]) == 0
    path = write_config(tmp_path / "c.yaml", {**raw, "loss": {"name": "focal", "gamma": 2}})
    assert main(["validate", str(path)]) == 2


def test_the_card_of_a_crf_run_says_what_pipeline_does_and_its_code_decodes_like_seqtag(crf_run, capsys):
    """The card's CRF section runs as printed (the Hub download replaced by the local file) and prints seqtag's
    Viterbi tags for its example sentence."""
    import re
    import sys
    import types

    from seqtag.publish.card import render_card

    _, run = crf_run
    card = render_card(run, repo_id="alice/tiny-crf")
    assert "## This model has a CRF head" in card and "`transformers.pipeline()` ignores the CRF" in card
    code = re.search(r"## This model has a CRF head.*?```python\n(.*?)```", card, re.S).group(1)
    fake_hub = types.ModuleType("huggingface_hub")
    fake_hub.hf_hub_download = lambda repo, name: str(run / name)
    code = code.replace('repo = "alice/tiny-crf"', f"repo = {str(run)!r}")
    saved = sys.modules.get("huggingface_hub")
    sys.modules["huggingface_hub"] = fake_hub
    try:
        exec(compile(code, "card", "exec"), {})
    finally:
        sys.modules["huggingface_hub"] = saved
    printed = capsys.readouterr().out.strip()
    (expected, _), = load_tagger(run, decoding="viterbi", device="cpu").tag([["Barack", "Obama", "visited", "Paris", "."]])
    assert printed == str(expected)
