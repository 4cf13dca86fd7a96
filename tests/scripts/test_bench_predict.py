"""scripts/bench_predict.py: the matmul ceilings measured are those of the precisions that ran."""

from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.mark.parametrize("names,torch_dtypes,onnx", [
    (["seqtag-tagger", "pipeline-default"], ["float32"], False),
    (["seqtag-tagger", "seqtag-onnx-int8"], ["float32"], True),
    (["seqtag-tagger-bf16"], ["bfloat16"], False),
    (["seqtag-onnx-fp32-fused"], None, True),
])
def test_only_the_precisions_that_ran_get_a_ceiling(monkeypatch, names, torch_dtypes, onnx):
    """bf16's ceiling took about 15 minutes where bf16 is emulated: it is measured only after a bf16 row."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import _bench_common as bc
    import _bench_onnx as bo
    import bench_predict

    calls = []
    monkeypatch.setattr(bc, "ceiling", lambda threads, dtypes: calls.append(("torch", list(dtypes))) or
                        dict.fromkeys(dtypes, 1.0))
    monkeypatch.setattr(bo, "onnx_ceiling", lambda threads: calls.append(("onnx",)) or
                        {"onnx-float32": 1.0, "onnx-int8": 2.0})
    ceil = bench_predict.measure_ceilings({(name, 32): {} for name in names}, threads=2)
    assert calls == ([("torch", torch_dtypes)] if torch_dtypes else []) + ([("onnx",)] if onnx else [])
    assert set(ceil) == set(torch_dtypes or []) | ({"onnx-float32", "onnx-int8"} if onnx else set())
