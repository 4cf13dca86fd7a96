"""scripts/check_onnx_parity.py: torch and every ONNX export it checks tag through the run's own decoding."""

import json
from pathlib import Path

import pytest

from tests.fake_run import make_run

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install -e '.[onnx]')")
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.mark.usefixtures("one_thread")
def test_every_model_decodes_as_the_run_does(tmp_path, monkeypatch):
    """The run's scores were computed with Viterbi decoding (run_info.json): the ONNX taggers decode so too, not
    with the Tagger's default argmax, or the parity report compares decodings instead of models."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import check_onnx_parity

    run = make_run(tmp_path, junk=False)
    info = json.loads((run / "run_info.json").read_text())
    (run / "run_info.json").write_text(json.dumps({**info, "decoding": "viterbi"}))
    taggers, graphs = check_onnx_parity.load_taggers(run, tmp_path / "exports", batch_size=8, threads=1)
    assert list(taggers) == ["torch fp32", "onnx fp32", "onnx int8", "onnx fp32 fused", "onnx int8 fused"]
    assert {name: t.decoding for name, t in taggers.items()} == dict.fromkeys(taggers, "viterbi")
    assert graphs[0] == "- onnx fp32: fused none; int8 weights of none; exporter torchscript"
    assert graphs[2] == ("- onnx fp32 fused: fused EmbedLayerNormalization 1, Attention 2, BiasGelu 2, "
                         "SkipLayerNormalization 4; int8 weights of none; exporter torchscript")
    words = [["john", "smith", "lives", "in", "new", "york"], ["mary", "visited", "berlin", "."]]
    for (want_tags, want_scores), (tags, scores) in zip(taggers["torch fp32"].tag(words), taggers["onnx fp32"].tag(words)):
        assert tags == want_tags and scores == pytest.approx(want_scores, abs=1e-5)
