"""Tiny offline encoders of every tokenizer family seqtag supports, for the family test matrix.

Each family gets a tokenizer trained with the ``tokenizers`` library on the bundled WNUT-17 text (plus a few
lines of accented, CJK and emoji text), wrapped in the ``transformers`` class its real checkpoints load as,
and a randomly initialised 2-layer encoder of the matching architecture (hidden size 32), saved together as
one ``from_pretrained`` directory. The tokenizers are built as the real ones are:

| family | real checkpoint | tokenizer |
| --- | --- | --- |
| ``bert-cased`` | bert-base-cased | WordPiece, BERT normalizer (cased, CJK split), ``BertTokenizer`` |
| ``bert-uncased`` | bert-base-uncased | the same, lower-cased and accents stripped |
| ``roberta`` | roberta-base | byte-level BPE, ``RobertaTokenizer`` (``add_prefix_space=False`` as shipped) |
| ``xlm-roberta`` | xlm-roberta-base | SentencePiece Unigram with Metaspace, ``XLMRobertaTokenizer`` |
| ``deberta-v3`` | microsoft/deberta-v3-base | SentencePiece Unigram with Metaspace, ``DebertaV2Tokenizer`` |
| ``modernbert`` | answerdotai/ModernBERT-base | byte-level BPE in a generic ``PreTrainedTokenizerFast``, [CLS]/[SEP] template |
| ``electra`` | google/electra-base-discriminator | WordPiece (uncased), ``BertTokenizer`` |
| ``distilbert`` | distilbert-base-cased | WordPiece (cased), ``DistilBertTokenizer`` |

Building all eight took 5 s of CPU time (9 s wall on the shared 2-core machine, most of it the two Unigram
trainings); tests get them through the session fixture ``family_dir`` (tests/conftest.py), which builds each
family once, when first asked for.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from pathlib import Path

from hypothesis import strategies as st

FAMILIES = ("bert-cased", "bert-uncased", "roberta", "xlm-roberta", "deberta-v3", "modernbert", "electra", "distilbert")
BUNDLED_WNUT = Path(__file__).resolve().parents[1] / "seqtag" / "data" / "bundled" / "wnut17" / "train.txt"
# so that the hard characters of the tests are in the WordPiece and Unigram vocabularies, not all [UNK]
EXTRA_TEXT = (
    "Héllo Café naïve Zürich São Paulo Ελλάδα Москва", "我爱北京天安门 上海 东京 北京大学", "東京タワーへ行った",
    "🙂 👍🏽 👩\u200d💻 🇫🇷 ✔️", "John visited New York and Mary lives in Berlin .",
    "玛丽 约翰 安娜 彼得 住在 访问了 去了 北京 上海 东京 巴黎 。",
)
ZH_PERSONS = ("玛丽", "约翰", "安娜", "彼得")
ZH_PLACES = ("北京", "上海", "东京", "巴黎")
# mixed scripts, combining accents, emoji with skin tones and zero-width joiners, flags, non-breaking and
# ideographic spaces, tabs, zero-width space, CJK and kana, Python-only white space (\x1c, \x85, \u2028)
HARD = list("ab Zé\u0301\t\xa0\u3000\u200b\u200d\ufe0f🙂👍🏽👩💻🇫🇷北京東タワー.,!?'-()09\x1c\x85\u2028МоΣ")
hard_text = st.text(st.sampled_from(HARD) | st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
HIDDEN = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37,
          "max_position_embeddings": 130}


@functools.cache
def corpus() -> tuple[str, ...]:
    """The bundled WNUT-17 training sentences as text lines, then :data:`EXTRA_TEXT`."""
    lines, words = [], []
    for line in BUNDLED_WNUT.read_text(encoding="utf-8").splitlines():
        w = line.split("\t")[0].strip()
        if w:
            words.append(w)
        elif words:
            lines.append(" ".join(words))
            words = []
    return tuple(lines) + EXTRA_TEXT


def _train(pre_tokenizer, model, trainer, lines, normalizer=None):
    from tokenizers import Tokenizer

    tok = Tokenizer(model)
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.train_from_iterator(lines, trainer)
    return tok


def wordpiece_vocab(lowercase: bool) -> dict[str, int]:
    from tokenizers import models, normalizers, pre_tokenizers, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = _train(pre_tokenizers.BertPreTokenizer(), models.WordPiece(unk_token="[UNK]"),
                 trainers.WordPieceTrainer(vocab_size=2000, special_tokens=specials, show_progress=False),
                 corpus(), normalizers.BertNormalizer(lowercase=lowercase))
    return tok.get_vocab()


def byte_level_bpe(specials: list[str]):
    """A byte-level BPE ``tokenizers.Tokenizer`` (GPT-2's pre-tokenizer, no prefix space, as RoBERTa ships)."""
    from tokenizers import models, pre_tokenizers, trainers

    return _train(pre_tokenizers.ByteLevel(add_prefix_space=False), models.BPE(),
                  trainers.BpeTrainer(vocab_size=2000, special_tokens=specials, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()), corpus())


def unigram_vocab(specials: list[str], unk: str) -> list[tuple[str, float]]:
    """A SentencePiece-style Unigram vocabulary (pieces and log-probabilities) over Metaspace pre-tokens."""
    from tokenizers import models, pre_tokenizers, trainers

    tok = _train(pre_tokenizers.Metaspace(), models.Unigram(),
                 trainers.UnigramTrainer(vocab_size=1000, special_tokens=specials, unk_token=unk, show_progress=False),
                 corpus()[:1000] + EXTRA_TEXT)  # Unigram training is the slow one: 1,000 lines take 0.7 s
    return [tuple(p) for p in json.loads(tok.to_str())["model"]["vocab"]]


def _bert_like(tokenizer_class: str, lowercase: bool, model_type: str, **config):
    import transformers

    tok = getattr(transformers, tokenizer_class)(vocab=wordpiece_vocab(lowercase), do_lower_case=lowercase)
    return tok, transformers.AutoConfig.for_model(model_type, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                                                  **config)


def _roberta():
    from transformers import RobertaConfig, RobertaTokenizer

    state = json.loads(byte_level_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]).to_str())["model"]
    tok = RobertaTokenizer(vocab=state["vocab"], merges=[tuple(m) for m in state["merges"]])
    return tok, RobertaConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                              eos_token_id=tok.eos_token_id, type_vocab_size=1, **HIDDEN)


