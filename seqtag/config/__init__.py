"""Experiment configuration: frozen dataclasses, loaded from one flat YAML file plus ``key=value`` overrides.

Everything is validated at load, before any model or data is touched: an unknown key, a wrong type, an
unknown loss or an invalid loss parameter raises :class:`~seqtag.errors.ConfigError` naming the key, the value
and the valid choices.

>>> cfg = from_dict({"model": {"name_or_path": "bert-base-cased"}, "data": {"train": "train.txt"}})
>>> cfg.loss.name, cfg.train.learning_rate
('cross_entropy', 5e-05)
>>> apply_overrides(cfg, ["loss.name=focal", "loss.gamma=1", "train.epochs=2"]).loss.params
{'gamma': 1}

- :mod:`~seqtag.config.schema`: the dataclasses, defaults and choices.
- :mod:`~seqtag.config.load`: loading, type checks, overrides, the saved YAML.
- :mod:`~seqtag.config.rules`: ranges, encodings, repo ids, head/loss/decoding combinations.
- :mod:`~seqtag.config.heads`: which losses and decodings each head accepts.
- :mod:`~seqtag.config.heads`: the span head's rules and which kind of loss goes with which head.
- :mod:`~seqtag.config.reference`: ``docs/config.md``, generated from the two.

Imports: :mod:`seqtag.errors` and :mod:`seqtag.losses` (loss parameters are validated at load).
"""

from __future__ import annotations

from seqtag.config.load import apply_overrides, dump_config, from_dict, load_config, to_dict
from seqtag.config.rules import RANGES, Range, check_head, check_repo_id
from seqtag.config.schema import (
    CHOICES,
    DATA_FORMATS,
    DECODINGS,
    MIXED_PRECISION,
    MODEL_HEADS,
    QA_HEADS,
    SCHEMES_OR_AUTO,
    SECTIONS,
    TASKS,
    TRAIN_SCHEMES,
    Config,
    DataConfig,
    HubConfig,
    LossConfig,
    ModelConfig,
    PredictConfig,
    TrainConfig,
)

__all__ = ["CHOICES", "Config", "DATA_FORMATS", "DECODINGS", "DataConfig", "HubConfig", "LossConfig", "MIXED_PRECISION", "MODEL_HEADS", "ModelConfig", "PredictConfig", "QA_HEADS", "RANGES", "Range", "SCHEMES_OR_AUTO", "SECTIONS", "TASKS", "TRAIN_SCHEMES", "TrainConfig", "apply_overrides", "check_head", "check_repo_id", "dump_config", "from_dict", "load_config", "to_dict"]
