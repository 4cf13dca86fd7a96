"""Evaluation metrics, pure (values in, values out: no files, no logging, no network).

- :mod:`~seqtag.metrics.ner`: entity scores with seqeval, conlleval-compatible and strict, and the per-type report.
- :mod:`~seqtag.metrics.squad`: SQuAD exact match and F1, as the official evaluation script computes them.
- :mod:`~seqtag.metrics.spans`: exact-match span scores over sets that may overlap and nest (the span head).
- :mod:`~seqtag.metrics.squad2`: SQuAD 2.0 (unanswerable questions): overall, HasAns and NoAns exact match and F1,
  and the no-answer threshold sweep, as the official v2.0 script computes them.

Every score is a fraction in [0, 1]. Imports: :mod:`seqtag.errors` only.
"""

from __future__ import annotations

from seqtag.metrics.ner import MODES, STRICT_SCHEMES, entity_scores, format_report, ner_report
from seqtag.metrics.spans import span_scores
from seqtag.metrics.squad import normalize_answer, squad_scores, squad_scores_from_refs
from seqtag.metrics.squad2 import squad2_dataset, squad2_scores

__all__ = ["MODES", "STRICT_SCHEMES", "entity_scores", "format_report", "ner_report", "normalize_answer",
           "span_scores", "squad2_dataset", "squad2_scores", "squad_scores", "squad_scores_from_refs"]
