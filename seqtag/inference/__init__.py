"""Using a finished run: one inference path for training's evaluation, ``evaluate`` and ``predict``.

- :mod:`~seqtag.inference.engine`: a finished run loaded, token-budget batches, window logits, word-level scores
  and their decoding (argmax, constrained Viterbi, the CRF).
- :mod:`~seqtag.inference.predict`: raw text and files tagged, streamed, with character offsets.
- :mod:`~seqtag.inference.onnx`: an ONNX export directory and the ONNX Runtime backend that predicts with it;
  :mod:`~seqtag.inference.onnx_export` writes one (the graph, ONNX Runtime's fusions, int8 weights).

Imports: modeling, data, config, runs, losses, metrics and the core modules; never tasks or anything above.
"""
