"""The model card (``README.md``) of a finished run, rendered from the run directory alone.

The card has YAML front matter the Hub reads (``license``, ``language``, ``library_name``, ``pipeline_tag``,
``base_model``, ``datasets``, ``tags`` and a ``model-index`` of the evaluation results), then prose: what the
model is, its training data (with the attribution a licence asks for), the per-type scores of every evaluated
split, the loss and its formula, the training budget and curves, limitations and a usage snippet.

The run is read only through its typed records: :class:`seqtag.runs.RunInfo` (``run_info.json``), the
``{split: SplitScores}`` of ``metrics.json``, the resolved :class:`seqtag.config.Config`
(``seqtag_config.yaml``), plus ``config.json`` (labels) and the tokenizer files (casing).

Numbers: the ``model-index`` holds exactly the values of ``metrics.json``, fractions in [0, 1] for NER and QA
alike. Many SQuAD cards on the Hub write percentages there; seqtag keeps the file's value so that the card can
never disagree with ``metrics.json``. The tables for people round NER fractions to 4 decimals and show QA
exact match and F1 in percent (value x 100, 2 decimals).

The facts the card states are read by :mod:`seqtag.publish.card_facts`; this module composes the text.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from seqtag import runs
from seqtag.config import DataConfig
from seqtag.data import schemes
from seqtag.publish.card_facts import (
    BUNDLED_DATASETS,
    KNOWN_DATASETS,
    SPLIT_NAMES,
    CardRun,
    aggregation_strategy,
    base_model_of,
    bundled_attribution,
    bundled_folder,
    dataset_of,
    decoding_of,
    head_of,
    precision_of,
    read_run,
    recorded_origin,
)
from seqtag.publish.card_loss import loss_text
from seqtag.publish.card_metadata import card_metadata, eval_subset, evaluated_splits
from seqtag.publish.card_squad2 import unanswerable_section
from seqtag.publish.span_card import span_evaluation, span_intro, span_usage
from seqtag.runs import SplitScores


def _fmt(value: float | None, digits: int, scale: float = 1.0) -> str:
    return "–" if value is None else f"{value * scale:.{digits}f}"


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h {s % 3600 // 60:02d}m {s % 60:02d}s ({seconds:g} s)"


def _link(hub_id: str, kind: str = "") -> str:
    return f"[`{hub_id}`](https://huggingface.co/{kind}{hub_id})"


def _split_heading(run: CardRun, split: str, unit: str) -> str:
    counts = run.info.windows.get(split)
    size = f", {counts.examples:,} {unit}" if counts and counts.examples else ""
    return f"### {split} ({SPLIT_NAMES.get(split, split)} split{size})"


def _ner_tables(run: CardRun) -> list[str]:
    lines = []
    for split in evaluated_splits(run.metrics):
        m: SplitScores = run.metrics[split]
        lines += [_split_heading(run, split, "sentences"), "",
                  "| entity type | precision | recall | F1 | support |", "| --- | ---: | ---: | ---: | ---: |"]
        for etype, s in sorted(m.per_type.items()):
            lines.append(f"| {etype} | {s.precision:.4f} | {s.recall:.4f} | {s.f1:.4f} | {s.support} |")
        support = sum(s.support for s in m.per_type.values())
        lines.append(f"| **micro average** | {_fmt(m.precision, 4)} | {_fmt(m.recall, 4)} | {_fmt(m.f1, 4)} | "
                     f"{support} |")
        lines += ["", f"Strict-mode entity F1: {_fmt(m.f1_strict, 4)}; token accuracy: {_fmt(m.accuracy, 4)}.", ""]
    return lines


def _qa_table(run: CardRun) -> list[str]:
    lines = ["| split | questions | exact match (%) | F1 (%) |", "| --- | ---: | ---: | ---: |"]
    for split in evaluated_splits(run.metrics):
        m = run.metrics[split]
        counts = run.info.windows.get(split)
        lines.append(f"| {split} | {f'{counts.examples:,}' if counts and counts.examples else '–'} | "
                     f"{_fmt(m.exact_match, 2, 100)} | {_fmt(m.f1, 2, 100)} |")
    return lines + [""]


def _intro(run: CardRun, model_name: str, types: list[str]) -> list[str]:
    cfg = run.config
    name = cfg.model.name_or_path
    base = base_model_of(name)
    base_text = _link(base) if base else f"the local model `{name}`"
    if base and base != name:
        base_text += f" (used from `{name}`)"
    dataset = dataset_of(cfg.data, cfg.data.train)
    known = KNOWN_DATASETS.get(dataset or "")
    data_text = (f"[{known.name if known else dataset}](https://huggingface.co/datasets/{dataset})" if dataset
                 else f"`{cfg.data.train}`")
    if cfg.task == "qa":
        what = ("to tag the answer's tokens (O, B-ANS, I-ANS)" if cfg.data.qa_head == "tagging" else
                "to point at the answer span (its start and end token) in a context passage")
        lines = [f"Extractive question answering: {base_text} fine-tuned {what}, on {data_text}, with seqtag."]
    elif run.info.model_head == "span":
        lines = [span_intro(base_text, data_text, types, cfg.model.max_span_length)]
    else:
        lines = [f"Named entity recognition ({', '.join(types) or 'no entity types'}): {base_text} fine-tuned for token "
                 f"classification on {data_text} with seqtag. It predicts {len(run.labels)} labels in the "
                 f"{run.info.tag_scheme or cfg.data.train_scheme} scheme: {', '.join(run.labels)}."]
    if not base:
        origin = recorded_origin(name)
        lines.append("The base model was a local one, so this card names no `base_model`"
                     + (f"; its config.json names `{origin}` as its origin (`_name_or_path`)" if origin else "")
                     + ".")
    if run.lowercase is True:
        lines.append("The tokenizer lower-cases its input (an uncased model): `Apple` and `apple` look the same to it.")
    elif run.lowercase is False:
        lines.append("The tokenizer keeps case (a cased model).")
    return [f"# {model_name}", "", " ".join(lines), ""]


def _training_data(run: CardRun) -> list[str]:
    cfg = run.config
    dataset = dataset_of(cfg.data, cfg.data.train)
    attribution = bundled_attribution(cfg.data.train)
    if attribution is None:
        where = (_link(dataset, "datasets/") if dataset else
                 f"{_articles(cfg.data, 'train')}the local file `{cfg.data.train}`")
        return ["## Training data", "", f"Trained on {where} ({_count(run.info.train_examples, cfg.task)}).", ""]
    source, licence = attribution
    known = KNOWN_DATASETS.get(dataset or "")
    name = known.name if known else dataset
    lines = ["## Training data", "",
             f"{name} ({_link(dataset, 'datasets/')} on the Hub), from the copy bundled with seqtag "
             f"({_count(run.info.train_examples, cfg.task)} trained on). {source}", "", licence, ""]
    if not cfg.hub.license:
        data_licence = BUNDLED_DATASETS[bundled_folder(cfg.data.train)][1]
        lines += [f"The model itself has no licence set (`hub.license` in the training config); the training data "
                  f"is {data_licence}, which requires the attribution above.", ""]
    return lines


def _articles(data: DataConfig, split: str) -> str:
    """``articles [a, b) of`` when a QA split is an article range of its SQuAD file, else ``""``."""
    rng = {"train": data.train_articles, "dev": data.dev_articles, "test": data.test_articles}.get(split)
    return f"articles [{rng[0]}, {rng[1]}) of " if rng else ""


def _count(n: int | None, task: str) -> str:
    unit = "questions" if task == "qa" else "sentences"
    return f"{n:,} {unit}" if n is not None else f"number of {unit} not recorded"


def _evaluation(run: CardRun) -> list[str]:
    cfg, info = run.config, run.info
    lines = ["## Evaluation", ""]
    if not run.metrics:
        return lines + ["This run has no `metrics.json`: it was not evaluated.", ""]
    subsets = [s for s in evaluated_splits(run.metrics) if eval_subset(run, s)]
    if subsets:
        lines += [f"Scores are on the first {cfg.data.max_eval_examples:,} "
                  f"{'questions' if cfg.task == 'qa' else 'sentences'} of {' and '.join(subsets)} only "
                  "(`data.max_eval_examples`), not on the whole splits.", ""]
    if cfg.task == "qa":
        ranges = [f"{split}: {_articles(cfg.data, split)}`{spec}`" for split, spec in
                  (("dev", cfg.data.dev), ("test", cfg.data.test)) if _articles(cfg.data, split) and split in run.metrics]
        version = "SQuAD 2.0" if cfg.data.allow_unanswerable else "SQuAD v1.1"
        lines += [f"{version} exact match and token F1 against the reference answers, shown here in percent "
                  "(`metrics.json` and the model-index hold the same scores as fractions)."
                  + (f" Evaluation questions: {'; '.join(ranges)}." if ranges else ""), "", *_qa_table(run)]
        windowed = ", ".join(f"{s}: {w.windowed:,} of {w.examples:,}" for s, w in info.windows.items() if w.examples)
        lines += [f"Contexts are read in windows of {cfg.data.max_length} subwords that overlap by "
                  f"{cfg.data.doc_stride} (`data.max_length`, `data.doc_stride`); answers are at most "
                  f"{cfg.data.max_answer_length} subwords long."
                  + (f" Questions whose context needed more than one window: {windowed}." if windowed else ""), ""]
        return lines
    if info.model_head == "span":
        return lines + span_evaluation(run)
    scheme = info.tag_scheme or cfg.data.train_scheme
    if info.seqeval_mode == runs.SEQEVAL_MODE:
        mode = ("Entity-level precision, recall and F1 from `seqeval` in its **default** mode, which scores like "
                "conlleval: an entity that begins with an `I-` tag still counts.")
    else:
        mode = ("Entity-level precision, recall and F1 from `seqeval` "
                + (f"in **{info.seqeval_mode}** mode." if info.seqeval_mode else "(run_info.json does not record the mode)."))
    lines += [f"{mode} Tags are in the {scheme} scheme and each word is read at its first subword. The strict-mode "
              f"F1 under each table counts only entities that are valid in {scheme}.", "", *_ner_tables(run)]
    return lines


def _training(run: CardRun) -> list[str]:
    cfg, info = run.config, run.info
    lines = ["## Training", "", *loss_text(run)]
    base = base_model_of(cfg.model.name_or_path)
    dataset = dataset_of(cfg.data, cfg.data.train)
    best = "–" if info.best_epoch is None else info.best_epoch
    budget = [
        ("base model", f"`{base or cfg.model.name_or_path}`"),
        ("training data", f"`{dataset or cfg.data.train}`"),
        ("training examples", _count(info.train_examples, cfg.task)),
        ("epochs (best epoch)", f"{info.epochs} of {info.configured_epochs or cfg.train.epochs} ({best})"),
        ("optimizer steps", f"{info.global_steps:,}" + (" (`train.max_steps`)" if cfg.train.max_steps
                                                          and info.global_steps >= cfg.train.max_steps else "")),
        ("total batch size", info.total_batch_size),
        ("peak learning rate", info.learning_rate if info.learning_rate is not None else cfg.train.learning_rate),
        ("max length", f"{cfg.data.max_length} subwords"),
        ("seed", info.seed if info.seed is not None else cfg.train.seed),
        ("training precision", precision_of(info.mixed_precision)),
        ("hardware", info.hardware or None),
        ("wall time", _duration(info.wall_time_s)),
        ("seqtag version", info.seqtag_version or None),
    ]
    if info.skipped_batches:
        budget.append(("batches skipped (non-finite loss)", info.skipped_batches))
    lines += ["| setting | value |", "| --- | --- |", *(f"| {k} | {'–' if v is None else v} |" for k, v in budget), ""]
    if (run.path / runs.CURVES_FILE).is_file():
        lines += ["![Training curves](training_curves.png)", ""]
    return lines


def _limitations(run: CardRun, types: list[str]) -> list[str]:
    cfg = run.config
    items = ["Scores hold for text like the evaluation data; expect lower scores on other domains, casing or languages."]
    if "dev" in run.metrics:
        items.append("The model was chosen on the dev split, so dev scores are optimistic; the test split is the "
                     "unbiased one." if "test" in run.metrics else
                     "The model was chosen on the dev split and no test split was scored, so the scores above are "
                     "optimistic.")
    if cfg.task == "ner":
        items.append(f"Only the entity types {', '.join(types) or '–'} are recognised.")
        windowed = [(split, w) for split, w in run.info.windows.items() if w.windowed]
        if windowed:
            items.append(f"Sentences longer than {cfg.data.max_length} subwords (`data.max_length`, special tokens "
                         f"included) were split into overlapping windows sharing {cfg.data.stride} subwords: "
                         + ", ".join(f"{split}: {w.windowed:,} of {w.examples:,} sentences" for split, w in windowed)
                         + ". Near a window edge a word sees less context than in the middle of a sentence.")
    return ["## Limitations", "", *(f"- {item}" for item in items), ""]


def _usage(run: CardRun, repo: str) -> list[str]:
    cfg = run.config
    if run.info.model_head == "span":
        return span_usage(run, repo)
    if cfg.task == "qa" and cfg.data.qa_head == "tagging":
        return ["## How to use", "",
                "This model tags the answer's tokens (O, B-ANS, I-ANS); transformers' question-answering pipeline "
                "expects a start/end head and cannot read it. Decode answers with seqtag, from a download of this "
                "repository:", "", "```bash",
                'seqtag predict RUN_DIR --question "Where does John live?" --context "John Smith lives in Berlin."',
                "```", ""]
    if cfg.task == "qa":
        d = cfg.data
        code = ["from transformers import pipeline", "",
                f'qa = pipeline("question-answering", model="{repo}")',
                'qa(question="Where does John live?", context="John Smith lives in Berlin.",',
                f"   max_seq_len={d.max_length}, doc_stride={d.doc_stride}, max_answer_len={d.max_answer_length})"]
        note = ("`max_seq_len`, `doc_stride` and `max_answer_len` are the window and answer limits the model was "
                "trained and scored with; the pipeline's defaults (384, 128, 15) differ.")
        return ["## How to use", "", "```python", *code, "```", "", note, ""]
    strategy = aggregation_strategy(cfg.data)
    code = ["from transformers import pipeline", "",
            f'ner = pipeline("token-classification", model="{repo}", aggregation_strategy="{strategy}")',
            'ner("John Smith lives in Berlin.")']
    if strategy == "first":
        read = ("The model was trained on the first subword of each word; `aggregation_strategy=\"first\"` reads "
                "those positions (\"simple\" would also read the untrained continuation subwords and can split "
                "entities).")
    else:
        read = ("The model was trained on every subword (`data.label_all_tokens`); `aggregation_strategy=\"simple\"` "
                "merges them into entity spans.")
    limit = run.max_positions or 512
    decoding = decoding_of(run)
    same = "`seqtag predict`" if decoding == "argmax" else "`seqtag predict --decoding argmax`"
    if head_of(run) == "crf":
        unlike = (" (word-by-word argmax of the emission scores), which is not this model's CRF tagging: see "
                  "\"This model has a CRF head\" below")
    elif decoding != "argmax":
        unlike = (" (word-by-word argmax); `seqtag predict` itself decodes with constrained Viterbi, as the scores "
                  "above were computed, and can differ where the model is unsure (see \"Decoding\" below)")
    else:
        unlike = ""
    parity = (f"For texts of up to {cfg.data.max_length} subwords (`data.max_length`, special tokens included) the "
              f"pipeline finds the same entities as {same}{unlike}. Longer texts differ: seqtag splits them into "
              f"overlapping windows of {cfg.data.max_length} subwords and tags every word, while the pipeline reads "
              f"up to {limit} subwords in one pass, a longer context than the model was trained on, and truncates "
              "the rest; there, `seqtag predict` is the one to use.")
    return ["## How to use", "", "```python", *code, "```", "", read, "", parity, ""]


_CRF_DECODING = """\
import json, torch
from huggingface_hub import hf_hub_download
from safetensors import safe_open
from transformers import AutoModelForTokenClassification, AutoTokenizer

