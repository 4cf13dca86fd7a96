"""Tests for seqtag.tasks.qa: the masked pointer loss for every registry loss, both heads on the real training
loop (a tiny random BERT that learns a toy QA task), evaluate/predict on finished runs, the shipped configs, and
(slow) MiniLM on a slice of the SQuAD v1.1 dev-set article split."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from seqtag.config import from_dict, load_config
from seqtag.errors import ConfigError, DataError
from seqtag.losses import LOSSES, get_loss
from seqtag.tasks.qa import _NEG_INF_SAFE, masked_position_loss, neg_inf_safe, read_split
from tests.shared import shared_file

REPO = Path(__file__).resolve().parents[2]

# every registry loss at its defaults, plus the parameter values that change how it treats masked classes
LOSS_CASES = [(name, {}) for name in sorted(LOSSES) if LOSSES[name].kind == "token"] + [
    ("cross_entropy", {"label_smoothing": 0.1}),
    ("focal", {"gamma": 0.0}),
    ("lstar", {"k": 0.0}),
    ("lstar", {"k": 3.0}),
    ("dice", {"alpha": 0.0}),
]


# ---------------------------------------------------------------------------------------------------------------
# the masked pointer loss


def _pointer_batch(seed: int = 0, dtype=torch.float32):
    """Logits (4, 9) with padding, question and context positions; targets at [CLS] or a context token."""
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(4, 9, generator=g)).to(dtype)
    allowed = torch.zeros(4, 9, dtype=torch.bool)
    allowed[:, 0] = True  # [CLS]
    allowed[0, 3:8] = True
    allowed[1, 4:9] = True
    allowed[2, 2:5] = True  # a short window followed by padding
    allowed[3, 5:6] = True  # one context token
    targets = torch.tensor([5, 0, 4, 5])
    return logits, targets, allowed


def _rowwise_reference(loss, logits, targets, allowed):
    """The definition: per row, the loss over the allowed positions only (target index counted among them)."""
    total = 0.0
    for i in range(len(targets)):
        positions = [t for t in range(logits.shape[1]) if allowed[i, t]]
        row = logits[i, positions][None]
        total = total + loss(row, torch.tensor([positions.index(int(targets[i]))]), reduction="sum")
    return total


@pytest.mark.parametrize("name,params", LOSS_CASES, ids=[f"{n}{p or ''}" for n, p in LOSS_CASES])
def test_masked_pointer_loss_equals_loss_on_unmasked_positions(name, params):
    loss = get_loss(name, **params)
    logits, targets, allowed = _pointer_batch()
    x = logits.clone().double().requires_grad_()
    got = masked_position_loss(loss, x, targets, allowed)
    got.backward()
    x_ref = logits.clone().double().requires_grad_()
    ref = _rowwise_reference(loss, x_ref, targets, allowed)
    ref.backward()
    assert torch.isfinite(got) and got.item() == pytest.approx(ref.item(), rel=1e-9, abs=1e-12)
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-9, atol=1e-12)
    assert (x.grad[~allowed] == 0).all()  # a masked position is no class: no gradient at all


def test_masked_pointer_loss_in_bf16_matches_float32():
    logits, targets, allowed = _pointer_batch(seed=1, dtype=torch.bfloat16)
    for name, params in (("cross_entropy", {}), ("cross_entropy", {"label_smoothing": 0.1})):  # -inf path, row by row
        loss = get_loss(name, **params)
        got = masked_position_loss(loss, logits, targets, allowed)
        ref = _rowwise_reference(loss, logits.float(), targets, allowed)
        assert got.dtype == torch.float32 and got.item() == pytest.approx(ref.item(), rel=1e-6)


def test_which_losses_take_minus_infinity():
    """Pins what the report says: the -inf path is exact for the listed losses, and wrong for the others."""
    logits, targets, allowed = _pointer_batch(seed=2)
    masked = logits.masked_fill(~allowed, float("-inf"))
    for name, params in LOSS_CASES:
        loss = get_loss(name, **params)
        direct = loss(masked, targets, reduction="sum")
        ref = _rowwise_reference(loss, logits, targets, allowed)
        exact = bool(torch.isfinite(direct)) and abs(direct.item() - ref.item()) < 1e-4 * max(1.0, ref.item())
        assert exact == neg_inf_safe(loss), (name, params, direct.item(), ref.item())
    # lstar treats a -inf class as absent (its softmax(-k x) weight would otherwise be +inf there); label
    # smoothing sums -log p_j over all classes, so it stays +inf with a masked class and goes row by row
    torch.testing.assert_close(get_loss("lstar")(masked, targets, reduction="sum"),
                               _rowwise_reference(get_loss("lstar"), logits, targets, allowed))
    torch.testing.assert_close(get_loss("lstar", k=0.0)(masked, targets, reduction="sum"),
                               _rowwise_reference(get_loss("lstar", k=0.0), logits, targets, allowed))
    assert get_loss("cross_entropy", label_smoothing=0.1)(masked, targets, reduction="sum").item() == float("inf")
    assert set(_NEG_INF_SAFE) == {"cross_entropy", "focal", "hard_truncation", "lstar", "lstar_logodds", "dice"}


def test_masked_pointer_loss_rejects_a_masked_target():
    logits, targets, allowed = _pointer_batch()
    with pytest.raises(ValueError, match="target position is masked"):
        masked_position_loss(get_loss("cross_entropy"), logits, torch.tensor([1, 0, 4, 5]), allowed)


def test_pointer_loss_step_checks_start_and_end_targets_at_once():
    from seqtag.tasks.qa import pointer_loss_step

    def model(**inputs):
        logits = torch.arange(12.0).reshape(2, 6)
        return SimpleNamespace(start_logits=logits, end_logits=-logits)

    ctx = torch.tensor([[0, 0, 1, 1, 1, 0]] * 2)
    batch = {"input_ids": torch.ones(2, 6, dtype=torch.long), "attention_mask": torch.ones(2, 6, dtype=torch.long),
             "context_mask": ctx, "start_positions": torch.tensor([2, 0]), "end_positions": torch.tensor([4, 0])}
    loss_sum, n, _, _ = pointer_loss_step(model, batch, get_loss("cross_entropy"))
    allowed = [0, 2, 3, 4]  # [CLS] and the context
    x = torch.arange(12.0).reshape(2, 6)[:, allowed]
    expected = (F.cross_entropy(x, torch.tensor([1, 0]), reduction="sum")
                + F.cross_entropy(-x, torch.tensor([3, 0]), reduction="sum")) / 2
    assert n == 2 and loss_sum.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="target position is masked"):  # an end on a question token
        pointer_loss_step(model, {**batch, "end_positions": torch.tensor([4, 1])}, get_loss("cross_entropy"))


# ---------------------------------------------------------------------------------------------------------------
# a toy QA task: the answer is the word after "is"

FILL = "we saw that there a and then it so too".split()
SUBJECTS = [("sky", "blue"), ("car", "red"), ("cat", "small"), ("door", "open"), ("tea", "hot"), ("road", "long"),
            ("box", "empty"), ("king", "old")]


def toy_records() -> list[dict]:
    """8 questions "what is the X ?" about contexts "... the X is Y ..." (Y the answer) at varied positions; at
    max_length 32 six of them need 2 or 3 windows (15 in all)."""
    recs = []
    for i, (subject, answer) in enumerate(SUBJECTS):
        pre = " ".join(FILL[(3 * i + j) % len(FILL)] for j in range(2 + 3 * i + (20 if i == 3 else 0)))
        post = " ".join(FILL[(5 * i + j) % len(FILL)] for j in range(14 - i))
        ctx = f"{pre} the {subject} is {answer} {post} ."
        recs.append({"id": f"q{i}", "question": f"what is the {subject} ?", "context": ctx,
                     "answers": {"text": [answer], "answer_start": [ctx.index(f" is {answer} ") + 4]}})
    return recs


def toy_squad(recs: list[dict]) -> dict:
    """The same questions as SQuAD v1.1 JSON: two articles of four paragraphs."""
    def para(r):
        return {"context": r["context"], "qas": [{"id": r["id"], "question": r["question"], "answers": [
            {"text": t, "answer_start": s} for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"], strict=True)]}]}
    return {"version": "1.1", "data": [{"title": f"a{k}", "paragraphs": [para(r) for r in recs[4 * k: 4 * k + 4]]}
                                       for k in range(2)]}


def make_tiny_model(path: Path, words: set[str]) -> Path:
    """A random 2-layer BERT (hidden 32) and a WordPiece tokenizer over ``words``, saved in ``path``."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(path / "vocab.txt"))
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def toy_config(model_dir: Path, data: dict, out: Path, head: str, epochs: int, lr: float, **loss) -> dict:
    return {
        "task": "qa", "model": {"name_or_path": str(model_dir)}, "loss": {"name": "cross_entropy", **loss},
        "data": {**data, "qa_head": head, "max_length": 32, "doc_stride": 8, "stride": 4},
        "train": {"output_dir": str(out), "epochs": epochs, "batch_size": 4, "eval_batch_size": 16,
                  "learning_rate": lr, "warmup_ratio": 0.0, "seed": 0, "plot": False, "save_every_epoch": False},
    }


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy data as JSONL and SQuAD JSON, a tiny model, and two finished runs: pointer (trained and scored on
    the SQuAD file through article ranges) and tagging (on the JSONL file)."""
    from seqtag.training.loop import train

    root = tmp_path_factory.mktemp("qa_toy")
    recs = toy_records()
    jsonl = root / "toy.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    squad = root / "toy.json"
    squad.write_text(json.dumps(toy_squad(recs)), encoding="utf-8")
    words = {w for r in recs for w in (r["question"] + " " + r["context"]).split()}
    model_dir = make_tiny_model(root / "base", words)
    squad_data = {"format": "squad", "train": str(squad), "train_articles": [0, 2], "dev": str(squad),
                  "dev_articles": [0, 2]}
    cfgs = {
        "pointer": toy_config(model_dir, squad_data, root / "pointer", "pointer", epochs=12, lr=1e-3),
        "tagging": toy_config(model_dir, {"train": str(jsonl), "dev": str(jsonl)}, root / "tagging", "tagging",
                              epochs=20, lr=2e-3),
    }
    runs, seconds = {}, {}
    for head, raw in cfgs.items():
        t0 = time.time()
        runs[head] = train(from_dict(raw))
        seconds[head] = time.time() - t0
    return SimpleNamespace(root=root, recs=recs, jsonl=jsonl, squad=squad, model_dir=model_dir, cfgs=cfgs,
                           runs=runs, seconds=seconds)  # seconds: 2-13 s per run measured on 2 shared cores


def _expected_windows(toy, max_length: int = 32, doc_stride: int = 8) -> int:
    """Windows by arithmetic: ``room`` context tokens per window, ``room - doc_stride`` new ones per extra window."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(toy.model_dir))
    total = 0
    for r in toy.recs:
        room = max_length - 3 - len(tok.tokenize(r["question"]))
        n = len(tok.tokenize(r["context"]))
        total += 1 if n <= room else 1 + math.ceil((n - room) / (room - doc_stride))
    return total