def _xlm_roberta():
    from transformers import XLMRobertaConfig, XLMRobertaTokenizer

    # XLMRobertaTokenizer expects <unk> at id 3, as in the real vocabulary
    tok = XLMRobertaTokenizer(vocab=unigram_vocab(["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<unk>"))
    return tok, XLMRobertaConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                 eos_token_id=tok.eos_token_id, type_vocab_size=1, **HIDDEN)


def _deberta_v3():
    from transformers import DebertaV2Config, DebertaV2Tokenizer

    tok = DebertaV2Tokenizer(vocab=unigram_vocab(["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"], "[UNK]"),
                             do_lower_case=False)
    # DeBERTa-v3's attention: relative positions (c2p and p2c), no absolute position embedding
    return tok, DebertaV2Config(vocab_size=len(tok), pad_token_id=tok.pad_token_id, type_vocab_size=0,
                                relative_attention=True, position_buckets=32, pos_att_type=["p2c", "c2p"],
                                norm_rel_ebd="layer_norm", share_att_key=True, position_biased_input=False, **HIDDEN)


def _modernbert():
    from tokenizers import decoders, pre_tokenizers, processors
    from transformers import ModernBertConfig, PreTrainedTokenizerFast

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    backend = byte_level_bpe(specials)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    ids = {s: backend.token_to_id(s) for s in specials}
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:0 [SEP]:0",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                  pad_token="[PAD]", mask_token="[MASK]",
                                  model_input_names=["input_ids", "attention_mask"])
    hidden = {**HIDDEN, "max_position_embeddings": 128}
    return tok, ModernBertConfig(vocab_size=len(tok), pad_token_id=ids["[PAD]"], bos_token_id=ids["[CLS]"],
                                 eos_token_id=ids["[SEP]"], cls_token_id=ids["[CLS]"], sep_token_id=ids["[SEP]"],
                                 local_attention=16, **hidden)