repo = "{repo}"
tokenizer, model = AutoTokenizer.from_pretrained(repo), AutoModelForTokenClassification.from_pretrained(repo)
with safe_open(hf_hub_download(repo, "crf_transitions.safetensors"), "pt") as f:
    labels = json.loads(f.metadata()["labels"])
    trans, start, end = (f.get_tensor(k) for k in ("transitions", "start", "end"))

words = ["Barack", "Obama", "visited", "Paris", "."]
enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
with torch.no_grad():
    logits = model(**enc).logits[0]
ids = enc.word_ids()
x = logits[[i for i, w in enumerate(ids) if w is not None and (i == 0 or ids[i - 1] != w)]]  # first subwords

score, back = start + x[0], []          # Viterbi over the moves the scheme allows
for row in x[1:]:
    score, prev = (score[:, None] + trans).max(0)
    score, back = score + row, back + [prev]
path = [int((score + end).argmax())]
for prev in reversed(back):
    path.append(int(prev[path[-1]]))
print([labels[i] for i in reversed(path)])"""


def _crf_section(run: CardRun, repo: str) -> list[str]:
    """For a CRF run: what ``pipeline()`` does and does not do, and the plain-PyTorch Viterbi decoding (the code
    is :func:`seqtag.modeling.crf.viterbi_from_file` over the first subwords, tested against seqtag's own decoding)."""
    if run.info.model_head != "crf":
        return []
    scheme = run.info.tag_scheme or run.config.data.train_scheme
    dev = run.metrics.get("dev")
    windows = run.info.windows.get("dev")
    invalid = (f" on the dev set that argmax tagged {dev.invalid_sequences} of {windows.examples} sentences with "
               f"tag sequences {scheme} forbids, and" if dev is not None and dev.invalid_sequences is not None
               and windows is not None else "")
    return [
        "## This model has a CRF head", "",
        "It was trained with a linear-chain CRF on top of the token classifier (`model.head: crf`). "
        "`model.safetensors` and `config.json` are the encoder and its emission layer, a plain "
        "`AutoModelForTokenClassification`; `crf_transitions.safetensors` holds the learned transition, start and "
        f"end scores (`-inf` where {scheme} forbids a move) and, in its metadata, the labels they index.", "",
        "**`transformers.pipeline()` ignores the CRF**: it tags every word by the argmax of its emission scores,"
        f"{invalid} its scores are softmax probabilities of the emissions, not probabilities under the CRF. The "
        f"scores above were computed with {run.info.decoding or 'viterbi'} decoding.", "",
        "Viterbi decoding with the transitions needs seqtag (`seqtag predict RUN --decoding viterbi`, which also "
        f"splits sentences longer than {run.config.data.max_length} subwords into windows and decodes each "
        "sentence whole), or these lines of plain PyTorch for a sentence that fits in one window:", "",
        "```python", _CRF_DECODING.format(repo=repo), "```", ""]


def _decoding_section(run: CardRun) -> list[str]:
    """For a linear NER run decoded by Viterbi: what ``pipeline()`` gives instead."""
    if run.config.task != "ner" or run.info.model_head == "crf" or run.info.decoding != "viterbi":
        return []
    scheme = run.info.tag_scheme or run.config.data.train_scheme
    dev, windows = run.metrics.get("dev"), run.info.windows.get("dev")
    invalid = (f" On the dev set, word-by-word argmax tagged {dev.invalid_sequences} of {windows.examples} "
               f"sentences with tag sequences {scheme} forbids." if dev is not None
               and dev.invalid_sequences is not None and windows is not None else "")
    return ["## Decoding", "",
            f"The scores above were computed with constrained Viterbi decoding: the most probable tag sequence "
            f"that {scheme} allows, which `seqtag predict` also uses. "
            f"`transformers.pipeline()` tags each word by its most probable tag instead, so its output can differ "
            f"where the model is unsure.{invalid}", ""]


def render_card(run_dir: str | Path, repo_id: str | None = None) -> str:
    """README.md text for the run in ``run_dir``: YAML front matter, then prose and tables.

    ``repo_id`` (``namespace/name``) names the model in the ``model-index`` and the usage snippet; without it,
    the run directory's name and a ``REPO_ID`` placeholder are used. The ``model-index`` values are exactly
    those of ``metrics.json`` (fractions, NER and QA alike); the QA table shows them in percent.
    """
    run = read_run(run_dir)
    model_name = (repo_id or run.path.resolve().name).split("/")[-1]
    meta = card_metadata(run, model_name)
    types = [] if run.config.task != "ner" else sorted(run.labels) if run.info.model_head == "span" else \
        sorted(schemes.entity_types([run.labels]))  # a span run's labels are its entity types
    intended = ("Extracting answer spans to questions from passages similar to the training data."
                if run.config.task == "qa" else
                f"Tagging {', '.join(types) or 'entity'} mentions in text similar to the training data.")
    lines = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---", ""]
    lines += _intro(run, model_name, types)
    lines += ["## Intended use", "", f"{intended} Not intended for decisions about people without human review.", ""]
    lines += _training_data(run)
    lines += _evaluation(run)
    lines += _training(run)
    lines += _limitations(run, types)
    lines += _usage(run, repo_id or "REPO_ID")
    lines += _crf_section(run, repo_id or "REPO_ID") + _decoding_section(run)
    lines += unanswerable_section(run, repo_id or "REPO_ID")
    curves = (run.path / runs.CURVES_FILE).is_file()
    lines += ["Files: `seqtag_config.yaml` is the resolved training config, `metrics.json` the scores above"
              + (", `run_info.json` the run summary and `training_curves.png` the training curves." if curves else
                 " and `run_info.json` the run summary."), ""]
    return "\n".join(lines)
