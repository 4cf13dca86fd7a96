"""Data, from files to batches: readers, tag schemes, subword alignment, windows, batching, and statistics.

- Readers: :mod:`~seqtag.data.sentence` (the record every NER reader returns, and its tag checks),
  :mod:`~seqtag.data.conll`, :mod:`~seqtag.data.jsonl`, :mod:`~seqtag.data.readers` (by format, or a Hub split),
  :mod:`~seqtag.data.writers`, :mod:`~seqtag.data.squad` (QA), :mod:`~seqtag.data.files` (file checks, decoding),
  :mod:`~seqtag.data.hub_datasets` (opening a Hugging Face dataset split), :mod:`~seqtag.data.words` (raw text
  into words with character offsets).
- Tags: :mod:`~seqtag.data.schemes` (IOB1, IOB2, IOBES, BILOU: detection, validation, conversion, spans).
- Features: :mod:`~seqtag.data.align` (first-subword labels, overlapping windows), :mod:`~seqtag.data.ner` (the
  NER pipeline and its cache), :mod:`~seqtag.data.qa_windows` (QA windows and span decoding),
  :mod:`~seqtag.data.batching` (length-grouped batches, padding).
- About data: :mod:`~seqtag.data.stats` (``seqtag stats`` and the loss advice), :mod:`~seqtag.data.imbalance`
  (sets that differ only in their share of ``O``), :mod:`~seqtag.data.qa_subsets` (SQuAD 2.0 training sets with
  more unanswerable questions).

Imports: config, runs, losses, metrics and the core modules (errors, paths, constants).
"""
