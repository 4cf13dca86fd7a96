"""Loading tokenizers and models safely: safetensors only and no remote code unless the config says so."""

from __future__ import annotations

import os
from pathlib import Path

from seqtag import encoders
from seqtag.config import ModelConfig
from seqtag.errors import ConfigError, SeqtagError
from seqtag.paths import resolve


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
    (:mod:`seqtag.encoders`). A model type with neither a token-classification nor a question-answering head is
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
    return encoders.set_word_level(tok, repr(path))


def load_model(model: ModelConfig, auto_class, **kwargs):
    """``auto_class.from_pretrained`` with seqtag's safety defaults.

    Weights load from safetensors only unless ``model.allow_pickle`` (pickle files can run code);
    ``trust_remote_code`` stays off unless ``model.trust_remote_code``.
    """
    path = model_path(model)
    config = _config(path, model)
    if config is not None:
        encoders.check_head(config, auto_class, repr(path))
    try:
        return auto_class.from_pretrained(path, use_safetensors=not model.allow_pickle or None,
                                          **_common(model), **kwargs)
    except (OSError, ValueError) as e:
        msg = _one_line(e)
        if "safetensors" in msg.lower() and not model.allow_pickle:
            raise SeqtagError(f"{path!r} has no safetensors weights. seqtag does not load pickle weights by default "
                              f"because they can run code; convert the model, or set model.allow_pickle=true if "
                              f"you trust its source") from None
        raise SeqtagError(f"could not load the model from {path!r}: {msg}") from None
