"""Studies of many runs: ``seqtag sweep`` (losses x seeds x learning rates, resumable run by run) and its report.

- :mod:`~seqtag.study.sweep`: the settings, the runs (each a ``seqtag train`` process), re-decodings of finished
  runs, the learning rate chosen per setting.
- :mod:`~seqtag.study.report`: ``results.csv``, the paired-seed tables and plots; a study's tables recompute from
  its CSV.
- :mod:`~seqtag.study.progress`: the time a sweep will take (seconds per optimizer step measured on its finished
  runs) and the progress line before each run.

Imports: training (its plots), data, config, runs, losses and the core modules; never publish or cli.
"""
