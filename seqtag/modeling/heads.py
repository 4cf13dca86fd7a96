"""The CRF head (``model.head: crf``): a transformers token classifier and a linear-chain CRF as one ``nn.Module``.

:class:`CRFTagger` holds the encoder with its linear emission layer (an ``AutoModelForTokenClassification``, kept
as it is) and a :class:`seqtag.modeling.crf.CRF` over the word positions. Its ``forward`` is the inner model's, so it
returns the emission scores as ``.logits`` like any transformers token classifier and the training loop, the
inference path and accelerate see one model: ``accelerator.prepare`` moves both parts, DDP all-reduces the CRF's
gradients with the encoder's, and checkpoints (``save_state``/``load_state``) and resuming include the CRF.
The CRF's loss is computed by the NER task's loss step (:func:`seqtag.tasks.ner.crf_loss_step`), not in
``forward``.

On disk the run directory stays a plain ``from_pretrained`` directory for the encoder and emission layer;
:meth:`CRFTagger.save_pretrained` writes :data:`seqtag.modeling.crf.TRANSITIONS_FILE` beside it (the learned scores, ``-inf``
where the tag scheme forbids, and the labels they index), and :func:`load_crf_tagger` reads both back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from seqtag.modeling.crf import CRF, TRANSITIONS_FILE, load_transitions, save_transitions
from seqtag.modeling.decoding import transition_constraints


class CRFTagger(nn.Module):
    """A token classifier (``encoder``: emission scores ``(B, T, C)`` as ``.logits``) and a CRF over its labels.

    ``labels`` are the label of every id, in the encoder's ``id2label`` order; the CRF indexes the same ids.
    """

    def __init__(self, encoder: nn.Module, crf: CRF, labels: Sequence[str]) -> None:
        super().__init__()
        if crf.num_tags != len(labels):
            raise ValueError(f"the CRF has {crf.num_tags} tags but {len(labels)} labels were given")
        self.encoder = encoder
        self.crf = crf
        self.labels = list(labels)

    @property
    def config(self):
        """The encoder's transformers config (``id2label``, ``num_labels``...)."""
        return self.encoder.config

    def forward(self, **inputs):
        """The encoder's output: emission scores in ``.logits`` ``(B, T, C)``."""
        return self.encoder(**inputs)

    def save_pretrained(self, directory: str | Path, **kwargs) -> None:
        """The encoder's plain ``save_pretrained`` directory, and :data:`TRANSITIONS_FILE` beside its weights."""
        self.encoder.save_pretrained(directory, **kwargs)
        save_transitions(Path(directory) / TRANSITIONS_FILE, self.crf, self.labels)

    def load_transitions(self, path: str | Path) -> None:
        """Copy the scores of a transitions file into the CRF in place (labels and forbidden moves checked)."""
        _, *scores = load_transitions(path, self.labels)
        saved = CRF.from_transitions(*scores)
        for name in ("start_ok", "trans_ok", "end_ok"):
            if not (getattr(saved, name).cpu() == getattr(self.crf, name).cpu()).all():
                raise ValueError(f"{path}: its forbidden moves ({name}) differ from this CRF's")
        self.crf.load_state_dict(saved.state_dict())


def new_crf_tagger(encoder: nn.Module, labels: Sequence[str], scheme: str) -> CRFTagger:
    """A CRF head for training: transitions, start and end scores at 0, with the moves ``scheme`` forbids at
    ``-inf`` (masked: they stay forbidden and get no gradient). Draws no random numbers, so a CRF run and a linear
    run of the same seed start from the same encoder and classifier and see the same dropout masks."""
    return CRFTagger(encoder, CRF(len(labels), transition_constraints(labels, scheme)), labels)


def load_crf_tagger(encoder: nn.Module, run_dir: str | Path, labels: Sequence[str]) -> CRFTagger:
    """The CRF head of a finished run: ``encoder`` (loaded from ``run_dir``) and ``run_dir/`` :data:`TRANSITIONS_FILE`,
    which must index exactly ``labels``."""
    _, trans, start, end = load_transitions(Path(run_dir) / TRANSITIONS_FILE, labels)
    crf = CRF.from_transitions(trans, start, end).to(next(encoder.parameters()).device)
    return CRFTagger(encoder, crf, labels)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP (``.module``) or ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def crf_of(model: nn.Module) -> CRF | None:
    """The CRF of a (possibly wrapped) :class:`CRFTagger`; None for any other model."""
    inner = unwrap(model)
    return inner.crf if isinstance(inner, CRFTagger) else None
