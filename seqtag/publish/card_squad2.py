"""The model card's section for a QA run trained with unanswerable questions (``data.allow_unanswerable``, SQuAD
2.0): the no-answer rule and its threshold, overall / HasAns / NoAns scores, and how to apply the threshold with
plain transformers and PyTorch (the code is tested against ``seqtag predict`` in tests/tasks/test_qa_squad2.py)."""

from __future__ import annotations

import math

from seqtag.publish.card_facts import CardRun
from seqtag.publish.card_metadata import evaluated_splits
from seqtag.tasks.qa import N_BEST

_POINTER = '''\
import math

import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

repo, threshold = "{repo}", {threshold!r}  # null_threshold in run_info.json
tokenizer = AutoTokenizer.from_pretrained(repo)
model = AutoModelForQuestionAnswering.from_pretrained(repo).eval()


def answer(question, context):
    enc = tokenizer(question, context, truncation="only_second", max_length={max_length},
                    return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    in_context = [s == 1 for s in enc.sequence_ids(0)]
    with torch.no_grad():
        out = model(**enc)
    s, e = out.start_logits[0], out.end_logits[0]
    null = (s[0] + e[0]).item()  # [CLS]: "no answer"
    # the {n_best} highest start and {n_best} highest end logits (ties: the earlier token), paired; a pair counts when
    # both are context tokens and it is at most {max_answer_length} tokens long; ties: the earliest span
    starts = torch.argsort(s, descending=True, stable=True)[:{n_best}].tolist()
    ends = torch.argsort(e, descending=True, stable=True)[:{n_best}].tolist()
    spans = [(-(s[i] + e[j]).item(), i, j) for i in starts for j in ends
             if in_context[i] and in_context[j] and i <= j < i + {max_answer_length}]
    if not spans:  # no valid span: no-answer probability 1
        return ""
    neg_best, i, j = min(spans)
    d = null + neg_best  # null - best
    p_no_answer = 1 / (1 + math.exp(-d)) if d >= 0 else math.exp(d) / (1 + math.exp(d))
    return "" if p_no_answer > threshold else context[offsets[i][0]:offsets[j][1]]


print(repr(answer("Where does John live?", "John Smith lives in Berlin.")))'''

_TAGGING = '''\
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

repo, threshold = "{repo}", {threshold!r}  # null_threshold in run_info.json
tokenizer = AutoTokenizer.from_pretrained(repo)
model = AutoModelForTokenClassification.from_pretrained(repo).eval()


def answer(question, context):
    enc = tokenizer(question, context, truncation="only_second", max_length={max_length},
                    return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    ctx = [t for t, s in enumerate(enc.sequence_ids(0)) if s == 1]
    with torch.no_grad():
        lp = model(**enc).logits[0, ctx].double().log_softmax(-1)  # columns O, B-ANS, I-ANS
    o, b, inside = lp[:, 0], lp[:, 1], lp[:, 2]
    after = torch.cat([torch.logaddexp(o, b)[1:], torch.zeros(1, dtype=lp.dtype)])  # log p(not I next), 0 at the end
    null = o.sum()  # every context token O: "no answer"
    n = len(ctx)
    best, i, j = max(((b[i] + inside[i + 1:j + 1].sum() + after[j]).item(), i, j)
                     for i in range(n) for j in range(i, min(n, i + {max_answer_length})))
    p_no_answer = torch.sigmoid(null - best).item()
    return "" if p_no_answer > threshold else context[offsets[ctx[i]][0]:offsets[ctx[j]][1]]


print(repr(answer("Where does John live?", "John Smith lives in Berlin.")))'''


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _logit(p: float) -> str:
    if p <= 0.0:
        return "-inf (every question gets no answer)"
    if p >= 1.0:
        return "+inf (no question gets no answer)"
    return f"{math.log(p / (1 - p)):.4f}"


def _scores_table(run: CardRun) -> list[str]:
    lines = ["| split | threshold | exact (%) | F1 (%) | HasAns exact | HasAns F1 | NoAns exact = F1 | best F1 (at) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for split in evaluated_splits(run.metrics):
        m = run.metrics[split]
        if m.null_threshold is None:
            continue
        has = f" ({m.has_ans_total:,})" if m.has_ans_total else ""
        no = f" ({m.no_ans_total:,})" if m.no_ans_total else ""
        best = "–" if m.best_f1 is None else f"{_pct(m.best_f1)} ({m.best_f1_thresh:.4g})"
        lines.append(f"| {split} | {m.null_threshold:.4g} | {_pct(m.exact_match)} | {_pct(m.f1)} | "
                     f"{_pct(m.has_ans_exact_match)}{has} | {_pct(m.has_ans_f1)} | {_pct(m.no_ans_f1)}{no} | {best} |")
    return lines + [""]


def unanswerable_section(run: CardRun, repo: str) -> list[str]:
    """The card's "Unanswerable questions" section; empty for a run without ``data.allow_unanswerable``."""
    cfg = run.config
    if cfg.task != "qa" or not cfg.data.allow_unanswerable:
        return []
    threshold = run.info.null_threshold
    tuned = "dev" in run.metrics and threshold is not None
    if threshold is None:
        threshold = 0.5
    pointer = cfg.data.qa_head == "pointer"
    null = ("start[CLS] + end[CLS]" if pointer else
            "the log-probability that every context token is `O`")
    best = "the best span's start + end logit" if pointer else "the best span's log-probability"
    origin = ("tuned on the dev split: the probability that maximises dev F1, as the official SQuAD 2.0 script's "
              "`best_f1_thresh`" if tuned else "the default, as no dev split was scored to tune it")
    lines = [
        "## Unanswerable questions (SQuAD 2.0)", "",
        "This model was trained with questions that have no answer in their context (`data.allow_unanswerable: "
        "true`), whose target is " + ("`[CLS]` for start and end" if pointer else "`O` on every context token")
        + ", as for a window that does not hold the answer. For each question seqtag computes the null score "
        f"({null}, the minimum over the question's windows) and {best}, and the no-answer probability "
        "`p = sigmoid(null - best)`. The answer is `\"\"` (no answer) when `p` exceeds the threshold "
        f"**{threshold:.6g}** ({origin}; `null_threshold` in `run_info.json`), that is when `null - best` "
        f"exceeds {_logit(threshold)}.", "",
        "Scores of the official SQuAD 2.0 evaluator in percent, over all questions and over those with (HasAns) "
        "and without (NoAns) an answer, at the threshold given; best F1 is each split's own best threshold "
        "(on test: an optimistic figure, for comparison only):", "",
        *_scores_table(run),
        "`seqtag predict RUN --input questions.jsonl` applies the threshold over windows of any context length "
        "and writes each answer's `no_answer_probability`; `--null-threshold P` sets another one. "
        + ("transformers' question-answering pipeline does not apply it (its `handle_impossible_answer` compares "
           "other scores). " if pointer else "")
        + f"With plain transformers and PyTorch, for a context that fits one window of {cfg.data.max_length} "
        "subwords:", "",
        "```python",
        (_POINTER if pointer else _TAGGING).format(repo=repo, threshold=threshold, max_length=cfg.data.max_length,
                                                   max_answer_length=cfg.data.max_answer_length, n_best=N_BEST),
        "```", ""]
    return lines
