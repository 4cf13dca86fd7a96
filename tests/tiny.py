"""A tiny, offline NER experiment for tests that run the real training loop.

:func:`make_tiny_model_dir` writes a random 2-layer BERT (hidden 32, 2 heads, intermediate 37) and a WordPiece
tokenizer over a handful of words into one ``from_pretrained`` directory; :func:`write_conll` writes CoNLL
files; :func:`tiny_config` ties them into a config dict that trains in a second or two on one CPU thread.

>>> SPECIALS
('[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]')
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PERSONS = ("john", "mary", "anna", "peter", "smith")
PLACES = ("paris", "berlin", "london", "rome", "york")
FILLER = ("lives", "in", "works", "at", "the", "city", "of", "and", "visited", "from", "new", ".", ",")
WORDS = PERSONS + PLACES + FILLER


def make_tiny_model_dir(path: str | Path, words: Iterable[str] = WORDS, seed: int = 0, **config) -> Path:
    """Write a random BERT encoder (no task head) and its tokenizer into ``path``; return ``path``.

    The vocabulary is :data:`SPECIALS` followed by ``words`` (lower-cased, duplicates dropped); the tokenizer
    lower-cases, so any casing of those words maps to one id and every other word to ``[UNK]``. ``config``
    overrides ``BertConfig`` fields (e.g. ``hidden_dropout_prob=0.0``).
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = list(SPECIALS) + [w for w in dict.fromkeys(w.lower() for w in words) if w not in SPECIALS]
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(vocab_file))  # transformers 5 ignores vocab_file=
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64, **config)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def write_conll(path: str | Path, sentences: Iterable[Sequence[tuple[str, str]]], sep: str = "\t",
                newline: str = "\n") -> Path:
    """Write sentences given as ``[(word, tag), ...]`` lists, a blank line after each; return ``path``."""
    path = Path(path)
    text = "".join("".join(f"{w}{sep}{t}{newline}" for w, t in s) + newline for s in sentences)
    path.write_bytes(text.encode("utf-8"))
    return path


def sentences(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """``n`` reproducible sentences of 3-8 words with PER and LOC entities (IOB2).

    >>> sentences(1, seed=0)[0][:2]
    [('Peter', 'B-PER'), ('works', 'O')]
    """
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        sent: list[tuple[str, str]] = []
        person = [rng.choice(PERSONS[:4]).capitalize()] + (["Smith"] if rng.random() < 0.4 else [])
        sent += [(w, "B-PER" if i == 0 else "I-PER") for i, w in enumerate(person)]
        sent.append((rng.choice(("lives", "works", "visited")), "O"))
        if sent[-1][0] != "visited":
            sent.append((rng.choice(("in", "at")), "O"))
        place = (["New", "York"] if rng.random() < 0.3 else [rng.choice(PLACES[:4]).capitalize()])
        sent += [(w, "B-LOC" if i == 0 else "I-LOC") for i, w in enumerate(place)]
        sent.append((".", "O"))
        out.append(sent)
    return out


def tiny_config(tmp_path: str | Path, n_train: int = 24, n_dev: int = 7, n_test: int = 5, **overrides) -> dict:
    """A complete raw config (as ``yaml.safe_load`` would return it) for a tiny NER run under ``tmp_path``.

    Writes ``tmp_path/model`` (once) and ``train.txt``, ``dev.txt``, ``test.txt``. ``overrides`` update a
    section each, e.g. ``tiny_config(tmp_path, train={"epochs": 3}, loss={"name": "focal", "gamma": 2})``;
    a section given as ``None`` is removed. The dev set (7 sentences) is odd and not a multiple of any batch
    size used here, so distributed evaluation must neither drop nor duplicate examples.
    """
    tmp_path = Path(tmp_path)
    model = tmp_path / "model"
    if not (model / "config.json").is_file():
        make_tiny_model_dir(model)
    files = {}
    for split, n, seed in (("train", n_train, 1), ("dev", n_dev, 2), ("test", n_test, 3)):
        if n:
            files[split] = str(write_conll(tmp_path / f"{split}.txt", sentences(n, seed)))
    cfg = {
        "task": "ner",
        "model": {"name_or_path": str(model)},
        "data": {**files, "scheme": "IOB2", "max_length": 32, "stride": 8, "cache_dir": str(tmp_path / "cache")},
        "loss": {"name": "cross_entropy"},
        "train": {"output_dir": str(tmp_path / "run"), "epochs": 2, "batch_size": 4, "eval_batch_size": 4,
                  "learning_rate": 1e-3, "warmup_ratio": 0.0, "mixed_precision": "no", "seed": 7, "log_every": 1,
                  "plot": False},
    }
    for section, values in overrides.items():
        if values is None:
            cfg.pop(section, None)
        elif isinstance(values, dict) and isinstance(cfg.get(section), dict):
            cfg[section] = {**cfg[section], **values}
        else:
            cfg[section] = values
    return cfg


def write_config(path: str | Path, cfg: dict) -> Path:
    """Write a raw config dict as YAML; return the path."""
    import yaml

    path = Path(path)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path
