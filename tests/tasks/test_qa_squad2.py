"""SQuAD 2.0 in seqtag.tasks.qa: the null threshold tuned on dev, recorded in run_info.json and applied to test,
evaluate, predict and the card; predict answering "" with a stand-in model whose answer is forced; the shipped
configs. The toy run (a tiny random BERT) is only used for what does not depend on how well it learned."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from seqtag.config import from_dict, load_config
from seqtag.errors import DataError
from seqtag.metrics import squad2_scores
from tests.tasks.test_qa_task import make_tiny_model, toy_config, toy_records

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_thread")

# unanswerable questions asked about the toy contexts: their subject is in another context, not in this one
UNANSWERABLE = [(0, "box"), (1, "king"), (2, "tea"), (5, "sky")]


def toy2_squad() -> dict:
    """The 8 toy questions plus 4 unanswerable ones, as SQuAD 2.0 JSON: two articles of four paragraphs."""
    recs = toy_records()
    paragraphs = []
    for i, r in enumerate(recs):
        qas = [{"id": r["id"], "question": r["question"], "is_impossible": False,
                "answers": [{"text": r["answers"]["text"][0], "answer_start": r["answers"]["answer_start"][0]}]}]
        qas += [{"id": f"n{i}", "question": f"what is the {subject} ?", "is_impossible": True, "answers": []}
                for k, subject in UNANSWERABLE if k == i]
        assert all(f" {subject} " not in r["context"] for k, subject in UNANSWERABLE if k == i)
        paragraphs.append({"context": r["context"], "qas": qas})
    return {"version": "v2.0", "data": [{"title": f"a{k}", "paragraphs": paragraphs[4 * k: 4 * k + 4]}
                                        for k in range(2)]}


@pytest.fixture(scope="module")
def toy2(tmp_path_factory):
    """A pointer run trained with data.allow_unanswerable on the toy SQuAD 2.0 file: train = dev = both articles,
    test = the second (5 questions, 1 unanswerable)."""
    from seqtag.training.loop import train

    root = tmp_path_factory.mktemp("qa_toy2")
    squad = root / "toy2.json"
    data = toy2_squad()
    squad.write_text(json.dumps(data), encoding="utf-8")
    words = {w for a in data["data"] for p in a["paragraphs"] for w in p["context"].split()
             } | {w for a in data["data"] for p in a["paragraphs"] for q in p["qas"] for w in q["question"].split()}
    model_dir = make_tiny_model(root / "base", words)
    spec = {"format": "squad", "allow_unanswerable": True, "train": str(squad), "train_articles": [0, 2],
            "dev": str(squad), "dev_articles": [0, 2], "test": str(squad), "test_articles": [1, 2]}
    run = train(from_dict(toy_config(model_dir, spec, root / "pointer", "pointer", epochs=6, lr=1e-3)))
    return SimpleNamespace(root=root, squad=squad, data=data, model_dir=model_dir, run=run)


def test_dev_tunes_the_threshold_that_run_info_records_and_test_uses(toy2):
    metrics = json.loads((toy2.run / "metrics.json").read_text())
    info = json.loads((toy2.run / "run_info.json").read_text())
    dev, test = metrics["dev"], metrics["test"]
    assert set(dev) == {"exact_match", "f1", "null_threshold", "has_ans_exact_match", "has_ans_f1", "has_ans_total",
                        "no_ans_exact_match", "no_ans_f1", "no_ans_total", "best_exact_match",
                        "best_exact_match_thresh", "best_f1", "best_f1_thresh"}
    assert (dev["has_ans_total"], dev["no_ans_total"]) == (8, 4)
    # the threshold is dev's best_f1_thresh, recorded, and the one test is scored with
    assert info["null_threshold"] == dev["null_threshold"] == dev["best_f1_thresh"] == test["null_threshold"]
    assert 0.0 <= info["null_threshold"] <= 1.0
    assert info["best_dev_f1"] == dev["f1"]
    # the training examples include the unanswerable ones: 12 questions
    assert info["train_examples"] == 12 and info["windows"]["dev"]["examples"] == 12


def test_evaluate_reproduces_the_run_and_takes_another_threshold(toy2):
    from seqtag.tasks.evaluate import evaluate_run

    dev = json.loads((toy2.run / "metrics.json").read_text())["dev"]
    result = evaluate_run(toy2.run, toy2.squad)
    # same scores, but the dev-tuned threshold is applied, not tuned again (here the file is the dev split itself)
    assert result.scores.to_dict() == dev
    assert set(result.predictions) == {q["id"] for a in toy2.data["data"] for p in a["paragraphs"] for q in p["qas"]}
    assert squad2_scores(toy2.data["data"], result.predictions)["f1"] == pytest.approx(dev["f1"])
    # threshold 0: every probability is above it, every answer is "": the unanswerable share, whatever the model
    zero = evaluate_run(toy2.run, toy2.squad, null_threshold=0.0)
    assert set(zero.predictions.values()) == {""}
    assert (zero.scores.exact_match, zero.scores.no_ans_f1, zero.scores.has_ans_f1) == (4 / 12, 1.0, 0.0)
    # threshold 1: never "", so no unanswerable question is right (every context has a span)
    one = evaluate_run(toy2.run, toy2.squad, null_threshold=1.0)
    assert "" not in one.predictions.values() and one.scores.no_ans_exact_match == 0.0
    # read as a SQuAD v1.1 run, the same file is refused, naming the setting
    # the fix names the threshold evaluate would score at, which it does not tune
    recorded = json.loads((toy2.run / "run_info.json").read_text())["null_threshold"]
    with pytest.raises(DataError) as err:
        evaluate_run(toy2.run, toy2.squad, overrides=["data.allow_unanswerable=false"])
    assert str(err.value) == (
        f"{toy2.squad}: 4 of 12 questions have no answer (first: 'n0'), as in SQuAD 2.0; this run reads SQuAD v1.1, "
        "where every question has one. To score them, add data.allow_unanswerable=true: evaluate tunes no threshold "
        f"and scores them with the SQuAD 2.0 evaluator at the no-answer threshold {recorded:.6g} that the run "
        "recorded (--null-threshold P sets another). Or remove those questions")
    with pytest.raises(DataError, match=r"evaluator at --null-threshold 0.25\. Or remove those questions$"):
        evaluate_run(toy2.run, toy2.squad, overrides=["data.allow_unanswerable=false"], null_threshold=0.25)


def test_evaluate_split_test_scores_the_test_articles_at_the_dev_threshold(toy2, tmp_path):
    """--split test reads article 2 of the file, as training did, and applies the recorded threshold: training's
    test scores, and those of --data on a file holding only that article."""
    from seqtag.tasks.evaluate import evaluate_run

    metrics = json.loads((toy2.run / "metrics.json").read_text())
    by_split = evaluate_run(toy2.run, split="test")
    article = tmp_path / "article2.json"
    article.write_text(json.dumps({**toy2.data, "data": toy2.data["data"][1:2]}), encoding="utf-8")
    by_file = evaluate_run(toy2.run, article)
    assert by_split.scores.to_dict() == by_file.scores.to_dict() == metrics["test"]
    assert by_split.predictions == by_file.predictions
    assert set(by_split.predictions) == {"q4", "q5", "q6", "q7", "n5"}
    assert (by_split.scores.has_ans_total, by_split.scores.no_ans_total) == (4, 1)
    assert by_split.scores.null_threshold == metrics["dev"]["null_threshold"]
    assert evaluate_run(toy2.run, split="dev").scores.to_dict() == metrics["dev"]
    # read as a SQuAD v1.1 run, the split is refused with evaluate's fix
    with pytest.raises(DataError, match=r"^data.test: 1 of 5 questions have no answer \(first: 'n5'\).*To score them, "
                                        r"add data.allow_unanswerable=true: evaluate tunes no threshold"):
        evaluate_run(toy2.run, split="test", overrides=["data.allow_unanswerable=false"])


def test_evaluate_cli_prints_hasans_noans_and_takes_a_threshold(toy2, tmp_path, capsys):
    from seqtag.cli import main

    out = tmp_path / "scores.json"
    assert main(["evaluate", str(toy2.run), "--data", str(toy2.squad), "--null-threshold", "0", "--output",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert "exact match 33.33 %  F1 33.33 %" in printed
    assert "HasAns F1 0.00 % (8)  NoAns F1 100.00 % (4)  null threshold 0" in printed
    assert json.loads(out.read_text())["null_threshold"] == 0.0
    assert main(["evaluate", str(toy2.run), "--data", str(toy2.squad), "--null-threshold", "-0.1"]) == 2
    assert "--null-threshold is a no-answer probability in [0, 1], got -0.1" in capsys.readouterr().err


def test_null_threshold_is_refused_for_ner_runs(tmp_path, capsys):
    from seqtag.cli import main
    from tests.fake_run import make_run

    ner = make_run(tmp_path, task="ner", junk=False)
    data = tmp_path / "d.conll"
    data.write_text("John B-PER\n", encoding="utf-8")
    assert main(["evaluate", str(ner), "--data", str(data), "--null-threshold", "0.5"]) == 2
    assert "--null-threshold is for QA runs" in capsys.readouterr().err
    assert main(["predict", str(ner), "--text", "John lives here", "--null-threshold", "0.5"]) == 2
    assert "--null-threshold are for QA runs" in capsys.readouterr().err


def test_card_of_a_squad2_run_reports_the_scores_and_the_threshold(toy2):
    from seqtag.publish.card import render_card
    from tests.fake_run import split_front_matter

    info = json.loads((toy2.run / "run_info.json").read_text())
    dev = json.loads((toy2.run / "metrics.json").read_text())["dev"]
    meta, body = split_front_matter(render_card(toy2.run, "me/toy2"))
    assert meta["metrics"] == ["squad_v2"]
    assert "SQuAD 2.0 exact match and token F1" in body and "SQuAD v1.1" not in body
    section = body[body.index("## Unanswerable questions (SQuAD 2.0)"):]
    assert f"**{info['null_threshold']:.6g}** (tuned on the dev split" in section
    row = next(line for line in section.splitlines() if line.startswith("| dev |"))
    assert f"| {100 * dev['f1']:.2f} |" in row and f"{100 * dev['no_ans_f1']:.2f} (4)" in row
    assert f'repo, threshold = "me/toy2", {info["null_threshold"]!r}' in section


# ---------------------------------------------------------------------------------------------------------------
# a stand-in model: its answer is forced, so "" can be tested without relying on training


class ForcedQA(torch.nn.Module):
    """Start and end logits 8 on every context token whose id is ``answer_id``, 3 on [CLS], 0 elsewhere: the
    answer is that word when the context holds it (null 6 < span 16: p = sigmoid(-10)), else nothing
    (null 6 > span 0: p = sigmoid(6) = 0.9975)."""

    def __init__(self, answer_id: int):
        super().__init__()
        self.answer_id = answer_id
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device

    def forward(self, input_ids, token_type_ids=None, **_):
        logits = torch.where((input_ids == self.answer_id) & (token_type_ids == 1), 8.0, 0.0)
        logits[:, 0] = 3.0
        return SimpleNamespace(start_logits=logits, end_logits=logits.clone())


def _forced_run(tmp_path: Path, model_dir: Path, null_threshold: float | None):
    """A finished QA run directory (records only) and the FinishedRun the stand-in model answers with."""
    from transformers import AutoTokenizer

    from seqtag.config import dump_config
    from seqtag.inference.engine import FinishedRun
    from seqtag.runs import CONFIG_FILE, RunInfo, write_run_info

    run_dir = tmp_path / "forced"
    run_dir.mkdir()
    cfg = from_dict({"task": "qa", "model": {"name_or_path": str(model_dir)}, "data": {
        "train": "t.json", "allow_unanswerable": null_threshold is not None, "max_length": 32, "doc_stride": 8, "stride": 4}})
    (run_dir / CONFIG_FILE).write_text(dump_config(cfg), encoding="utf-8")
    info = RunInfo(status="finished", task="qa", head="pointer", null_threshold=null_threshold)
    write_run_info(run_dir, info)
    from safetensors.torch import save_file

    save_file({"stand_in": torch.zeros(1)}, str(run_dir / "model.safetensors"))  # a whole file; loading is replaced
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = ForcedQA(tokenizer.convert_tokens_to_ids("blue")).eval()
    return run_dir, FinishedRun(run_dir, cfg, info, model, tokenizer, None)


QUESTIONS = [
    {"id": "in", "question": "what is the sky ?", "context": "we saw that the sky is blue and then it so ."},
    {"id": "out", "question": "what is the car ?", "context": "we saw that the car is red and then it so ."},
    # a long context: "blue" only in the last of its windows
    {"id": "far", "question": "what is the road ?",
     "context": " ".join(["we saw that there a and then it so too"] * 4) + " the road is blue ."},
]


@pytest.mark.parametrize("threshold", [0.5, None])
def test_predict_answers_empty_when_the_answer_is_not_in_the_context(toy2, tmp_path, capsys, monkeypatch, threshold):
    from seqtag.cli import main
    from seqtag.inference import engine

    run_dir, run = _forced_run(tmp_path, toy2.model_dir, threshold)
    monkeypatch.setattr(engine, "load_finished_run", lambda path, device=None: run)
    inp = tmp_path / "q.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in QUESTIONS), encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    assert main(["predict", str(run_dir), "--input", str(inp), "--output", str(out)]) == 0
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    p_in, p_out = 1 / (1 + math.exp(10)), 1 / (1 + math.exp(-6))
    start = QUESTIONS[0]["context"].index("blue")
    assert rows["in"] == {"id": "in", "question": QUESTIONS[0]["question"], "answer": "blue", "score": 16.0,
                          "start": start, "end": start + 4, "no_answer_probability": pytest.approx(p_in)}
    assert rows["far"]["answer"] == "blue" and rows["far"]["no_answer_probability"] == pytest.approx(p_in)
    assert rows["out"]["no_answer_probability"] == pytest.approx(p_out)
    if threshold is None:  # a SQuAD v1.1 run: always a span (here the first context token, all scores equal)
        assert (rows["out"]["answer"], rows["out"]["score"], rows["out"]["start"]) == ("we", 0.0, 0)
    else:  # p 0.9975 > 0.5: no answer; the score is the null score 3 + 3
        assert rows["out"] == {"id": "out", "question": QUESTIONS[1]["question"], "answer": "", "score": 6.0,
                               "start": None, "end": None, "no_answer_probability": pytest.approx(p_out)}
    # --null-threshold overrides the run's: above 0.9975 the span is kept
    assert main(["predict", str(run_dir), "--question", QUESTIONS[1]["question"], "--context",
                 QUESTIONS[1]["context"], "--null-threshold", "0.999"]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == "we"
    assert main(["predict", str(run_dir), "--question", "q", "--context", "c", "--null-threshold", "1.5"]) == 2
    assert "--null-threshold is a no-answer probability in [0, 1], got 1.5" in capsys.readouterr().err


def test_answer_questions_with_the_stand_in_model_and_the_run_threshold(toy2, tmp_path):
    from seqtag.tasks.qa import DEFAULT_NULL_THRESHOLD, answer_questions, run_null_threshold

    _, run = _forced_run(tmp_path, toy2.model_dir, 0.3)
    assert run_null_threshold(run.cfg, 0.3) == 0.3 and run_null_threshold(run.cfg, None) == DEFAULT_NULL_THRESHOLD
    assert run_null_threshold(run.cfg, 0.3, override=0.9) == 0.9
    v11 = from_dict({"task": "qa", "model": {"name_or_path": "m"}, "data": {"train": "t.json", "doc_stride": 32}})
    assert run_null_threshold(v11, None) is None
    answers = answer_questions(run.model, run.tokenizer, QUESTIONS, run.cfg, None, batch_size=2, null_threshold=0.3)
    assert [a["answer"] for a in answers] == ["blue", "", "blue"]


# ---------------------------------------------------------------------------------------------------------------
# the card's plain transformers code gives seqtag's answers


def _card_code(run_dir: Path, model, tokenizer, head: str, threshold: float, max_length: int = 32) -> dict:
    """Save ``model`` as a SQuAD 2.0 run at ``threshold``, render its card, and run the card's code: its scope,
    holding ``answer`` (the example line silenced)."""
    from seqtag.config import dump_config
    from seqtag.publish.card import render_card
    from seqtag.runs import CONFIG_FILE, RunInfo, SplitScores, write_metrics, write_run_info

    model.save_pretrained(run_dir)
    tokenizer.save_pretrained(run_dir)
    (run_dir / CONFIG_FILE).write_text(dump_config(_card_config(model.name_or_path, head, max_length)),
                                       encoding="utf-8")
    write_run_info(run_dir, RunInfo(status="finished", task="qa", head=head, null_threshold=threshold))
    write_metrics(run_dir / "metrics.json", {"dev": SplitScores(f1=0.5, exact_match=0.5, null_threshold=threshold)})
    card = render_card(run_dir, str(run_dir))
    code = re.search(r"```python\n(import .*?)\n```", card, re.S).group(1)
    assert f'repo, threshold = "{run_dir}", {threshold!r}' in code
    scope: dict = {}
    exec(code.replace("print(", "(lambda *a: None)("), scope)
    return scope


def _card_config(model_dir: str, head: str, max_length: int = 32):
    return from_dict({"task": "qa", "model": {"name_or_path": str(model_dir)}, "data": {
        "train": "t.json", "qa_head": head, "allow_unanswerable": True, "max_length": max_length, "doc_stride": 8,
        "stride": 4}})


@pytest.mark.parametrize("head", ["pointer", "tagging"])
def test_card_code_applies_the_threshold_as_seqtag_predict(toy2, tmp_path, head):
    """A random tiny model (its answers need not be right, only the same): the code in the card against
    :func:`seqtag.tasks.qa.answer_questions`, at a threshold between the questions' no-answer probabilities."""
    from transformers import AutoModelForQuestionAnswering, AutoModelForTokenClassification, AutoTokenizer

    from seqtag.tasks.qa import answer_questions

    auto = AutoModelForQuestionAnswering if head == "pointer" else AutoModelForTokenClassification
    torch.manual_seed(1)
    kw = {} if head == "pointer" else {"num_labels": 3}
    model = auto.from_pretrained(str(toy2.model_dir), **kw).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(toy2.model_dir))
    cfg = _card_config(toy2.model_dir, head)
    short = [{"question": f"what is the {s} ?", "context": c} for s, c in
             (("sky", "the sky is blue ."), ("car", "we saw the car is red ."), ("tea", "it so the tea is hot ."),
              ("box", "the door is open and the box is empty ."), ("king", "then the cat is small ."))]
    probs = sorted(a["no_answer_probability"] for a in answer_questions(model, tokenizer, short, cfg, None, 8))
    threshold = (probs[1] + probs[2]) / 2  # three questions above it (no answer), two below
    scope = _card_code(tmp_path / head, model, tokenizer, head, threshold)
    ours = [a["answer"] for a in answer_questions(model, tokenizer, short, cfg, None, 8, null_threshold=threshold)]
    assert ours.count("") == 3
    assert [scope["answer"](r["question"], r["context"]) for r in short] == ours


