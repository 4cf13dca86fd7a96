"""scripts/_bench_common.py: a matmul ceiling stops at its time cap."""

import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def test_a_timed_rate_stops_at_its_deadline_and_keeps_the_rate_of_what_ran(monkeypatch):
    """A product that takes 50 ms (bf16 without native kernels takes seconds on the ceiling's shapes): 30 repeats
    of 10 would take 15 s; the deadline stops it after about 0.3 s, and the rate is that of the calls that ran."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import _bench_common as bc

    start = time.perf_counter()
    rate = bc.timed_rate(lambda: time.sleep(0.05), 1e9, repeats=30, inner=10, deadline=start + 0.3)
    assert time.perf_counter() - start < 2.0
    assert 10 < rate < 21  # GFLOP/s: 1 GFLOP per 50 ms call, less the loop's own time


def test_the_ceiling_measures_the_dtypes_asked_for_within_the_cap(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import _bench_common as bc

    monkeypatch.setattr(bc, "CEILING_SHAPES", ((64, 32, 48), (64, 48, 32)))
    start = time.perf_counter()
    ceil = bc.ceiling(1, cap_s=0.5, dtypes=["float32"])
    assert list(ceil) == ["float32"] and ceil["float32"] > 0
    assert time.perf_counter() - start < 5.0
