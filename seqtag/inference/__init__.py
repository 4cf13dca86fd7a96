"""Using a finished run: one inference path for training's evaluation, ``evaluate`` and ``predict``.

- :mod:`~seqtag.inference.engine`: a finished run loaded, token-budget batches, window logits, word-level scores
  and their decoding (argmax, constrained Viterbi, the CRF).
- :mod:`~seqtag.inference.predict`: raw text and files tagged, streamed, with character offsets.
- :mod:`~seqtag.inference.onnx`: the ONNX export of a run and the ONNX Runtime backend that predicts with it.

Imports: modeling, data, config, runs, losses, metrics and the core modules; never tasks or anything above.
"""