class SetLogits(torch.nn.Module):
    """Start and end logits given per position (the window of one question), whatever the input."""

    def __init__(self, start: torch.Tensor, end: torch.Tensor):
        super().__init__()
        self.start, self.end = start, end
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device

    def forward(self, input_ids, **_):
        n = input_ids.shape[1]
        pad = torch.full((max(0, n - len(self.start)),), -1e4)
        rows = [torch.cat([x, pad])[:n].expand(len(input_ids), n) for x in (self.start, self.end)]
        return SimpleNamespace(start_logits=rows[0], end_logits=rows[1])


def test_card_pointer_code_pairs_the_20_best_starts_and_ends_as_seqtag(toy2, tmp_path):
    """A window of 42 context tokens whose best valid span over every (start, end) pair starts at the 21st highest
    start logit: seqtag pairs only the 20 highest starts and ends, and so must the card's code."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from seqtag.tasks.qa import N_BEST, answer_questions

    tokenizer = AutoTokenizer.from_pretrained(str(toy2.model_dir))
    words = "we saw that there a and then it so too the sky is blue".split()
    record = {"question": "what is the sky ?", "context": " ".join(words[k % len(words)] for k in range(42))}
    enc = tokenizer(record["question"], record["context"])
    ctx = [t for t, s in enumerate(enc.sequence_ids()) if s == 1]
    assert len(ctx) == 42 and len(enc["input_ids"]) <= 64
    start, end = torch.zeros(len(enc["input_ids"])), torch.zeros(len(enc["input_ids"]))
    start[ctx[21:41]] = 10 + 0.01 * torch.arange(21, 41)  # the 20 highest starts: tokens 21-40
    start[ctx[0]] = 9.95  # the 21st
    end[ctx[2:21]] = 10 + 0.01 * torch.arange(2, 21)  # 19 of the 20 highest ends: tokens 2-20, before every top start
    end[ctx[41]] = 9.5  # the 20th
    end[ctx[1]] = 9.0  # the 21st
    model = SetLogits(start, end).eval()
    # every pair: tokens 0-20 (9.95 + 10.20 = 20.15); the 20 best starts and ends: tokens 40-41 (10.40 + 9.5 = 19.9)
    pairs = [(float(start[i] + end[j]), i, j) for i in ctx for j in ctx if i <= j < i + 30]
    assert max(pairs) == (pytest.approx(20.15), ctx[0], ctx[20])
    offsets = tokenizer(record["question"], record["context"], return_offsets_mapping=True)["offset_mapping"]
    everywhere = record["context"][offsets[ctx[0]][0]:offsets[ctx[20]][1]]
    cfg = _card_config(toy2.model_dir, "pointer", max_length=64)
    (ours,) = answer_questions(model, tokenizer, [record], cfg, None, 8, null_threshold=0.5)
    assert N_BEST == 20 and ours["answer"] == record["context"][offsets[ctx[40]][0]:offsets[ctx[41]][1]] == "is blue"
    assert ours["score"] == pytest.approx(19.9, abs=1e-5) and ours["answer"] != everywhere
    plain = AutoModelForQuestionAnswering.from_pretrained(str(toy2.model_dir))
    scope = _card_code(tmp_path / "nbest", plain, tokenizer, "pointer", 0.5, max_length=64)
    scope["model"] = model  # the card's code answers with the set logits
    assert scope["answer"](record["question"], record["context"]) == ours["answer"]
    # no valid pair among the 20 best (the late end moved out of them): seqtag answers "" (probability 1), so does the card
    end[ctx[41]] = 8.0
    (none,) = answer_questions(model, tokenizer, [record], cfg, None, 8, null_threshold=0.5)
    assert (none["answer"], none["no_answer_probability"]) == ("", 1.0)
    assert scope["answer"](record["question"], record["context"]) == ""


# ---------------------------------------------------------------------------------------------------------------
# the shipped configs


@pytest.mark.parametrize("name", ["squad2_pointer.yaml", "squad2_tagging.yaml", "squad2_hub.yaml"])
def test_shipped_squad2_configs_load(name):
    cfg = load_config(REPO / "configs" / name)
    assert cfg.task == "qa" and cfg.data.allow_unanswerable
    assert cfg.data.qa_head == ("tagging" if "tagging" in name else "pointer")
    text = (REPO / "configs" / name).read_text()
    assert f"seqtag train configs/{name}" in text
    if name == "squad2_hub.yaml":
        assert (cfg.data.format, cfg.data.hub_dataset, cfg.data.train, cfg.data.dev) == (
            "hub", "rajpurkar/squad_v2", "train", "validation")
        return
    squad_v11 = load_config(REPO / "configs" / name.replace("squad2", "squad"))  # the same model and budget
    assert (cfg.model, cfg.train.epochs, cfg.train.batch_size, cfg.train.learning_rate, cfg.data.max_length,
            cfg.data.doc_stride) == (squad_v11.model, squad_v11.train.epochs, squad_v11.train.batch_size,
                                     squad_v11.train.learning_rate, squad_v11.data.max_length,
                                     squad_v11.data.doc_stride)
    assert cfg.data.train == cfg.data.dev == cfg.data.test == "../shared/data/squad2/dev-v2.0-half.json"
    assert (cfg.data.train_articles, cfg.data.dev_articles, cfg.data.test_articles) == ([0, 12], [12, 14], [14, 16])
    assert "articles 1-12 (4,449" in text and "not comparable" in text
