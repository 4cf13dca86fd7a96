"""Does ``seqtag predict`` stream? Its memory over a file of a million lines, and what its progress bar shows.

Writes a text file of ``--lines`` lines (CoNLL-2003 dev sentences, words joined with spaces, cycled), runs
``seqtag predict RUN --input FILE --output OUT.jsonl`` on it as a child process, samples the child's resident
memory (``VmRSS`` from ``/proc``) and the progress bar (its stderr) every ``--interval`` seconds, and prints a
table: resident memory when 1 %, 10 %, 25 %, 50 %, 75 % and 100 % of the lines were done, the peak
(``ru_maxrss``), the growth from 10 % to the end, lines/s and words/s, and the last progress-bar line. It then
checks that the output has one record per input line, in order.

The model decides the speed, not the memory pattern, so the million-line run can use ``--model tiny``: a
randomly initialised 2-layer BERT (hidden 64) with MiniLM's tokenizer, trained for one epoch on 500 CoNLL
sentences (seconds), so that reading, splitting, tokenising, writing and the chunking in between are what is
measured. ``--run DIR`` uses a finished run instead (e.g. the MiniLM run ``bench_train.py`` leaves).

    PYTHONPATH=. python scripts/bench_stream.py --model tiny --lines 1000000 --out runs/bench/stream-tiny.md
    PYTHONPATH=. python scripts/bench_stream.py --run runs/bench/train/seqtag-fp32-0/run --bf16 \\
        --lines 100000 --out runs/bench/stream-minilm.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import _bench_common as bc

MARKS = (0.01, 0.10, 0.25, 0.50, 0.75, 1.0)
_BAR = re.compile(r"predicting: (\d+) lines")


def write_lines(path: Path, sentences: list[list[str]], n: int) -> int:
    """Write ``n`` lines cycling over ``sentences``; return the number of words written."""
    words = 0
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            s = sentences[i % len(sentences)]
            f.write(" ".join(s) + "\n")
            words += len(s)
    return words


def make_tiny_run(workdir: Path, data: Path) -> Path:
    """A finished run of a random 2-layer BERT with MiniLM's tokenizer (one quick epoch on 500 sentences)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from seqtag.runs import is_finished_run

    run = workdir / "tiny-run"
    if is_finished_run(run):
        return run
    model_dir = workdir / "tiny-model"
    tok = AutoTokenizer.from_pretrained(str(bc.model_dir()))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128)
    BertModel(cfg).save_pretrained(model_dir, safe_serialization=True)
    tok.save_pretrained(model_dir)
    argv = [sys.executable, "-m", "seqtag", "train", str(bc.REPO / "configs" / "conll2003_local.yaml"),
            f"model.name_or_path={model_dir}", f"data.train={data / 'train.txt'}", f"data.dev={data / 'dev.txt'}",
            "data.test=null", "data.max_train_examples=500", "data.max_eval_examples=100",
            f"data.cache_dir={workdir / 'cache'}", f"train.output_dir={run}", "train.overwrite=true",
            "train.epochs=1", "train.plot=false", "train.learning_rate=1e-3", "train.mixed_precision=no"]
    bc.check_child(bc.run_child(argv, workdir / "make-tiny-run.log"), "training the tiny run")
    return run


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def last_bar(stderr_path: Path) -> str:
    text = stderr_path.read_text(errors="replace") if stderr_path.exists() else ""
    pieces = [p.strip() for p in re.split(r"[\r\n]", text[-4000:]) if "predicting" in p]
    return pieces[-1] if pieces else ""


def run_stream(run: Path, input_file: Path, output: Path, log: Path, args) -> dict:
    import subprocess

    argv = [sys.executable, "-m", "seqtag", "predict", str(run), "--input", str(input_file), "--output", str(output)]
    if args.bf16:
        argv.append("--bf16")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(bc.REPO), env.get("PYTHONPATH", "")]))
    samples = []  # (seconds, RSS MiB, lines done per the progress bar)
    t0 = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        while True:
            time.sleep(args.interval)
            rss = rss_mb(proc.pid)  # read before reaping: a reaped child has no /proc entry
            done = _BAR.findall(last_bar(log))
            if rss is not None and done:
                samples.append((time.perf_counter() - t0, rss, int(done[-1])))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # this child's own ru_maxrss once it exits
            if pid:
                break
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"seqtag predict failed (exit {proc.returncode}); see {log}")
    return {"samples": samples, "wall_s": wall, "bar": last_bar(log), "peak_rss_mb": usage.ru_maxrss / 1024}


def at_share(samples: list[tuple[float, float, int]], lines: int, share: float) -> tuple[float, float] | None:
    """(seconds, RSS) of the first sample with at least ``share`` of the lines done."""
    for t, rss, done in samples:
        if done >= share * lines:
            return t, rss
    return None


def check_output(output: Path, lines: int) -> str:
    n, prev = 0, 0
    with open(output, encoding="utf-8") as f:
        for raw in f:
            rec = json.loads(raw)
            if rec["line"] != prev + 1:
                return f"record {n + 1} has line {rec['line']}, expected {prev + 1}"
            prev, n = rec["line"], n + 1
    return "ok: one record per line, in order" if n == lines else f"{n} records for {lines} lines"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="a finished NER run (default: --model tiny)")
    p.add_argument("--model", choices=["tiny"], default="tiny")
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    p.add_argument("--workdir", help="keep the input, output and logs here (default: a temporary directory)")
    p.add_argument("--out", help="also write the report here (markdown)")
    args = p.parse_args(argv)

    data = bc.require_data()
    machine = bc.machine()  # with the load average at the start
    tmp = None if args.workdir else tempfile.TemporaryDirectory(prefix="seqtag-stream-")
    workdir = Path(args.workdir or tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    run = Path(args.run).resolve() if args.run else make_tiny_run(workdir, data)
    sentences = bc.read_words(data / "dev.txt", None)
    input_file, output = workdir / "input.txt", workdir / "output.jsonl"
    words = write_lines(input_file, sentences, args.lines)
    print(f"predicting {args.lines:,} lines ({words:,} words, {input_file.stat().st_size / 2**20:.0f} MiB) ...",
          file=sys.stderr, flush=True)
    res = run_stream(run, input_file, output, workdir / "predict.log", args)
    verdict = check_output(output, args.lines)
    rows = []
    for share in MARKS:
        hit = at_share(res["samples"], args.lines, share)
        rows.append([f"{share:.0%}", bc.fmt(hit[0]) if hit else "–", bc.fmt(hit[1], 0) if hit else "–"])
    first = at_share(res["samples"], args.lines, 0.10)
    last = res["samples"][-1] if res["samples"] else None
    growth = f"{last[1] - first[1]:+.0f} MiB" if first and last else "–"
    table = bc.markdown_table(["lines done", "seconds", "RSS MiB"], rows)
    text = "\n\n".join([
        *bc.report_header(bc.command_line(), machine, f"{args.threads} threads"),
        f"Work: `seqtag predict {run} --input input.txt --output output.jsonl{' --bf16' if args.bf16 else ''}` over "
        f"{args.lines:,} lines ({words:,} words; CoNLL-2003 dev sentences cycled).",
        table,
        f"Peak RSS {res['peak_rss_mb']:,.0f} MiB; RSS growth from 10 % of the lines to the end {growth}; "
        f"{res['wall_s']:.1f} s in all (start-up and model load included): {args.lines / res['wall_s']:,.0f} lines/s, "
        f"{words / res['wall_s']:,.0f} words/s. Output: {verdict}.",
        f"Last progress-bar line: `{res['bar']}`",
    ])
    bc.write_report(text, args.out)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
