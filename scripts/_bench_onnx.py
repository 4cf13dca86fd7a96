"""ONNX helpers of the benchmarks (``bench_predict.py``, ``check_onnx_parity.py``): exports reused between calls,
and ONNX Runtime's matmul rate with float32 and with int8 weights (what int8 can gain on this CPU at most)."""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

import _bench_common as bc

INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # /proc/cpuinfo flags of int8 dot-product instructions


def exported(run: Path, out: Path, quantize: str | None, fuse: bool) -> Path:
    """``out`` if it already holds an export of ``run`` made this way (not re-exported), else a new export there
    (``seqtag.inference.onnx_export.export_run``; not timed), made in a child process: the peak RSS of every
    later child would otherwise start at this process's (Linux keeps the high-water mark across fork and exec)."""
    from seqtag.inference.onnx import is_export_dir, read_export_info

    if is_export_dir(out):
        info = read_export_info(out)
        if (info.source_run, info.quantization, info.fusion) == (str(Path(run).resolve()), quantize, fuse):
            return out
        sys.exit(f"{out} holds an export of another run, quantization or fusion; remove it or choose another "
                 f"directory")
    log = out.with_name(out.name + "-export.log")
    print(f"exporting {run} to {out} (quantization: {quantize}, fused: {fuse}; not timed) ... log {log}",
          file=sys.stderr, flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    code = ("import sys; from seqtag.inference.onnx_export import export_run; "
            "export_run(sys.argv[1], sys.argv[2], quantize=sys.argv[3] or None, fuse=sys.argv[4] == 'fused')")
    bc.check_child(bc.run_child([sys.executable, "-c", code, str(run), str(out), quantize or "",
                                 "fused" if fuse else "unfused"], log), f"exporting {run} to {out}")
    return out


def onnx_matmul_session(k: int, n: int, int8: bool, threads: int, workdir: Path):
    """An ONNX Runtime session of one ``(M, k) @ (k, n)`` MatMul with a constant float32 weight; with ``int8``
    the weight quantized as ``seqtag export --quantize int8`` quantizes it (dynamic, QInt8, per column), which
    ONNX Runtime runs as ``DynamicQuantizeMatMul`` (u8 activations x s8 weights)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w"], ["y"])], "matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["m", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", n])], [numpy_helper.from_array(weight, "w")])
    path = workdir / f"matmul-{k}x{n}.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)  # ORT 1.31 reads <= 13
    onnx.save(model, str(path))
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        logging.disable(logging.WARNING)  # a root warning recommending quant_pre_process, for every product
        try:
            quantize_dynamic(str(path), str(path.with_suffix(".int8.onnx")), weight_type=QuantType.QInt8,
                             per_channel=True)
        finally:
            logging.disable(logging.NOTSET)
        path = path.with_suffix(".int8.onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_ceiling(threads: int, repeats: int = 30, cap_s: float = bc.CEILING_CAP_S) -> dict[str, float]:
    """ONNX Runtime's MatMul rate on :data:`bc.CEILING_SHAPES`, GFLOP/s, float32 (``onnx-float32``) and with int8
    weights (``onnx-int8``, counting an int8 multiply-add as 2 FLOPs), each capped at ``cap_s`` seconds.

    int8 over float32 is what int8 weights can gain at most where the matmuls dominate: about 4x with int8
    dot-product instructions (AVX512-VNNI: 64 u8 x s8 products per instruction, against 16 fp32 FMAs), much
    less without them (AVX2 or AVX-512 without VNNI multiply bytes into 16-bit pairs and widen in two more
    instructions), minus quantizing the activations of every product."""
    import numpy as np

    print(f"measuring ONNX Runtime's matmul ceiling (float32, int8) with {threads} threads, at most {cap_s:g} s "
          f"each ...", file=sys.stderr, flush=True)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, int8 in (("onnx-float32", False), ("onnx-int8", True)):
            start, share, rates = time.perf_counter(), cap_s / len(bc.CEILING_SHAPES), []
            for i, (m, k, n) in enumerate(bc.CEILING_SHAPES):
                session = onnx_matmul_session(k, n, int8, threads, Path(tmp))
                a = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
                rates.append(bc.timed_rate(lambda s=session, x=a: s.run(None, {"a": x}), 2 * m * k * n, repeats, 10,
                                         start + (i + 1) * share))
            out[name] = bc.flop_weighted(rates)
    return out


def int8_dot_products() -> str:
    """The CPU's int8 dot-product instructions, as /proc/cpuinfo names them, or ``"none"``."""
    from seqtag.modeling.accel import cpu_flags

    return ", ".join(f for f in INT8_DOT_FLAGS if f in cpu_flags()) or "none"
