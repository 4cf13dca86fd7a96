"""Prediction speed: seqtag against ``transformers.pipeline("token-classification")`` on the same sentences.

The same finished seqtag run (``--run``) tags the first ``--max-predict-sentences`` sentences of the
CoNLL-2003 dev set. Each configuration runs in its own subprocess with ``torch.set_num_threads(--threads)``,
so its peak RSS is its own; prediction times are the median of ``--repeats`` passes over all the sentences.

Configurations:

* ``seqtag-tagger``: ``seqtag.inference.predict.load_tagger(run)`` + ``Tagger.tag(word lists)``, batch 64, fp32
* ``seqtag-tagger-bf16``: the same with bf16 autocast (``seqtag predict --bf16``)
* ``seqtag-tagger-t1024``: fp32 with ``max_tokens=1024`` (``seqtag predict --max-tokens 1024``; default 4096):
  smaller batches of long sentences, lower peak memory
* ``seqtag-onnx-fp32``: the run exported with ``seqtag.inference.onnx_export.export_run`` (not timed), loaded with
  ``seqtag.inference.onnx.load_export`` (ONNX Runtime, CPU, ``--threads`` intra-op threads) into the same ``Tagger``,
  batch 64
* ``seqtag-onnx-int8``: the same with ``quantize="int8"`` (dynamic quantization of the MatMul weights)
* ``seqtag-cli``: ``seqtag predict RUN --input texts.txt --output out.jsonl`` (raw text, one sentence per
  line: the words joined with spaces), a fresh process per repeat, so its time includes start-up and
  model load
* ``pipeline-default``: ``pipeline("token-classification", model=RUN, aggregation_strategy="simple")``
  over the same texts with its defaults (one text at a time)
* ``pipeline-b64``: the same with ``batch_size=64``
* ``pipeline-first-b64``: ``aggregation_strategy="first"``, ``batch_size=64``: a word takes its first
  subword's label, seqtag's own rule, so its entities should match seqtag's (a check of both sides)

    PYTHONPATH=. python scripts/bench_predict.py --run runs/conll2003-minilm --out bench/predict.md
    PYTHONPATH=. python scripts/bench_predict.py --max-predict-sentences 200 --repeats 2   # smoke run
    PYTHONPATH=. python scripts/bench_predict.py --run runs/conll2003-minilm --configs seqtag-tagger \
        seqtag-tagger-bf16 seqtag-onnx-fp32 seqtag-onnx-int8 pipeline-default     # the CPU backends

The ONNX exports are written to ``WORKDIR/exports/{fp32,int8}`` and reused by a later call with the same
``--workdir``.

Without ``--run`` a small run is trained first (``--make-run-sentences`` sentences, one epoch, not timed)
into ``runs/bench-predict`` and reused by later calls.

Entity agreement compares entities as (sentence, type, character start, character end) in the joined text.
The pipeline's "simple" aggregation reads every subword's prediction, seqtag reads each word's first
subword, so the two can differ where a word's later subwords are predicted differently from its first.
"first" uses the tokenizer's own words (BERT splits ``O'Gorman`` into three), so it can differ from seqtag
at such words only.
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
    "seqtag-tagger": {"kind": "tagger", "bf16": False},
    "seqtag-tagger-bf16": {"kind": "tagger", "bf16": True},
    "seqtag-tagger-t1024": {"kind": "tagger", "bf16": False, "max_tokens": 1024},
    "seqtag-onnx-fp32": {"kind": "onnx", "quantize": None},
    "seqtag-onnx-int8": {"kind": "onnx", "quantize": "int8"},
    "seqtag-cli": {"kind": "cli", "bf16": False},
    "pipeline-default": {"kind": "pipeline", "batch_size": None, "aggregation": "simple"},
    "pipeline-b64": {"kind": "pipeline", "batch_size": 64, "aggregation": "simple"},
    "pipeline-first-b64": {"kind": "pipeline", "batch_size": 64, "aggregation": "first"},
}
BATCH = 64
LEGEND = (
    "import+load s: importing the library and loading tokenizer and model (seqtag-cli: inside its time, "
    "a whole process: start-up, imports, load, reading, tagging, writing JSONL). words/s: CoNLL words / "
    "predict s. predict CPU s: CPU time of the child's threads over a pass (near threads x predict s on a "
    "quiet machine; much less: the pass waited for the CPU). entities: distinct (sentence, type, char "
    "start, char end). agreement with X: A / B, A = share of X's entities this row also finds, B = share "
    "of this row's entities X also finds. useful GFLOP/s: forward FLOPs of the real tokens / predict s "
    "(the same token count for every row). speed-up: baseline time / seqtag time (above 1: seqtag is "
    "faster). of ceiling: useful GFLOP/s / this machine's fp32 (bf16 rows: bf16) matmul rate; none for int8."
)
DEFAULT_RUN = bc.REPO / "runs" / "bench-predict"


# ------------------------------------------------------------------------------------------------ children


def tag_passes(tagger, sentences: list[list[str]], repeats: int) -> dict:
    """Wall and CPU time of ``repeats`` passes of ``tagger.tag`` over ``sentences``, and the entities found."""
    from seqtag.inference.predict import entities

    times, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        tagged = tagger.tag(sentences)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    found = []
    for i, (words, (tags, scores)) in enumerate(zip(sentences, tagged)):
        for e in entities(words, tags, scores, tagger.scheme, bc.char_offsets(words)):
            found.append([i, e["type"], e["start"], e["end"]])
    return {"times": times, "cpu": cpu, "entities": found}


def child_tagger(spec: dict, sentences: list[list[str]]) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    t = (
        time.perf_counter()
    )  # library imports count: transformers loads its model modules lazily, in the first load
    from seqtag.inference.predict import load_tagger

    tagger = load_tagger(spec["run"], batch_size=BATCH, device="cpu", autocast=spec["bf16"],
                         max_tokens=spec.get("max_tokens", 4096))
    return {"load_s": time.perf_counter() - t, **tag_passes(tagger, sentences, spec["repeats"])}


def child_onnx(spec: dict, sentences: list[list[str]]) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    t = time.perf_counter()
    from seqtag.inference.onnx import load_export
    from seqtag.inference.predict import Tagger

    exp = load_export(spec["export"], threads=spec["threads"])
    tagger = Tagger(exp.model, exp.tokenizer, exp.labels, exp.scheme, exp.max_length, exp.stride, BATCH)
    return {"load_s": time.perf_counter() - t, **tag_passes(tagger, sentences, spec["repeats"])}


def child_pipeline(spec: dict, texts: list[str]) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    t = time.perf_counter()
    from transformers import pipeline

    pipe = pipeline(
        "token-classification", model=spec["run"], aggregation_strategy=spec["aggregation"], device="cpu"
    )
    load_s = time.perf_counter() - t
    kwargs = {"batch_size": spec["batch_size"]} if spec["batch_size"] else {}
    times, cpu = [], []
    for _ in range(spec["repeats"]):
        t, c = time.perf_counter(), time.process_time()
        out = pipe(texts, **kwargs)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    found = [[i, e["entity_group"], e["start"], e["end"]] for i, ents in enumerate(out) for e in ents]
    return {"load_s": load_s, "times": times, "cpu": cpu, "entities": found}


def child_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    sentences = json.loads(Path(spec["sentences"]).read_text())
    if spec["kind"] == "tagger":
        result = child_tagger(spec, sentences)
    elif spec["kind"] == "onnx":
        result = child_onnx(spec, sentences)
    else:
        result = child_pipeline(spec, [" ".join(s) for s in sentences])
    Path(spec["result"]).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------------------ parent


def ensure_run(args, data: Path, workdir: Path) -> Path:
    """The run to predict with: ``--run``, or a small one trained into ``runs/bench-predict`` (reused)."""
    from seqtag.runs import is_finished_run

    if args.run:
        run = Path(args.run)
        if not is_finished_run(run):
            sys.exit(f"--run {run} is not a finished seqtag run")
        return run.resolve()
    run = DEFAULT_RUN
    if is_finished_run(run):
        return run
    print(
        f"training a small run into {run} ({args.make_run_sentences} sentences, 1 epoch; not timed) ...",
        file=sys.stderr,
        flush=True,
    )
    argv = [
        sys.executable,
        "-m",
        "seqtag",
        "train",
        str(bc.REPO / "configs" / "conll2003_local.yaml"),
        f"data.train={data / 'train.txt'}",
        f"data.dev={data / 'dev.txt'}",
        "data.test=null",
        f"data.max_train_examples={args.make_run_sentences}",
        "data.max_eval_examples=500",
        f"data.cache_dir={workdir / 'cache'}",
        f"train.output_dir={run}",
        "train.overwrite=true",
        "train.epochs=1",
        "train.plot=false",
        "train.save_every_epoch=false",
    ]
    res = bc.run_child(argv, workdir / "make-run.log")
    bc.check_child(res, "training the run to predict with")
    return run


def run_config(name: str, args, run: Path, workdir: Path, sentences_file: Path, texts_file: Path) -> dict:
    wd = workdir / name
    wd.mkdir(parents=True, exist_ok=True)
    conf = CONFIGS[name]
    print(f"  {name} ... log {wd / 'log.txt'}", file=sys.stderr, flush=True)
    if (
        conf["kind"] == "cli"
    ):  # one process per repeat: start-up and model load are part of what a user waits for
        times, rss = [], []
        for r in range(args.repeats):
            out = wd / "out.jsonl"
            res = bc.run_child(
                [
                    sys.executable,
                    "-m",
                    "seqtag",
                    "predict",
                    str(run),
                    "--input",
                    str(texts_file),
                    "--output",
                    str(out),
                    "--batch-size",
                    str(BATCH),
                ],
                wd / f"log-{r}.txt",
                env={"OMP_NUM_THREADS": str(args.threads)},
            )
            bc.check_child(res, name)
            times.append(res.wall_s)
            rss.append(res.peak_rss_mb)
        found = []
        for line in out.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            found += [[rec["line"] - 1, e["type"], e["start"], e["end"]] for e in rec["entities"]]
        return {
            "load_s": None,
            "times": times,
            "cpu": None,
            "entities": found,
            "peak_rss_mb": statistics.median(rss),
            "includes_load": True,
        }
    if conf["kind"] == "onnx":
        conf = {**conf, "export": str(bc.exported(run, workdir / "exports" / (conf["quantize"] or "fp32"),
                                                   conf["quantize"]))}
    spec = {
        **conf,
        "run": str(run),
        "threads": args.threads,
        "repeats": args.repeats,
        "sentences": str(sentences_file),
        "result": str(wd / "result.json"),
    }
    (wd / "spec.json").write_text(json.dumps(spec))
    res = bc.run_child(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(wd / "spec.json")], wd / "log.txt"
    )
    bc.check_child(res, name)
    out = json.loads((wd / "result.json").read_text())
    out.update(peak_rss_mb=res.peak_rss_mb, includes_load=False)
    return out


def token_lengths(run: Path, sentences: list[list[str]]) -> list[int]:
    """Real subword lengths of seqtag's windows (special tokens included) of the sentences."""
    from transformers import AutoTokenizer

    from seqtag.config import load_config
    from seqtag.data.align import encode_sentences

    cfg = load_config(run / "seqtag_config.yaml")
    tok = AutoTokenizer.from_pretrained(str(run), use_fast=True)
    enc = encode_sentences(tok, sentences, None, max_length=cfg.data.max_length, stride=cfg.data.stride)
    return [len(x) for x in enc["input_ids"]]


