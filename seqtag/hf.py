"""seqtag's losses inside the Hugging Face ``Trainer``, under the name the documentation uses:
``Trainer(..., compute_loss_func=seqtag.hf.trainer_loss("focal", gamma=2))``.

The implementation, its normalisation rule and the QA layout are in :mod:`seqtag.losses.trainer`.
"""

from __future__ import annotations

from seqtag.losses.trainer import trainer_loss, trainer_loss_value

__all__ = ["trainer_loss", "trainer_loss_value"]