def _distilbert():
    from transformers import DistilBertConfig, DistilBertTokenizer

    tok = DistilBertTokenizer(vocab=wordpiece_vocab(False), do_lower_case=False)
    return tok, DistilBertConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, dim=32, n_layers=2, n_heads=2,
                                 hidden_dim=37, max_position_embeddings=130)


BUILDERS: dict[str, Callable] = {
    "bert-cased": lambda: _bert_like("BertTokenizer", False, "bert", **HIDDEN),
    "bert-uncased": lambda: _bert_like("BertTokenizer", True, "bert", **HIDDEN),
    "roberta": _roberta,
    "xlm-roberta": _xlm_roberta,
    "deberta-v3": _deberta_v3,
    "modernbert": _modernbert,
    "electra": lambda: _bert_like("BertTokenizer", True, "electra", embedding_size=32, **HIDDEN),
    "distilbert": _distilbert,
}


def build_family(family: str, path: str | Path, seed: int = 0) -> Path:
    """Write the tokenizer and a random encoder (no task head) of ``family`` into ``path``; return ``path``."""
    import torch
    from transformers import AutoModel

    path = Path(path)
    tok, config = BUILDERS[family]()
    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


class FamilyDirs:
    """``dirs(family)``: the model directory of ``family`` under ``root``, built on first use."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def __call__(self, family: str) -> Path:
        path = self.root / family
        if not (path / "config.json").is_file():
            build_family(family, path)
        return path


def family_config(tmp_path: str | Path, model_dir: str | Path, n_train: int = 64, make=None, **overrides) -> dict:
    """A raw config for a tiny NER run of a synthetic PER/LOC task on ``model_dir``, under ``tmp_path``: ``make(n,
    seed)`` gives the sentences (default :func:`tests.tiny.sentences`); ``overrides`` update a section each.

    Measured on the 2-core machine: 4 epochs of 64 sentences at learning rate 1e-2 reach dev and test F1 1.0 for
    every family; at 3e-3 DeBERTa-v3 and ModernBERT still tag "Paris" after "visited" as a person (dev 0.875).
    """
    from tests.tiny import sentences, write_conll

    tmp_path = Path(tmp_path)
    tmp_path.mkdir(parents=True, exist_ok=True)
    make = make or sentences
    files = {split: str(write_conll(tmp_path / f"{split}.txt", make(n, seed)))
             for split, n, seed in (("train", n_train, 1), ("dev", 20, 2), ("test", 5, 3))}
    cfg = {
        "task": "ner",
        "model": {"name_or_path": str(model_dir)},
        "data": {**files, "scheme": "IOB2", "max_length": 32, "stride": 8, "cache_dir": str(tmp_path / "cache")},
        "loss": {"name": "cross_entropy"},
        "train": {"output_dir": str(tmp_path / "run"), "epochs": 4, "batch_size": 8, "eval_batch_size": 8,
                  "learning_rate": 1e-2, "warmup_ratio": 0.0, "mixed_precision": "no", "seed": 7, "log_every": 1,
                  "plot": False},
    }
    for section, values in overrides.items():
        cfg[section] = {**cfg[section], **values}
    return cfg


def chinese_sentences(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """``n`` sentences with one character per token, the usual CoNLL layout of Chinese NER corpora (IOB2).

    >>> "".join(c for c, _ in chinese_sentences(1, seed=0)[0])
    '彼得访问了北京。'
    """
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        person, verb, place = rng.choice(ZH_PERSONS), rng.choice(("住在", "访问了", "去了")), rng.choice(ZH_PLACES)
        sent = [(c, ("B-" if i == 0 else "I-") + "PER") for i, c in enumerate(person)]
        sent += [(c, "O") for c in verb]
        sent += [(c, ("B-" if i == 0 else "I-") + "LOC") for i, c in enumerate(place)] + [("。", "O")]
        out.append(sent)
    return out
