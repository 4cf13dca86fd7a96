"""seqtag.modeling.encoders (through seqtag.modeling.loading's loaders): the tokenizer options each family needs are set and saved
with the run; slow-only tokenizers and model types without the task's head are refused before anything is
written."""

import importlib.util
import json
import shutil

import pytest

from seqtag.config import ModelConfig, from_dict
from seqtag.errors import SeqtagError
from seqtag.modeling.encoders import backend_state, word_level_problems
from seqtag.modeling.loading import load_model, load_tokenizer
from seqtag.training.loop import train
from tests.families import FAMILIES, family_config

NEEDS_PREFIX_SPACE = {"roberta", "modernbert"}  # byte-level BPE as shipped: add_prefix_space=false


@pytest.mark.parametrize("family", FAMILIES)
def test_options_are_set_and_saved_so_autotokenizer_and_pipeline_agree(family_dir, family, tmp_path):
    from transformers import AutoTokenizer

    path = family_dir(family)
    shipped = AutoTokenizer.from_pretrained(str(path))
    assert bool(word_level_problems(backend_state(shipped)["pre_tokenizer"])) == (family in NEEDS_PREFIX_SPACE)
    tok = load_tokenizer(ModelConfig(str(path)))
    assert word_level_problems(backend_state(tok)["pre_tokenizer"]) == []
    tok.save_pretrained(tmp_path)  # what train saves into the run directory
    reloaded = AutoTokenizer.from_pretrained(str(tmp_path))  # what pipeline() and a user of the pushed model get
    assert type(reloaded) is type(tok)
    words = ["Barack", "Obama", "visited", "Paris", ".", "北", "🙂"]
    for t in (tok, reloaded):
        assert t(words, is_split_into_words=True)["input_ids"] == tok(words, is_split_into_words=True)["input_ids"]
        assert t("Barack Obama visited Paris .")["input_ids"] == tok("Barack Obama visited Paris .")["input_ids"]
    # pre-split words and the same words as text give the same tokens: what the model is trained on is what a
    # pipeline feeds it
    assert tok(words[:5], is_split_into_words=True)["input_ids"] == tok("Barack Obama visited Paris .")["input_ids"]
    if family in NEEDS_PREFIX_SPACE:
        assert json.loads((tmp_path / "tokenizer_config.json").read_text())["add_prefix_space"] is True
        assert tok.convert_ids_to_tokens(tok(["Barack"], is_split_into_words=True)["input_ids"])[1].startswith("Ġ")


