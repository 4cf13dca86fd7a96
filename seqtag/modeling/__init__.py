"""The model: a standard ``transformers`` encoder with a token-classification head, and what runs on it.

- :mod:`~seqtag.modeling.loading`: the tokenizer and model, loaded safely (local paths, ``pkg:`` resources, Hub ids).
- :mod:`~seqtag.modeling.encoders`: the options each encoder family needs (prefix spaces, casing, refusals).
- :mod:`~seqtag.modeling.heads`: the CRF head around a transformers model (``model.head: crf``).
- :mod:`~seqtag.modeling.crf`: the linear-chain CRF (exact negative log-likelihood, Viterbi, its saved file).
- :mod:`~seqtag.modeling.decoding`: constrained Viterbi over word scores (the tag scheme's allowed moves).
- :mod:`~seqtag.modeling.accel`: the device and precision (``mixed_precision: auto``) a model runs at.

Imports: data, config, losses, runs, metrics and the core modules (errors, paths, constants).
"""
