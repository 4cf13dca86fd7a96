"""What seqtag needs from an encoder and its tokenizer, and the tokenizer options it sets, family by family.

seqtag gives every word one label through the tokenizer's word ids, and returns exact character offsets
through its offset mapping. So:

- **The tokenizer must be fast** (a ``tokenizers`` backend). A Python-only tokenizer (CANINE, ByT5, XLM, ...)
  is refused when the model is loaded.
- **The model type must have the head the task trains**: ``AutoModelForTokenClassification`` for NER and the
  QA tagging head, ``AutoModelForQuestionAnswering`` for the QA pointer head.
- **Pre-split words must be tokenized as words** (``is_split_into_words=True``). WordPiece (BERT, DistilBERT,
  ELECTRA) needs nothing. Byte-level BPE (RoBERTa, ModernBERT, GPT-2 style) marks a word start with the space
  before it, so each word must be given one: ``add_prefix_space=True``, else ``Barack`` is tokenized as the
  middle of a word. SentencePiece's Metaspace (XLM-R, DeBERTa-v2/v3) must put ``▁`` before every word:
  ``prepend_scheme`` ``"always"`` or ``"first"`` (``tokenizers`` treats each pre-split word as a first
  section), not ``"never"`` (what XLM-R's ``add_prefix_space=False`` means).

The options are set on the loaded tokenizer (:func:`word_level_options`, :func:`set_word_level`), so
``save_pretrained`` writes them into the run directory: ``add_prefix_space`` into ``tokenizer_config.json``
for the classes that rebuild their pre-tokenizer from it (RoBERTa, XLM-R, DeBERTa-v2), and the pre-tokenizer
itself into ``tokenizer.json`` for the generic fast tokenizer (ModernBERT). ``AutoTokenizer`` and
``pipeline()`` on the saved or pushed run then tokenize exactly as training did.
"""

from __future__ import annotations

import inspect
import json

from seqtag.errors import SeqtagError

# Suggested instead of a refused model: well-known encoders with fast tokenizers and both heads.
SUGGESTED = "bert-base-cased, roberta-base, microsoft/deberta-v3-base, xlm-roberta-base or answerdotai/ModernBERT-base"


def _pre_tokenizers(state: dict | None) -> list[dict]:
    """Every pre-tokenizer in a ``tokenizer.json`` ``pre_tokenizer`` object, Sequences flattened."""
    if not state:
        return []
    if state.get("type") == "Sequence":
        return [p for s in state.get("pretokenizers", []) for p in _pre_tokenizers(s)]
    return [state]


def word_level_problems(pre_tokenizer: dict | None) -> list[str]:
    """What keeps a pre-tokenizer (a ``tokenizer.json`` ``pre_tokenizer`` object) from marking every pre-split
    word as a word start; empty when nothing does.

    >>> word_level_problems({"type": "ByteLevel", "add_prefix_space": False, "use_regex": True})
    ['ByteLevel add_prefix_space=false']
    >>> word_level_problems({"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
    ...                      {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first"}]})
    []
    """
    out = []
    for p in _pre_tokenizers(pre_tokenizer):
        if p.get("type") == "ByteLevel" and not p.get("add_prefix_space"):
            out.append("ByteLevel add_prefix_space=false")
        elif p.get("type") == "Metaspace" and p.get("prepend_scheme", "always") == "never":
            out.append("Metaspace prepend_scheme=never")
    return out


def _with_word_starts(pre_tokenizer: dict) -> dict:
    """``pre_tokenizer`` with every ByteLevel adding a prefix space and every Metaspace prepending ``▁``."""
    if pre_tokenizer.get("type") == "Sequence":
        return {**pre_tokenizer, "pretokenizers": [_with_word_starts(p) for p in pre_tokenizer["pretokenizers"]]}
    if pre_tokenizer.get("type") == "ByteLevel":
        return {**pre_tokenizer, "add_prefix_space": True}
    if pre_tokenizer.get("type") == "Metaspace":
        return {**pre_tokenizer, "prepend_scheme": "always"}
    return pre_tokenizer


def backend_state(tokenizer) -> dict:
    """The fast tokenizer's ``tokenizer.json`` as a dict."""
    return json.loads(tokenizer.backend_tokenizer.to_str())


def word_level_options(tokenizer) -> dict:
    """Keyword arguments to reload ``tokenizer`` with so that it tokenizes pre-split words as words: its class's
    ``add_prefix_space=True`` where that class builds its pre-tokenizer from it (RoBERTa, GPT-2, XLM-R), else
    nothing (the pre-tokenizer is then set by :func:`set_word_level`)."""
    if not word_level_problems(backend_state(tokenizer).get("pre_tokenizer")):
        return {}
    if "add_prefix_space" in inspect.signature(type(tokenizer).__init__).parameters:
        return {"add_prefix_space": True}
    return {}