def report(
    results: dict,
    args,
    run: Path,
    sentences: list,
    lengths: list[int],
    dims: bc.EncoderDims,
    ceil: dict,
    machine: str,
    command: str,
) -> str:
    words = sum(len(s) for s in sentences)
    useful = bc.forward_flops(lengths, dims)
    refs = [n for n in ("pipeline-b64", "seqtag-tagger") if n in results]
    ref_sets = {n: {tuple(e) for e in results[n]["entities"]} for n in refs}
    rows, summary = [], {}
    for name, r in results.items():
        pred_s = statistics.median(r["times"])
        mine = {tuple(e) for e in r["entities"]}
        bf16 = CONFIGS[name].get("bf16", False)
        precision = "bf16" if bf16 else CONFIGS[name].get("quantize") or "fp32"
        ceiling_dtype = {"fp32": "float32", "bf16": "bfloat16"}.get(precision)  # none measured for int8
        rate = useful / pred_s / 1e9
        summary[name] = {
            "pred_s": pred_s,
            "rss": r["peak_rss_mb"],
            "total_s": pred_s if r["includes_load"] else pred_s + r["load_s"],
        }
        agree = [
            "ref"
            if name == ref
            else f"{bc.agreement(ref_sets[ref], mine) or 0:.1%} / "
            f"{bc.agreement(mine, ref_sets[ref]) or 0:.1%}"
            for ref in refs
        ]
        rows.append(
            [
                name,
                precision,
                bc.fmt(r["load_s"], 2) if r["load_s"] is not None else "in time",
                bc.fmt(pred_s, 2),
                bc.fmt(statistics.median(r["cpu"]), 2) if r["cpu"] else "–",
                bc.fmt(words / pred_s, 0),
                bc.fmt(r["peak_rss_mb"], 0),
                f"{len(mine):,}",
                *agree,
                bc.fmt(rate),
                f"{rate / ceil[ceiling_dtype]:.1%}" if ceiling_dtype else "–",
            ]
        )
    table = bc.markdown_table(
        [
            "configuration",
            "precision",
            "import+load s",
            "predict s",
            "predict CPU s",
            "words/s",
            "peak RSS MiB",
            "entities",
            *[f"agreement with {ref}" for ref in refs],
            "useful GFLOP/s",
            "of ceiling",
        ],
        rows,
        right=[False, False] + [True] * (8 + len(refs)),
    )
    ours = [n for n in results if n.startswith("seqtag")]
    # the pipelines, and torch fp32 for the other seqtag rows (bf16, ONNX): is the faster backend faster?
    theirs = [n for n in results if n.startswith("pipeline")] + [n for n in ("seqtag-tagger",) if n in results]
    pairs = (
        bc.markdown_table(
            ["seqtag", "baseline", "predict speed-up", "speed-up incl. load", "peak RSS (seqtag / baseline)"],
            [
                [
                    a,
                    b,
                    bc.ratio(summary[b]["pred_s"], summary[a]["pred_s"]),
                    bc.ratio(summary[b]["total_s"], summary[a]["total_s"]),
                    bc.ratio(summary[a]["rss"], summary[b]["rss"]),
                ]
                for a in ours
                for b in theirs
                if a != b and not (b == "seqtag-tagger" and a == "seqtag-cli")
            ],
            right=[False, False, True, True, True],
        )
        if ours and theirs
        else "(no baseline ran: --skip-baselines)"
    )
    header = [
        *bc.report_header(command, machine, f"{args.threads} torch threads per configuration"),
        f"Work: tag {len(sentences):,} CoNLL-2003 dev sentences ({words:,} words, {sum(lengths):,} subword "
        f"tokens with [CLS]/[SEP]) with the run {run}; predict s is the median of {args.repeats} pass(es).",
        f"Ceiling (this run): matmul {bc.fmt(ceil['float32'])} GFLOP/s fp32, {bc.fmt(ceil['bfloat16'])} "
        f"GFLOP/s bf16. Forward FLOPs per sequence of n real tokens: 2 N n + 4 L n^2 d, "
        f"N = {dims.matmul_params:,}.",
    ]
    return "\n\n".join([*header, table, pairs, LEGEND])


