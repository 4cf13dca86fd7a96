"""Loading tokenizers and models safely: safetensors only and no remote code unless the config says so."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from seqtag.config import ModelConfig
from seqtag.errors import ConfigError, SeqtagError
from seqtag.modeling import encoders
from seqtag.paths import resolve

log = logging.getLogger(__name__)


def model_path(model: ModelConfig) -> str:
    """The local directory or Hub id to load; a local-looking path that does not exist is a clear error."""
    path = resolve(model.name_or_path, "model.name_or_path")
    local = Path(path).expanduser()
    if local.exists():
        return str(local)
    if path.startswith((".", "/", "~")) or path.count("/") > 1 or os.sep != "/" and os.sep in path:
        raise ConfigError(f"model.name_or_path: {path} does not exist; give a local model directory or a Hub id "
                          f"like bert-base-cased")
    return path


def _one_line(e: Exception) -> str:
    """An exception's message as one paragraph (transformers' messages span several lines).

    >>> _one_line(OSError("no file.\\nCheck the path"))
    'no file. Check the path'
    """
    return " ".join(str(e).split())


def _common(model: ModelConfig) -> dict:
    return {"revision": model.revision, "trust_remote_code": model.trust_remote_code}


def _config(path: str, model: ModelConfig):
    """The model's transformers config, or ``None`` when it cannot be read (loading the weights then says why)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, **_common(model))
    except (OSError, ValueError):
        return None


def load_tokenizer(model: ModelConfig):
    """A fast tokenizer (offsets and word ids are needed for alignment), set to tokenize pre-split words as words
    (:mod:`seqtag.modeling.encoders`). A model type with neither a token-classification nor a question-answering head is
    refused here already, before any data is read."""
    from transformers import AutoModelForQuestionAnswering, AutoModelForTokenClassification, AutoTokenizer

    path = model_path(model)
    config = _config(path, model)
    if config is not None and not any(encoders.has_head(config, c) for c in (AutoModelForTokenClassification,
                                                                              AutoModelForQuestionAnswering)):
        encoders.check_head(config, AutoModelForTokenClassification, repr(path))
    try:
        tok = AutoTokenizer.from_pretrained(path, use_fast=True, **_common(model))
        options = encoders.word_level_options(tok) if tok.is_fast else {}
        if options:  # classes that build their pre-tokenizer from init options (RoBERTa's add_prefix_space)
            tok = AutoTokenizer.from_pretrained(path, use_fast=True, **_common(model), **options)
    except (OSError, ValueError) as e:
        raise SeqtagError(encoders.missing_tokenizer_package(str(e), repr(path)) or
                          f"could not load a tokenizer from {path!r}: {_one_line(e)} Check model.name_or_path (a local "
                          f"directory with tokenizer files, or a Hub id reachable from this machine)") from None
    encoders.check_fast(tok, repr(path))
    # the base model's truncation/padding (or none): the same state whether or not a tokenisation cache hit
    # spares every call to the tokenizer (cache keys hash the backend state, and save_model writes it)
    return encoders.clear_call_state(encoders.set_word_level(tok, repr(path)))


def load_model(model: ModelConfig, auto_class, **kwargs):
    """``auto_class.from_pretrained`` with seqtag's safety defaults.

    Weights load from safetensors only unless ``model.allow_pickle`` (pickle files can run code);
    ``trust_remote_code`` stays off unless ``model.trust_remote_code``.
    """
    from transformers.utils import logging as hf_logging

    path = model_path(model)
    config = _config(path, model)
    if config is not None:
        encoders.check_head(config, auto_class, repr(path))
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # transformers' LOAD REPORT table: summarised in one line below instead
    try:
        loaded, info = auto_class.from_pretrained(path, use_safetensors=not model.allow_pickle or None,
                                                  output_loading_info=True, **_common(model), **kwargs)
    except (OSError, ValueError) as e:
        msg = _one_line(e)
        if "safetensors" in msg.lower() and not model.allow_pickle:
            raise SeqtagError(f"{path!r} has no safetensors weights. seqtag does not load pickle weights by default "
                              f"because they can run code; convert the model, or set model.allow_pickle=true if "
                              f"you trust its source") from None
        raise SeqtagError(f"could not load the model from {path!r}: {msg}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    missing_encoder = any(k.split(".")[0] not in _HEAD_NAMES for k in info.get("missing_keys") or [])
    (log.warning if missing_encoder else log.info)("%s: %s", path, loading_summary(info))
    return loaded


def loading_summary(info: dict) -> str:
    """One line on what ``from_pretrained`` did not load: a new task head is expected when fine-tuning a
    pretrained encoder; missing encoder weights are not.

    >>> loading_summary({"missing_keys": ["classifier.weight", "classifier.bias"],
    ...                  "unexpected_keys": ["pooler.dense.weight"], "mismatched_keys": []})
    'a new task head was initialised (classifier.weight, classifier.bias), as expected when fine-tuning; unused checkpoint weights: pooler.dense.weight'
    """
    missing = list(info.get("missing_keys") or [])
    head = [k for k in missing if k.split(".")[0] in _HEAD_NAMES]
    other = [k for k in missing if k not in head]
    parts = []
    if head:
        parts.append(f"a new task head was initialised ({', '.join(head)}), as expected when fine-tuning")
    if other:
        parts.append(f"{len(other)} encoder weights were not in the checkpoint and are random "
                     f"({', '.join(other[:4])}{', ...' if len(other) > 4 else ''})")
    unexpected = list(info.get("unexpected_keys") or [])
    if unexpected:
        parts.append(f"unused checkpoint weights: {', '.join(unexpected[:4])}{', ...' if len(unexpected) > 4 else ''}")
    return "; ".join(parts) or "every weight of the model was loaded from the checkpoint"


_HEAD_NAMES = ("classifier", "qa_outputs", "score", "head")  # transformers' task-head names ("head": ModernBERT)