def set_word_level(tokenizer, name: str):
    """Make ``tokenizer`` mark every pre-split word as a word start, in place, and return it.

    The generic fast tokenizer keeps whatever pre-tokenizer its ``tokenizer.json`` holds, so a ByteLevel or
    Metaspace pre-tokenizer there is rewritten (and saved with it). Raises when that is not enough.
    """
    from tokenizers import Tokenizer

    state = backend_state(tokenizer)
    if not word_level_problems(state.get("pre_tokenizer")):
        return tokenizer
    # a throwaway tokenizer with an empty model turns the rewritten JSON back into a pre-tokenizer object
    carrier = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
               "pre_tokenizer": _with_word_starts(state["pre_tokenizer"]), "post_processor": None, "decoder": None,
               "model": {"type": "WordLevel", "vocab": {"x": 0}, "unk_token": "x"}}
    tokenizer.backend_tokenizer.pre_tokenizer = Tokenizer.from_str(json.dumps(carrier)).pre_tokenizer
    left = word_level_problems(backend_state(tokenizer).get("pre_tokenizer"))
    if left:
        raise SeqtagError(f"{name}: cannot make its tokenizer ({type(tokenizer).__name__}) tokenize pre-split words "
                          f"as words ({', '.join(left)}); use a model whose tokenizer can, e.g. {SUGGESTED}")
    # written to tokenizer_config.json too (save_pretrained saves the init keys, with the attributes' values)
    tokenizer.init_kwargs["add_prefix_space"] = tokenizer.add_prefix_space = True
    return tokenizer


def clear_call_state(tokenizer):
    """Switch the backend's truncation and padding off, in place, and return ``tokenizer``.

    transformers sets both on the backend at every call (a plain call switches them off, ``truncation=`` and
    ``padding=`` switch them on) and ``save_pretrained`` writes whatever the last call left into
    ``tokenizer.json``; a base model may also ship its own (all-MiniLM-L6-v2: ``max_length`` 128, ``Fixed``
    128). seqtag windows long texts itself and passes its own settings where it truncates (QA windows), so the
    tokenizer it loads, hashes into the tokenisation cache key and saves into a run directory always holds
    this one state: no truncation, no padding (``null`` in ``tokenizer.json``).
    """
    backend = tokenizer.backend_tokenizer
    if backend.truncation is not None:
        backend.no_truncation()
    if backend.padding is not None:
        backend.no_padding()
    return tokenizer


def check_fast(tokenizer, name: str) -> None:
    """Refuse a Python-only tokenizer: it has no word ids and no character offsets."""
    if not getattr(tokenizer, "is_fast", False):
        raise SeqtagError(
            f"{name}: its tokenizer ({type(tokenizer).__name__}) exists only as a Python ('slow') tokenizer, which "
            f"gives no word ids or character offsets; seqtag needs both to give every word one label and to "
            f"report exact entity offsets. Use an encoder with a fast tokenizer (a tokenizer.json), e.g. {SUGGESTED}")


def missing_tokenizer_package(message: str, name: str) -> str | None:
    """A clearer message for a SentencePiece-only tokenizer (``spm.model``, no ``tokenizer.json``: DeBERTa-v3
    on the Hub) loaded without the ``sentencepiece`` package; ``None`` for any other error. transformers then
    reports that ``tiktoken`` is missing, its last fallback.

    >>> missing_tokenizer_package("`tiktoken` is required to read a `tiktoken` file.", "m")[:40]
    'm: its tokenizer is a SentencePiece mode'
    """
    if "tiktoken" not in message and "sentencepiece" not in message.lower():
        return None
    return (f"{name}: its tokenizer is a SentencePiece model without a tokenizer.json, and converting it to a fast "
            f"tokenizer needs the sentencepiece package: pip install sentencepiece protobuf")


def has_head(config, auto_class) -> bool:
    """Whether ``auto_class`` (``AutoModelForTokenClassification``, ``AutoModelForQuestionAnswering``) can build
    a model of ``config``'s type, natively or through remote code that declares it."""
    return type(config) in auto_class._model_mapping or auto_class.__name__ in (getattr(config, "auto_map", None) or {})


def check_head(config, auto_class, name: str) -> None:
    """Refuse a model type that ``auto_class`` cannot build, before any weight is read."""
    if has_head(config, auto_class):
        return
    import transformers

    head = "token-classification" if "TokenClassification" in auto_class.__name__ else "question-answering"
    raise SeqtagError(f"{name}: model type {config.model_type!r} has no {head} head in transformers "
                      f"{transformers.__version__} ({auto_class.__name__} cannot build it), so seqtag cannot train "
                      f"it for this task. Use an encoder that has one, e.g. {SUGGESTED}")