def main_bench(args) -> None:
    data = bc.require_data()
    command, machine = bc.command_line(), bc.machine()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="seqtag-bench-predict-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run = ensure_run(args, data, workdir)
    sentences = bc.read_words(data / "dev.txt", args.max_predict_sentences)
    sentences_file, texts_file = workdir / "sentences.json", workdir / "texts.txt"
    sentences_file.write_text(json.dumps(sentences))
    texts_file.write_text("".join(" ".join(s) + "\n" for s in sentences), encoding="utf-8")
    labels = json.loads((run / "config.json").read_text())["id2label"]
    dims = bc.model_dims(run, num_labels=len(labels))
    lengths = token_lengths(run, sentences)
    ceil = bc.ceiling(args.threads)
    names = [n for n in args.configs if not (args.skip_baselines and n.startswith("pipeline"))]
    results = {n: run_config(n, args, run, workdir, sentences_file, texts_file) for n in names}
    bc.write_report(report(results, args, run, sentences, lengths, dims, ceil, machine, command), args.out)
    bc.remove_workdir(workdir, args)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--run", help="a finished seqtag NER run (default: train a small one into runs/bench-predict)"
    )
    p.add_argument(
        "--make-run-sentences",
        type=int,
        default=2000,
        help="without --run: training sentences of the small run",
    )
    p.add_argument(
        "--max-predict-sentences", type=int, default=None, help="first N dev sentences (default: all 3,250)"
    )
    p.add_argument("--repeats", type=int, default=3, help="timed passes per configuration (median reported)")
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--skip-baselines", action="store_true", help="run the seqtag configurations only")
    p.add_argument("--threads", type=int, default=2, help="torch threads in every configuration")
    p.add_argument("--out", help="also write the report (markdown) here")
    p.add_argument(
        "--workdir", help="keep inputs, outputs and logs here (default: a temporary directory, removed)"
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        child_main(args.child)
    else:
        main_bench(args)


if __name__ == "__main__":
    main()