def _untrained_em(toy, head: str) -> float:
    """Dev EM of the freshly initialised model (same seed as training): what training has to beat."""
    from accelerate.utils import set_seed

    from seqtag.modeling.accel import make_accelerator
    from seqtag.modeling.loading import load_tokenizer
    from seqtag.tasks.qa import setup

    cfg = from_dict(toy.cfgs[head])
    accelerator = make_accelerator("no", 1)
    set_seed(0)
    task = setup(cfg, load_tokenizer(cfg.model), accelerator)
    return task.evaluate(accelerator.prepare(task.model), "dev", accelerator, 16)["exact_match"]


@pytest.mark.parametrize("head", ["pointer", "tagging"])
def test_training_learns_the_toy_task(toy, head):
    metrics = json.loads((toy.runs[head] / "metrics.json").read_text())
    assert set(metrics) == {"dev"} and set(metrics["dev"]) == {"exact_match", "f1"}
    # measured: EM 1.0 for both heads (pointer from epoch 7 of 12, tagging from epoch 6 of 20); untrained: 0.0
    assert metrics["dev"]["exact_match"] >= 0.875 and metrics["dev"]["f1"] >= 0.875
    assert _untrained_em(toy, head) <= 0.25
    info = json.loads((toy.runs[head] / "run_info.json").read_text())
    assert info["status"] == "finished" and info["head"] == head
    assert info["train_examples"] == 8
    windows = {"examples": 8, "windowed": 6, "windows": 15}  # measured: 6 of the 8 contexts need 2-3 windows
    assert info["windows"] == {"train": windows, "dev": windows}
    assert _expected_windows(toy) == 15
    assert (info["max_length"], info["doc_stride"]) == (32, 8)
    if head == "tagging":
        assert info["labels"] == ["O", "B-ANS", "I-ANS"]
        config = json.loads((toy.runs[head] / "config.json").read_text())
        assert config["id2label"] == {"0": "O", "1": "B-ANS", "2": "I-ANS"}


