"""Prediction speed: seqtag on torch and on ONNX Runtime against ``transformers.pipeline("token-classification")``,
each at batch size 1 and at its best batch size, on the same sentences.

The same finished seqtag run (``--run``) tags the first ``--max-sentences`` sentences of the CoNLL-2003 dev set.
Each configuration runs at every ``--batch-sizes`` value, each in its own subprocess with ``--threads`` torch
and ONNX Runtime intra-op threads, so its peak RSS is its own; prediction times are the median of ``--repeats``
passes over all the sentences. The matmul ceilings are measured after the configurations, only for the
precisions that ran, at most 20 s each.

Configurations (default: ``seqtag-tagger``, the four ``seqtag-onnx-*``, ``pipeline-default``):

* ``seqtag-tagger``: ``seqtag.inference.predict.load_tagger(run)`` + ``Tagger.tag(word lists)``, torch fp32
* ``seqtag-tagger-bf16``: the same with bf16 autocast (``seqtag predict --bf16``)
* ``seqtag-tagger-t1024``: fp32 with ``max_tokens=1024`` (``seqtag predict --max-tokens 1024``; default 4096):
  smaller batches of long sentences, lower peak memory
* ``seqtag-onnx-fp32``: ``seqtag export RUN --no-fuse`` (``export_run``, not timed; float32; ONNX Runtime fuses
  what it fuses when it loads the graph), loaded with ``seqtag.inference.predict.load_onnx_tagger``: the same
  ``Tagger`` and decoding as the run
* ``seqtag-onnx-int8``: ``seqtag export RUN --no-fuse --quantize int8``
* ``seqtag-onnx-fp32-fused``, ``seqtag-onnx-int8-fused``: the same with ``--fuse``, ONNX Runtime's transformer
  optimizer (Attention, SkipLayerNormalization, BiasGelu, EmbedLayerNormalization)
* ``seqtag-cli``: ``seqtag predict RUN --input texts.txt --output out.jsonl --batch-size 64`` (raw text, one
  sentence per line: the words joined with spaces), a fresh process per repeat, so its time includes start-up
  and model load; it runs at batch 64 only
* ``pipeline-default``: ``pipeline("token-classification", model=RUN, aggregation_strategy="simple")`` over
  the same texts; at batch size 1 this is the pipeline's default (one text at a time), above it ``batch_size=N``
* ``pipeline-first``: ``aggregation_strategy="first"``: a word takes its first subword's label, seqtag's own
  rule, so its entities should match seqtag's (a check of both sides)

    PYTHONPATH=. python scripts/bench_predict.py --run runs/conll2003-minilm --out bench/predict.md
    PYTHONPATH=. python scripts/bench_predict.py --run runs/conll2003-minilm --max-sentences 200 --repeats 1 \\
        --batch-sizes 1 32                                                               # smoke run
    PYTHONPATH=. python scripts/bench_predict.py --run runs/conll2003-minilm --configs seqtag-onnx-fp32 \\
        seqtag-onnx-fp32-fused seqtag-onnx-int8 seqtag-onnx-int8-fused --batch-sizes 32   # the fusions alone

The ONNX exports are written to ``WORKDIR/exports/CONFIGURATION`` and reused by a later call with the same
``--workdir``. Without ``--run`` a small run is trained first (``--make-run-sentences`` sentences, one epoch,
not timed) into ``runs/bench-predict`` and reused by later calls.

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
import _bench_onnx as bo

CONFIGS = {
    "seqtag-tagger": {"kind": "tagger", "precision": "fp32"},
    "seqtag-tagger-bf16": {"kind": "tagger", "precision": "bf16"},
    "seqtag-tagger-t1024": {"kind": "tagger", "precision": "fp32", "max_tokens": 1024},
    "seqtag-onnx-fp32": {"kind": "onnx", "precision": "fp32", "quantize": None, "fuse": False},
    "seqtag-onnx-int8": {"kind": "onnx", "precision": "int8", "quantize": "int8", "fuse": False},
    "seqtag-onnx-fp32-fused": {"kind": "onnx", "precision": "fp32", "quantize": None, "fuse": True},
    "seqtag-onnx-int8-fused": {"kind": "onnx", "precision": "int8", "quantize": "int8", "fuse": True},
    "seqtag-cli": {"kind": "cli", "precision": "fp32"},
    "pipeline-default": {"kind": "pipeline", "precision": "fp32", "aggregation": "simple"},
    "pipeline-first": {"kind": "pipeline", "precision": "fp32", "aggregation": "first"},
}
DEFAULT_CONFIGS = ("seqtag-tagger", "seqtag-onnx-fp32", "seqtag-onnx-int8", "seqtag-onnx-fp32-fused",
                   "seqtag-onnx-int8-fused", "pipeline-default")
DEFAULT_BATCH_SIZES = (1, 8, 32, 128)
CLI_BATCH = 64
REFERENCES = ("seqtag-tagger", "pipeline-default")  # agreement and speed-ups are against these
DEFAULT_RUN = bc.REPO / "runs" / "bench-predict"
LEGEND = (
    "import+load s: importing the library and loading tokenizer and model (seqtag-cli: inside its time, "
    "a whole process: start-up, imports, load, reading, tagging, writing JSONL). words/s: CoNLL words / "
    "predict s. predict CPU s: CPU time of the child's threads over a pass (near threads x predict s on a "
    "quiet machine; much less: the pass waited for the CPU). entities: distinct (sentence, type, char "
    "start, char end). agreement with X: A / B, A = share of X's entities (at its smallest batch size) this row "
    "also finds, B = share of this row's entities X also finds. useful GFLOP/s: forward FLOPs of the real tokens "
    "/ predict s (the same token count for every row). of ceiling: useful GFLOP/s / the matmul rate of the row's "
    "precision and library (torch fp32 or bf16; ONNX Runtime float32 or int8 weights). Speed-ups: this row's "
    "words/s / the reference's (above 1: faster); at batch 1 both at batch 1, at best both at their best batch "
    "size; against pipeline-default at batch 1, the pipeline as called without batch_size."
)
CEILING_KEY = {("tagger", "fp32"): "float32", ("cli", "fp32"): "float32", ("pipeline", "fp32"): "float32",
               ("tagger", "bf16"): "bfloat16", ("onnx", "fp32"): "onnx-float32", ("onnx", "int8"): "onnx-int8"}


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
    t = time.perf_counter()  # library imports count: transformers loads its model modules lazily, in the first load
    from seqtag.inference.predict import load_tagger

    tagger = load_tagger(spec["run"], batch_size=spec["batch_size"], device="cpu",
                         autocast=spec["precision"] == "bf16", max_tokens=spec.get("max_tokens", 4096))
    return {"load_s": time.perf_counter() - t, **tag_passes(tagger, sentences, spec["repeats"])}


def child_onnx(spec: dict, sentences: list[list[str]]) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    t = time.perf_counter()
    from seqtag.inference.predict import load_onnx_tagger

    tagger = load_onnx_tagger(spec["export"], spec["batch_size"], threads=spec["threads"])  # the run's decoding
    return {"load_s": time.perf_counter() - t, **tag_passes(tagger, sentences, spec["repeats"])}


def child_pipeline(spec: dict, texts: list[str]) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    t = time.perf_counter()
    from transformers import pipeline

    pipe = pipeline("token-classification", model=spec["run"], aggregation_strategy=spec["aggregation"],
                    device="cpu")
    load_s = time.perf_counter() - t
    kwargs = {"batch_size": spec["batch_size"]} if spec["batch_size"] > 1 else {}  # 1: as called by default
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
    print(f"training a small run into {run} ({args.make_run_sentences} sentences, 1 epoch; not timed) ...",
          file=sys.stderr, flush=True)
    argv = [sys.executable, "-m", "seqtag", "train", str(bc.REPO / "configs" / "conll2003_local.yaml"),
            f"data.train={data / 'train.txt'}", f"data.dev={data / 'dev.txt'}", "data.test=null",
            f"data.max_train_examples={args.make_run_sentences}", "data.max_eval_examples=500",
            f"data.cache_dir={workdir / 'cache'}", f"train.output_dir={run}", "train.overwrite=true",
            "train.epochs=1", "train.plot=false", "train.save_every_epoch=false"]
    bc.check_child(bc.run_child(argv, workdir / "make-run.log"), "training the run to predict with")
    return run


def run_cli(name: str, args, run: Path, wd: Path, texts_file: Path) -> dict:
    """``seqtag predict`` in a fresh process per repeat: start-up and model load are part of what a user waits for."""
    times, rss, out = [], [], wd / "out.jsonl"
    for r in range(args.repeats):
        res = bc.run_child([sys.executable, "-m", "seqtag", "predict", str(run), "--input", str(texts_file),
                            "--output", str(out), "--batch-size", str(CLI_BATCH)], wd / f"log-{r}.txt",
                           env={"OMP_NUM_THREADS": str(args.threads)})
        bc.check_child(res, name)
        times.append(res.wall_s)
        rss.append(res.peak_rss_mb)
    found = []
    for line in out.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        found += [[rec["line"] - 1, e["type"], e["start"], e["end"]] for e in rec["entities"]]
    return {"load_s": None, "times": times, "cpu": None, "entities": found, "peak_rss_mb": statistics.median(rss),
            "includes_load": True}


def run_config(name: str, batch: int, args, run: Path, workdir: Path, sentences_file: Path, texts_file: Path) -> dict:
    wd = workdir / f"{name}-b{batch}"
    wd.mkdir(parents=True, exist_ok=True)
    conf = CONFIGS[name]
    print(f"  {name} at batch {batch} ... log {wd / 'log.txt'}", file=sys.stderr, flush=True)
    if conf["kind"] == "cli":
        return run_cli(name, args, run, wd, texts_file)
    if conf["kind"] == "onnx":
        conf = {**conf, "export": str(bo.exported(run, workdir / "exports" / name, conf["quantize"], conf["fuse"]))}
    spec = {**conf, "run": str(run), "threads": args.threads, "repeats": args.repeats, "batch_size": batch,
            "sentences": str(sentences_file), "result": str(wd / "result.json")}
    (wd / "spec.json").write_text(json.dumps(spec))
    res = bc.run_child([sys.executable, str(Path(__file__).resolve()), "--child", str(wd / "spec.json")],
                       wd / "log.txt")
    bc.check_child(res, f"{name} at batch {batch}")
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


def measure_ceilings(results: dict, threads: int) -> dict[str, float]:
    """The matmul rates of the precisions that ran, and only those (a bf16 ceiling costs minutes where bf16 is
    emulated: it is capped, but not measured at all without a bf16 row)."""
    keys = {CEILING_KEY[CONFIGS[name]["kind"], CONFIGS[name]["precision"]] for name, _ in results}
    ceil = {}
    if keys & {"float32", "bfloat16"}:
        ceil.update(bc.ceiling(threads, dtypes=[k for k in ("float32", "bfloat16") if k in keys]))
    if keys & {"onnx-float32", "onnx-int8"}:
        ceil.update(bo.onnx_ceiling(threads))
    return ceil


# ------------------------------------------------------------------------------------------------ report


def exports_paragraph(workdir: Path, names: list[str]) -> str:
    from seqtag.inference.onnx import read_export_info

    lines = []
    for name in names:
        if CONFIGS[name]["kind"] == "onnx":
            info = read_export_info(workdir / "exports" / name)
            fused = ", ".join(f"{op} {n}" for op, n in info.fused_ops.items()) or "none"
            lines.append(f"- {name}: exporter {info.exporter}; fused {fused}; int8 weights of "
                         f"{', '.join(info.quantized_ops) or 'none'}; float32 graph against torch: largest logit "
                         f"difference {info.max_abs_logit_diff:.1e}" + "".join(f"; {n}" for n in info.notes))
    return "\n".join(["Exports (their export_info.json):", "", *lines]) if lines else ""


def report(results: dict, args, run: Path, sentences: list, lengths: list[int], dims: bc.EncoderDims, ceil: dict,
           machine: str, command: str, exports: str) -> str:
    words = sum(len(s) for s in sentences)
    useful = bc.forward_flops(lengths, dims)
    wps = {key: words / statistics.median(r["times"]) for key, r in results.items()}
    refs = {name: min(b for n, b in results if n == name) for name in REFERENCES if any(n == name for n, _ in results)}
    ref_sets = {name: {tuple(e) for e in results[name, b]["entities"]} for name, b in refs.items()}
    rows = []
    for (name, batch), r in results.items():
        conf, mine = CONFIGS[name], {tuple(e) for e in r["entities"]}
        key = CEILING_KEY[conf["kind"], conf["precision"]]
        rate = useful / statistics.median(r["times"]) / 1e9
        agree = ["ref" if (name, batch) == (ref, b) else
                 f"{bc.agreement(ref_sets[ref], mine) or 0:.1%} / {bc.agreement(mine, ref_sets[ref]) or 0:.1%}"
                 for ref, b in refs.items()]
        rows.append([name, str(batch), conf["precision"], bc.fmt(r["load_s"], 2) if r["load_s"] is not None else
                     "in time", bc.fmt(statistics.median(r["times"]), 2),
                     bc.fmt(statistics.median(r["cpu"]), 2) if r["cpu"] else "–", bc.fmt(wps[name, batch], 0),
                     bc.fmt(r["peak_rss_mb"], 0), f"{len(mine):,}", *agree, bc.fmt(rate),
                     f"{rate / ceil[key]:.1%}" if ceil.get(key) else "–"])
    table = bc.markdown_table(
        ["configuration", "batch", "precision", "import+load s", "predict s", "predict CPU s", "words/s",
         "peak RSS MiB", "entities", *[f"agreement with {ref}" for ref in refs], "useful GFLOP/s", "of ceiling"],
        rows, right=[False, True, False] + [True] * (8 + len(refs)))
    summary = []
    for name in dict.fromkeys(n for n, _ in results):
        batches = sorted(b for n, b in results if n == name)
        best = max(batches, key=lambda b: wps[name, b])
        b1 = wps.get((name, 1))
        cells = [name, bc.fmt(b1, 0), str(best), bc.fmt(wps[name, best], 0)]
        for ref in refs:
            ref_batches = [b for n, b in results if n == ref]
            ref_best = max(wps[ref, b] for b in ref_batches)
            cells += [bc.ratio(b1, wps.get((ref, 1))), bc.ratio(wps[name, best], ref_best)]
        if "pipeline-default" in refs:
            cells.append(bc.ratio(wps[name, best], wps.get(("pipeline-default", 1))))
        summary.append(cells)
    speedups = [f"x {ref} ({when})" for ref in refs for when in ("batch 1", "best")]
    if "pipeline-default" in refs:
        speedups.append("best x pipeline-default at batch 1")
    summary_table = bc.markdown_table(["configuration", "words/s at batch 1", "best batch", "words/s at best",
                                       *speedups], summary, right=[False] + [True] * (3 + len(speedups)))
    shapes = ", ".join(f"{m}x{k} @ {k}x{n}" for m, k, n in bc.CEILING_SHAPES)
    ceiling_text = "; ".join(f"{k} {bc.fmt(v)}" for k, v in ceil.items())
    if "onnx-int8" in ceil:
        ceiling_text += (f"; ONNX Runtime int8 / float32: {bc.ratio(ceil['onnx-int8'], ceil['onnx-float32'])} "
                         f"(int8 dot-product instructions of this CPU: {bo.int8_dot_products()})")
    header = [
        *bc.report_header(command, machine, f"{args.threads} torch and ONNX Runtime threads per configuration"),
        f"Work: tag {len(sentences):,} CoNLL-2003 dev sentences ({words:,} words, {sum(lengths):,} subword "
        f"tokens with [CLS]/[SEP]) with the run {run}; predict s is the median of {args.repeats} pass(es); batch "
        f"sizes {', '.join(map(str, args.batch_sizes))} (seqtag-cli: {CLI_BATCH}).",
        f"Ceiling (this run, measured after the configurations, at most {bc.CEILING_CAP_S:g} s each): matmul "
        f"GFLOP/s {ceiling_text} (shapes {shapes}, FLOP-weighted). Forward FLOPs per sequence of n real tokens: "
        f"2 N n + 4 L n^2 d, N = {dims.matmul_params:,}.",
        *([exports] if exports else []),
    ]
    return "\n\n".join([*header, table, summary_table, LEGEND])


def main_bench(args) -> None:
    data = bc.require_data()
    command, machine = bc.command_line(), bc.machine()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="seqtag-bench-predict-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run = ensure_run(args, data, workdir)
    sentences = bc.read_words(data / "dev.txt", args.max_sentences)
    sentences_file, texts_file = workdir / "sentences.json", workdir / "texts.txt"
    sentences_file.write_text(json.dumps(sentences))
    texts_file.write_text("".join(" ".join(s) + "\n" for s in sentences), encoding="utf-8")
    names = [n for n in args.configs if not (args.skip_baselines and n.startswith("pipeline"))]
    results = {}
    for name in names:
        for batch in [CLI_BATCH] if CONFIGS[name]["kind"] == "cli" else args.batch_sizes:
            results[name, batch] = run_config(name, batch, args, run, workdir, sentences_file, texts_file)
    # after the children: what this process loads would be the floor of their peak RSS (kept across fork and exec)
    labels = json.loads((run / "config.json").read_text())["id2label"]
    dims = bc.model_dims(run, num_labels=len(labels))
    lengths = token_lengths(run, sentences)
    ceil = measure_ceilings(results, args.threads)
    text = report(results, args, run, sentences, lengths, dims, ceil, machine, command, exports_paragraph(workdir,
                                                                                                          names))
    bc.write_report(text, args.out)
    bc.remove_workdir(workdir, args)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="a finished seqtag NER run (default: train a small one into runs/bench-predict)")
    p.add_argument("--make-run-sentences", type=int, default=2000, help="without --run: training sentences of "
                   "the small run")
    p.add_argument("--max-sentences", "--max-predict-sentences", dest="max_sentences", type=int, default=None,
                   help="first N dev sentences (default: all 3,250)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per configuration (median reported)")
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(DEFAULT_CONFIGS))
    p.add_argument("--batch-sizes", nargs="+", type=int, default=list(DEFAULT_BATCH_SIZES),
                   help="batch sizes each configuration runs at (seqtag: sentence windows per forward pass, within "
                        "the 4,096-token budget; pipeline: texts per forward pass)")
    p.add_argument("--skip-baselines", action="store_true", help="run the seqtag configurations only")
    p.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads in every configuration")
    p.add_argument("--out", help="also write the report (markdown) here")
    p.add_argument("--workdir", help="keep inputs, outputs and logs here (default: a temporary directory, removed)")
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
