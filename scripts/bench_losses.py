"""Time forward+backward of every registered loss against F.cross_entropy; print a markdown table.

Shapes: NER-shaped logits (32 sentences x 128 tokens, 9 classes: N=4096, C=9, ~15% of targets ignored) and
QA-shaped logits (32 rows, 384 positions as classes: the start/end pointer over a 384-token window).

Each sample times ``--inner`` forward+backward passes; the table shows the median over ``--repeats`` samples after
``--warmup`` samples. Losses are timed round-robin inside each sample round, so machine noise hits them alike.

    PYTHONPATH=. python scripts/bench_losses.py --repeats 100          (or pip install -e . first)
    PYTHONPATH=. python scripts/bench_losses.py --threads 1 --clock cpu  (a shared, busy machine)
    PYTHONPATH=. python scripts/bench_losses.py --device cuda --repeats 300
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from seqtag.constants import IGNORE_INDEX
from seqtag.losses import LOSSES, get_loss

SHAPES = {"NER 32x128, C=9": (32 * 128, 9, 0.15), "QA 32 rows, C=384": (32, 384, 0.0)}


def make_inputs(n: int, c: int, ignored: float, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``logits (n, c)`` (requires grad) and ``targets (n,)`` with a fraction ``ignored`` set to -100."""
    gen = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(n, c, generator=gen)).to(device).requires_grad_(True)
    targets = torch.randint(0, c, (n,), generator=gen)
    targets[torch.rand(n, generator=gen) < ignored] = IGNORE_INDEX
    return logits, targets.to(device)


def time_fwd_bwd(fn: Callable, logits: torch.Tensor, targets: torch.Tensor, inner: int, device: str,
                 clock: Callable[[], float]) -> float:
    """Seconds for one forward+backward pass, averaged over ``inner`` passes."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = clock()
    for _ in range(inner):
        fn(logits, targets).backward()
        logits.grad = None
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (clock() - start) / inner


def bench(repeats: int, warmup: int, inner: int, device: str,
          clock: Callable[[], float] = time.perf_counter) -> list[tuple[str, str, float, float]]:
    """Rows ``(shape, loss, median seconds, ratio to F.cross_entropy)``."""
    fns: dict[str, Callable] = {"F.cross_entropy": lambda lg, tg: F.cross_entropy(lg, tg, ignore_index=IGNORE_INDEX)}
    fns.update({name: get_loss(name) for name, spec in LOSSES.items() if spec.kind == "token"})
    rows = []
    for shape, (n, c, ignored) in SHAPES.items():
        logits, targets = make_inputs(n, c, ignored, device)
        samples: dict[str, list[float]] = {name: [] for name in fns}
        for i in range(warmup + repeats):
            for name, fn in fns.items():
                t = time_fwd_bwd(fn, logits, targets, inner, device, clock)
                if i >= warmup:
                    samples[name].append(t)
        ref = statistics.median(samples["F.cross_entropy"])
        for name, ts in samples.items():
            med = statistics.median(ts)
            rows.append((shape, name, med, med / ref))
    return rows


def markdown(rows: list[tuple[str, str, float, float]]) -> str:
    lines = ["| logits | loss | fwd+bwd median (us) | / F.cross_entropy |", "| --- | --- | ---: | ---: |"]
    lines += [f"| {shape} | `{name}` | {sec * 1e6:.0f} | {ratio:.2f} |" for shape, name, sec, ratio in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200, help="timed samples per loss and shape (median taken)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed samples first")
    parser.add_argument("--inner", type=int, default=5, help="forward+backward passes per sample")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed time; cpu: this thread's CPU time (with --threads 1 on a busy machine, "
                             "it ignores time spent waiting for other processes)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and (args.device != "cpu" or torch.get_num_threads() != 1):
        parser.error("--clock cpu measures one thread: use it with --device cpu --threads 1")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    rows = bench(args.repeats, args.warmup, args.inner, args.device, clock)
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} CPU threads, {args.clock} clock, "
          f"median of {args.repeats} samples x {args.inner} passes after {args.warmup} warmup samples\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
