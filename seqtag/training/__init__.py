"""Training: the one accelerate loop and what it writes as it goes.

- :mod:`~seqtag.training.loop`: :func:`train`, reading top to bottom in the order things happen, and its steps.
- :mod:`~seqtag.training.state`: where a run is (saved with each checkpoint) and the live objects it shares.
- :mod:`~seqtag.training.checkpoints`: signals, atomic checkpoints, resume.
- :mod:`~seqtag.training.finish`: the best weights scored, saved and recorded (and the model card written) at the end.
- :mod:`~seqtag.training.budget`: the optimizer steps a run takes, and the advice when they are too few.
- :mod:`~seqtag.training.plots`: the training curves drawn from ``history.jsonl``.

Imports: everything below it (publish, for the model card; tasks, inference, modeling, data, config, runs, losses,
metrics); never study or cli.
"""

from __future__ import annotations

from seqtag.training.loop import train

__all__ = ["train"]