def test_a_metaspace_that_never_prepends_is_fixed_in_a_generic_tokenizer(family_dir, tmp_path):
    """A generic fast tokenizer whose Metaspace never prepends ``▁`` is rewritten, and the rewrite is saved."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    state = backend_state(AutoTokenizer.from_pretrained(str(family_dir("xlm-roberta"))))
    state["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": True}
    shutil.copytree(family_dir("xlm-roberta"), tmp_path / "m")
    backend = Tokenizer.from_str(json.dumps(state))
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", cls_token="<s>",
                            sep_token="</s>", bos_token="<s>", eos_token="</s>").save_pretrained(tmp_path / "m")
    tok = load_tokenizer(ModelConfig(str(tmp_path / "m")))
    assert backend_state(tok)["pre_tokenizer"]["prepend_scheme"] == "always"
    enc = tok(["Paris", "Rome"], is_split_into_words=True, add_special_tokens=False)
    starts = [enc.word_ids().index(w) for w in (0, 1)]
    assert [tok.convert_ids_to_tokens(enc["input_ids"][i])[0] for i in starts] == ["▁", "▁"]
    tok.save_pretrained(tmp_path / "saved")
    assert backend_state(AutoTokenizer.from_pretrained(str(tmp_path / "saved")))["pre_tokenizer"] == \
        backend_state(tok)["pre_tokenizer"]


def test_xlm_roberta_saved_without_prefix_space_is_reloaded_with_it(family_dir, tmp_path):
    from transformers import AutoTokenizer

    shutil.copytree(family_dir("xlm-roberta"), tmp_path / "m")
    AutoTokenizer.from_pretrained(str(tmp_path / "m"), add_prefix_space=False).save_pretrained(tmp_path / "m")
    assert word_level_problems(backend_state(AutoTokenizer.from_pretrained(str(tmp_path / "m")))["pre_tokenizer"])
    tok = load_tokenizer(ModelConfig(str(tmp_path / "m")))
    assert word_level_problems(backend_state(tok)["pre_tokenizer"]) == [] and tok.add_prefix_space is True


# ------------------------------------------------------------------------------------------------- refusals

@pytest.fixture
def slow_only_model(tmp_path):
    """CANINE: a character-level encoder with a token-classification head and only a Python tokenizer."""
    from transformers import CanineConfig, CanineModel, CanineTokenizer

    path = tmp_path / "canine"
    CanineModel(CanineConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                             downsampling_rate=2, num_hash_buckets=64)).save_pretrained(path)
    CanineTokenizer().save_pretrained(path)
    return path


@pytest.fixture
def headless_model(family_dir, tmp_path):
    """bert-generation: an encoder that transformers builds with neither a token-classification nor a QA head."""
    from transformers import BertGenerationConfig

    path = tmp_path / "bertgen"
    shutil.copytree(family_dir("bert-cased"), path)
    BertGenerationConfig(vocab_size=2000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=37).save_pretrained(path)
    return path


def _refused_before_anything_is_written(path, tmp_path, match):
    cfg = family_config(tmp_path / "exp", path, n_train=8)
    with pytest.raises(SeqtagError, match=match) as err:
        train(from_dict(cfg))
    assert str(path) in str(err.value) and "roberta-base" in str(err.value)  # the model, and what to use instead
    assert not (tmp_path / "exp" / "run").exists() and not (tmp_path / "exp" / "cache").exists()
    return str(err.value)


def test_a_slow_only_tokenizer_is_refused(slow_only_model, tmp_path):
    msg = _refused_before_anything_is_written(slow_only_model, tmp_path, "only as a Python")
    assert "CanineTokenizer" in msg and "word ids" in msg


def test_a_model_type_without_a_head_is_refused(headless_model, tmp_path):
    msg = _refused_before_anything_is_written(headless_model, tmp_path, "no token-classification head")
    assert "'bert-generation'" in msg


def test_a_model_with_a_qa_head_only_is_refused_for_token_classification(family_dir, tmp_path):
    from transformers import AutoModelForQuestionAnswering, AutoModelForTokenClassification, BartConfig

    path = tmp_path / "bart"
    shutil.copytree(family_dir("roberta"), path)
    BartConfig(vocab_size=2000, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
               decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37).save_pretrained(path)
    load_tokenizer(ModelConfig(str(path)))  # it has a QA head, so the tokenizer loads
    with pytest.raises(SeqtagError, match="'bart' has no token-classification head"):
        load_model(ModelConfig(str(path)), AutoModelForTokenClassification, num_labels=3)
    model = load_model(ModelConfig(str(path)), AutoModelForQuestionAnswering)  # the QA pointer head is fine
    assert type(model).__name__ == "BartForQuestionAnswering"


@pytest.mark.skipif(importlib.util.find_spec("sentencepiece") is not None, reason="sentencepiece is installed")
def test_a_sentencepiece_only_tokenizer_without_the_package_says_what_to_install(family_dir, tmp_path):
    """DeBERTa-v3 on the Hub ships spm.model and no tokenizer.json; without sentencepiece transformers falls back
    to tiktoken and reports that tiktoken is missing."""
    path = tmp_path / "deberta"
    shutil.copytree(family_dir("deberta-v3"), path)
    (path / "tokenizer.json").unlink()
    (path / "spm.model").write_bytes(b"\x0a\x05")
    with pytest.raises(SeqtagError, match="pip install sentencepiece protobuf"):
        load_tokenizer(ModelConfig(str(path)))


@pytest.mark.skipif(importlib.util.find_spec("sentencepiece") is None, reason="needs the sentencepiece package")
def test_a_sentencepiece_only_tokenizer_is_converted_when_the_package_is_there(family_dir, tmp_path):
    """The same checkpoint layout with sentencepiece installed: a fast DeBERTa-v2 tokenizer, saved with a
    tokenizer.json, so the run directory loads without the package."""
    import sentencepiece as spm

    from tests.families import corpus

    (tmp_path / "corpus.txt").write_text("\n".join(corpus()[:1000]) + "\n", encoding="utf-8")
    path = tmp_path / "deberta"
    path.mkdir()
    spm.SentencePieceTrainer.train(input=str(tmp_path / "corpus.txt"), model_prefix=str(path / "spm"), vocab_size=1000,
                                   model_type="unigram", pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]",
                                   bos_piece="[CLS]", eos_piece="[SEP]", unk_piece="[UNK]", minloglevel=2)
    (path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "DebertaV2Tokenizer"}))
    shutil.copy(family_dir("deberta-v3") / "config.json", path / "config.json")
    tok = load_tokenizer(ModelConfig(str(path)))
    assert type(tok).__name__ == "DebertaV2Tokenizer" and tok.is_fast
    assert tok.convert_ids_to_tokens(tok(["Barack"], is_split_into_words=True)["input_ids"])[1].startswith("▁")
    tok.save_pretrained(tmp_path / "run")
    assert (tmp_path / "run" / "tokenizer.json").is_file()