@pytest.mark.parametrize("head,data", [("pointer", "squad"), ("tagging", "jsonl")])
def test_evaluate_run_reproduces_training_metrics(toy, head, data):
    from seqtag.tasks.evaluate import evaluate_run

    metrics = json.loads((toy.runs[head] / "metrics.json").read_text())["dev"]
    result = evaluate_run(toy.runs[head], str(getattr(toy, data)))
    assert result.scores.to_dict() == metrics
    # an independent count: exact string matches of the gold answers
    gold = {r["id"]: r["answers"]["text"][0] for r in toy.recs}
    answers = result.predictions
    assert set(answers) == set(gold)
    exact = sum(answers[q] == gold[q] for q in gold) / len(gold)
    assert exact == pytest.approx(result.scores.exact_match)


def test_predict_cli_single_and_jsonl(toy, tmp_path, capsys):
    from seqtag.cli import main

    rec = toy.recs[2]
    assert main(["predict", str(toy.runs["pointer"]), "--question", rec["question"], "--context", rec["context"],
                 "--batch-size", "8"]) == 0
    out = json.loads(capsys.readouterr().out)
    start = rec["answers"]["answer_start"][0]
    assert out["answer"] == "small" and (out["start"], out["end"]) == (start, start + len("small"))
    assert rec["context"][out["start"]:out["end"]] == out["answer"] and isinstance(out["score"], float)

    inp = tmp_path / "questions.jsonl"
    inp.write_text("".join(json.dumps({k: r[k] for k in ("id", "question", "context")}) + "\n" for r in toy.recs)
                   + json.dumps({"question": "what is the tea ?", "context": "it so the tea is hot ."}) + "\n")
    for head in ("pointer", "tagging"):
        dest = tmp_path / f"answers-{head}.jsonl"
        assert main(["predict", str(toy.runs[head]), "--input", str(inp), "--output", str(dest),
                     "--batch-size", "3", "--max-tokens", "40"]) == 0
        rows = [json.loads(line) for line in dest.read_text().splitlines()]
        assert [r.get("id") for r in rows] == [r["id"] for r in toy.recs] + [None]
        assert sum(r["answer"] == g["answers"]["text"][0] for r, g in zip(rows, toy.recs, strict=False)) >= 7
        assert all(set(r) >= {"answer", "score", "start", "end", "question"} for r in rows)
        assert not list(tmp_path.glob(".*partial"))

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n')
    assert main(["predict", str(toy.runs["pointer"]), "--input", str(bad)]) == 2
    assert re.search(r"bad.jsonl:1: .*'question' and 'context'", capsys.readouterr().err)
    for flags in (["--input", str(inp), "--input-format", "conll"], ["--input", str(inp), "--output-format", "conll"],
                  ["--text", "x"]):  # NER-only flags
        assert main(["predict", str(toy.runs["pointer"]), *flags]) == 2
        assert "NER" in capsys.readouterr().err


def _plain_transformers_answer(run_dir: Path, question: str, context: str) -> str:
    """What the question-answering pipeline computes, with nothing from seqtag: the span (i <= j < i + 30) of
    context tokens maximising start_logit[i] + end_logit[j]."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(run_dir))
    model = AutoModelForQuestionAnswering.from_pretrained(str(run_dir)).eval()
    enc = tok(question, context, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    seq = enc.sequence_ids(0)
    with torch.no_grad():
        out = model(**enc)
    s, e = out.start_logits[0].tolist(), out.end_logits[0].tolist()
    ctx = [t for t, q in enumerate(seq) if q == 1]
    i, j = max(((i, j) for i in ctx for j in ctx if i <= j < i + 30), key=lambda p: s[p[0]] + e[p[1]])
    return context[offsets[i][0]:offsets[j][1]]


def test_pointer_run_is_a_plain_transformers_qa_model(toy, capsys):
    from transformers import pipelines

    from seqtag.cli import main

    run_dir = toy.runs["pointer"]
    short = [{"question": "what is the tea ?", "context": "it so the tea is hot ."},
             {"question": "what is the box ?", "context": "we saw that the box is empty and then it so too ."},
             {"question": "what is the door ?", "context": "the door is open ."}]
    for rec in toy.recs[:2] + short:  # questions and contexts that fit one window of 32 tokens
        assert main(["predict", str(run_dir), "--question", rec["question"], "--context", rec["context"]]) == 0
        ours = json.loads(capsys.readouterr().out)["answer"]
        if "question-answering" in getattr(pipelines, "SUPPORTED_TASKS", {}):  # transformers < 5 only
            qa = pipelines.pipeline("question-answering", model=str(run_dir), tokenizer=str(run_dir))
            assert qa(question=rec["question"], context=rec["context"])["answer"] == ours
        assert _plain_transformers_answer(run_dir, rec["question"], rec["context"]) == ours


# ---------------------------------------------------------------------------------------------------------------
# data and configuration errors


def test_read_split_selects_article_ranges(toy):
    raw = toy_config(toy.model_dir, {"format": "squad", "train": str(toy.squad), "train_articles": [0, 1],
                                     "dev": str(toy.squad), "dev_articles": [1, 2]}, toy.root / "x", "pointer", 1, 1e-3)
    data = from_dict(raw).data
    cache: dict = {}
    train, train_articles = read_split(data, "train", cache)
    dev, dev_articles = read_split(data, "dev", cache)
    assert [ex.id for ex in train] == ["q0", "q1", "q2", "q3"] and [ex.id for ex in dev] == ["q4", "q5", "q6", "q7"]
    assert [a["title"] for a in train_articles] == ["a0"] and [a["title"] for a in dev_articles] == ["a1"]
    assert len(cache) == 1  # the file is parsed once
    raw["data"]["dev_articles"] = [1, 3]
    with pytest.raises(ConfigError, match=r"dev_articles=\[1, 3\] but .* has 2 articles"):
        read_split(from_dict(raw).data, "dev")
    raw["data"].update(dev=str(toy.jsonl), format="auto", dev_articles=[0, 1])
    with pytest.raises(ConfigError, match="dev_articles selects articles of a SQuAD file"):
        read_split(from_dict(raw).data, "dev")
    raw["data"].update(dev=str(toy.root / "missing.json"), dev_articles=None)
    with pytest.raises(DataError, match="missing.json does not exist"):
        read_split(from_dict(raw).data, "dev")


def test_max_eval_examples_scores_only_the_kept_questions(toy):
    from seqtag.modeling.accel import make_accelerator
    from seqtag.modeling.loading import load_tokenizer
    from seqtag.tasks.qa import setup

    raw = dict(toy.cfgs["pointer"])
    raw["data"] = {**raw["data"], "max_train_examples": 3, "max_eval_examples": 2}
    raw["model"] = {"name_or_path": str(toy.runs["pointer"])}  # the trained run: both kept questions right
    cfg = from_dict(raw)
    accelerator = make_accelerator("no", 1)
    task = setup(cfg, load_tokenizer(cfg.model), accelerator)
    assert {k: w.examples for k, w in task.info["windows"].items()} == {"train": 3, "dev": 2}
    assert task.info["train_examples"] == 3
    # over the 2 kept questions (the 6 others would count as missing, 0 each, if scored over the articles)
    assert task.evaluate(accelerator.prepare(task.model), "dev", accelerator, 4) == {"exact_match": 1.0,
                                                                                       "f1": 1.0}


def test_evaluate_keeps_max_eval_examples_questions(toy):
    """seqtag evaluate cuts a QA file as training cut its dev split: the first data.max_eval_examples questions,
    scored over themselves, not over the articles they come from."""
    from seqtag.tasks.evaluate import evaluate_run

    whole = evaluate_run(toy.runs["pointer"], str(toy.squad))
    cut = evaluate_run(toy.runs["pointer"], str(toy.squad), overrides=["data.max_eval_examples=2"])
    assert len(whole.predictions) == len(toy.recs) > 2
    assert list(cut.predictions) == list(whole.predictions)[:2]
    gold = {r["id"]: r["answers"]["text"][0] for r in toy.recs}
    assert cut.scores.exact_match == pytest.approx(sum(cut.predictions[q] == gold[q] for q in cut.predictions) / 2)


def test_evaluate_split_of_a_qa_run_reads_its_article_range(toy, tmp_path):
    """The pointer run's dev split is articles [0, 2) of the SQuAD file and it has no test split."""
    from seqtag.runs import CONFIG_FILE
    from seqtag.tasks.evaluate import evaluate_run

    run = toy.runs["pointer"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert evaluate_run(run, split="dev").scores.to_dict() == metrics["dev"]
    first = evaluate_run(run, split="dev", overrides=["data.dev_articles=[0, 1]"])
    article = tmp_path / "article1.json"
    article.write_text(json.dumps({**toy_squad(toy.recs), "data": toy_squad(toy.recs)["data"][:1]}), encoding="utf-8")
    assert first.scores.to_dict() == evaluate_run(run, article).scores.to_dict()
    assert set(first.predictions) == {"q0", "q1", "q2", "q3"}
    with pytest.raises(ConfigError) as err:
        evaluate_run(run, split="test")
    assert str(err.value) == (f"--split test: data.test is null in {run / CONFIG_FILE}, so the run has no test split "
                              "to score; score a labelled file with --data FILE instead")


def test_evaluate_of_a_squad_v11_run_on_unanswerable_questions_says_what_the_setting_does(toy, tmp_path):
    """A run trained without data.allow_unanswerable recorded no threshold: evaluate's message says the file would be
    scored at the default 0.5, not at a threshold tuned on dev, and with the setting it is."""
    from seqtag.tasks.evaluate import evaluate_run

    data = toy_squad(toy.recs)
    data["data"][0]["paragraphs"][0]["qas"].append({"id": "n0", "question": "what is the box ?", "answers": []})
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError) as err:
        evaluate_run(toy.runs["pointer"], path)
    message = str(err.value)
    assert message == (
        f"{path}: 1 of 9 questions have no answer (first: 'n0'), as in SQuAD 2.0; this run reads SQuAD v1.1, where "
        "every question has one. To score them, add data.allow_unanswerable=true: evaluate tunes no threshold and "
        "scores them with the SQuAD 2.0 evaluator at the default no-answer threshold 0.5 (--null-threshold P sets "
        'another); this run was trained without unanswerable questions, so its model never learned to answer "". '
        "Or remove those questions")
    assert "tuned on" not in message
    scored = evaluate_run(toy.runs["pointer"], path, overrides=["data.allow_unanswerable=true"])
    assert (scored.scores.null_threshold, scored.scores.has_ans_total, scored.scores.no_ans_total) == (0.5, 8, 1)
    assert evaluate_run(toy.runs["pointer"], path, overrides=["data.allow_unanswerable=true"],
                        null_threshold=0.2).scores.null_threshold == 0.2


def test_pointer_head_rejects_per_class_loss_parameters(toy):
    from seqtag.modeling.accel import make_accelerator
    from seqtag.modeling.loading import load_tokenizer
    from seqtag.tasks.qa import setup

    raw = toy_config(toy.model_dir, {"train": str(toy.jsonl)}, toy.root / "y", "pointer", 1, 1e-3,
                     weight=[1.0, 2.0, 1.0])
    cfg = from_dict(raw)
    with pytest.raises(ConfigError, match="loss.weight gives one value per class.*token positions"):
        setup(cfg, load_tokenizer(cfg.model), make_accelerator("no", 1))


def test_pointer_loss_step_by_hand(toy):
    """loss_sum = mean of the start and end cross-entropies over [CLS] + context, summed over windows."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from seqtag.data.batching import collate
    from seqtag.data.qa_windows import prepare_features
    from seqtag.data.squad import read_qa
    from seqtag.tasks.qa import model_columns, pointer_loss_step

    tok = AutoTokenizer.from_pretrained(str(toy.model_dir))
    model = AutoModelForQuestionAnswering.from_pretrained(str(toy.runs["pointer"])).eval()
    feats = prepare_features(read_qa(toy.jsonl)[2:5], tok, 32, 8, "pointer")
    cols = model_columns(tok, "pointer")
    assert cols == ["input_ids", "token_type_ids", "context_mask", "start_positions", "end_positions"]
    batch = collate([{k: feats[k][f] for k in cols} for f in range(len(feats["input_ids"]))], tok.pad_token_id)
    with torch.no_grad():
        loss_sum, n, logits, targets = pointer_loss_step(model, batch, get_loss("cross_entropy"))
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    token_type_ids=batch["token_type_ids"])
    assert n == len(feats["input_ids"]) == 7  # q2, q3, q4 in 2, 3 and 2 windows
    expected = 0.0
    for f in range(n):
        keep = [0] + [t for t, m in enumerate(feats["context_mask"][f]) if m]
        for lg, pos in ((out.start_logits, feats["start_positions"]), (out.end_logits, feats["end_positions"])):
            expected += F.cross_entropy(lg[f, keep][None], torch.tensor([keep.index(pos[f])])).item() / 2
    assert loss_sum.item() == pytest.approx(expected, rel=1e-5)
    assert targets.tolist() == feats["start_positions"] and torch.isinf(logits[0, 1])


@pytest.mark.parametrize("name", ["squad_pointer.yaml", "squad_tagging.yaml", "squad_hub.yaml"])
def test_shipped_qa_configs_load(name):
    cfg = load_config(REPO / "configs" / name)
    assert cfg.task == "qa" and cfg.data.max_length == 384 and cfg.data.doc_stride == 128
    assert cfg.data.qa_head == ("tagging" if "tagging" in name else "pointer")
    if name == "squad_hub.yaml":
        assert (cfg.data.format, cfg.data.hub_dataset, cfg.model.name_or_path) == ("hub", "rajpurkar/squad",
                                                                                   "bert-base-cased")
    else:
        assert cfg.data.train == cfg.data.dev == "../shared/data/squad/dev-v1.1.json.zip"
        assert (cfg.data.train_articles, cfg.data.dev_articles) == ([0, 38], [38, 48])
        text = (REPO / "configs" / name).read_text()
        assert f"seqtag train configs/{name}" in text and "articles 1-38" in text


# ---------------------------------------------------------------------------------------------------------------
# MiniLM on the SQuAD v1.1 dev-set article split (slow)


def _first_sentence(context: str) -> str:
    m = re.search(r"[.!?](\s|$)", context)
    return context[: m.end()].strip() if m else context


@pytest.mark.slow
@pytest.mark.shared_data
def test_minilm_learns_squad_slice(tmp_path, minilm_dir):
    squad_zip = shared_file("squad/dev-v1.1.json.zip")
    from seqtag.data.squad import examples_from_articles, squad_articles
    from seqtag.metrics import squad_scores_from_refs
    from seqtag.training.loop import train

    zip_path = str(squad_zip)
    # 1,000 training questions of articles 1-38 (1,528 windows of 160 tokens), scored once, on 200 questions of
    # articles 39-48 given as the test split (a dev split would be scored twice: after the epoch and at the end)
    raw = {
        "task": "qa", "model": {"name_or_path": str(minilm_dir)},
        "data": {"format": "squad", "train": zip_path, "train_articles": [0, 38], "test": zip_path,
                 "test_articles": [38, 48], "max_train_examples": 1000, "max_eval_examples": 200,
                 "max_length": 160, "doc_stride": 48},
        "train": {"output_dir": str(tmp_path / "run"), "epochs": 1, "batch_size": 16, "eval_batch_size": 32,
                  "learning_rate": 3e-4, "mixed_precision": "auto", "plot": False, "save_every_epoch": False},
    }
    t0 = time.time()
    run = train(from_dict(raw))
    elapsed = time.time() - t0
    scores = json.loads((run / "metrics.json").read_text())["test"]
    questions = examples_from_articles(squad_articles(squad_zip)[38:48])[:200]
    baseline = squad_scores_from_refs({q.id: [t for t, _ in q.answers] for q in questions},
                                      {q.id: _first_sentence(q.context) for q in questions})
    print(f"MiniLM, 1,000 questions, 1 epoch: EM {scores['exact_match']:.3f} F1 {scores['f1']:.3f}; first-sentence "
          f"baseline EM {baseline['exact_match']:.3f} F1 {baseline['f1']:.3f}; {elapsed:.0f} s")
    # measured: EM 0.110, F1 0.220 in bf16, EM 0.115, F1 0.255 in fp32 (an AVX2 CPU, where `auto` picks
    # the precision per machine): answer types are right, spans often not;
    # baseline EM 0.0, F1 0.1244 (a first sentence is never an exact answer)
    assert (baseline["exact_match"], round(baseline["f1"], 4)) == (0.0, 0.1244)
    assert scores["exact_match"] >= 0.06 and scores["f1"] >= baseline["f1"] + 0.045
