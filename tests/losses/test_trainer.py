"""Tests for seqtag.losses.trainer: registry losses in the real ``transformers.Trainer`` on tiny random BERTs (CPU, offline).

Every logged training loss of ``trainer_loss("cross_entropy")`` is compared with the Trainer's own loss, in two runs
from identical seeds, with gradient accumulation 1 and 4 and batches mixing 2-word and 50-word sentences.
"""

from __future__ import annotations

import random

import pytest
import torch

from seqtag.constants import IGNORE_INDEX
from seqtag.errors import LossConfigError
from seqtag.losses import LOSSES
from seqtag.losses.trainer import trainer_loss
from tests.tiny import make_tiny_model_dir

transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

LENGTHS = (2, 3, 40, 50)  # words per sentence: a batch of two is often 90% padding


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    transformers.logging.set_verbosity_error()
    return make_tiny_model_dir(tmp_path_factory.mktemp("hf") / "model", hidden_dropout_prob=0.0,
                               attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    return transformers.AutoTokenizer.from_pretrained(model_dir)


def token_rows(n: int, vocab_size: int, seed: int = 0, lengths=LENGTHS, num_labels: int = 3) -> list[dict]:
    """``n`` windows ``[CLS] w1 .. wk [SEP]``; the tag of a word is ``id % num_labels``; every 4th word is -100
    (as a non-first subword would be), and so are [CLS] and [SEP]."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        ids = [rng.randrange(5, vocab_size) for _ in range(rng.choice(lengths))]
        labels = [IGNORE_INDEX if i % 4 == 3 else t % num_labels for i, t in enumerate(ids)]
        rows.append({"input_ids": [2, *ids, 3], "attention_mask": [1] * (len(ids) + 2),
                     "labels": [IGNORE_INDEX, *labels, IGNORE_INDEX]})
    return rows


def fit(model, rows: list[dict], collator, tmp_path, *, grad_accum: int = 1, steps: int = 4,
        compute_loss_func=None, **args):
    """Train with the real Trainer; return it and the loss logged at every optimizer step."""
    args = {"learning_rate": 1e-3, "per_device_train_batch_size": 2, **args}
    targs = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), gradient_accumulation_steps=grad_accum, max_steps=steps, logging_steps=1,
        use_cpu=True, report_to=[], seed=3, save_strategy="no", disable_tqdm=True, **args)
    trainer = transformers.Trainer(model=model, args=targs, train_dataset=datasets.Dataset.from_list(rows),
                                   data_collator=collator, compute_loss_func=compute_loss_func)
    trainer.train()
    return trainer, [h["loss"] for h in trainer.state.log_history if "loss" in h]


def token_model(model_dir, num_labels: int = 3):
    torch.manual_seed(0)  # the classifier head is initialised at random
    return transformers.AutoModelForTokenClassification.from_pretrained(model_dir, num_labels=num_labels)


def transformers_token_loss(outputs, labels, num_items_in_batch=None):
    """The Trainer's own token-classification loss with its gradient-accumulation fix (sum / num_items_in_batch),
    as transformers' ``LOSS_MAPPING["ForTokenClassification"]`` computes it for heads that forward the count."""
    from transformers.loss.loss_utils import LOSS_MAPPING

    cfg = type("Cfg", (), {"num_labels": outputs["logits"].shape[-1]})()
    return LOSS_MAPPING["ForTokenClassification"](outputs["logits"], labels, cfg,
                                                  num_items_in_batch=num_items_in_batch)


# ---------------------------------------------------------------------------------------------------------------
# token classification: the logged loss equals the Trainer's own


def test_cross_entropy_equals_the_builtin_loss_without_accumulation(model_dir, tokenizer, tmp_path):
    rows = token_rows(32, tokenizer.vocab_size)
    collator = transformers.DataCollatorForTokenClassification(tokenizer)
    _, builtin = fit(token_model(model_dir), rows, collator, tmp_path, steps=8)
    _, ours = fit(token_model(model_dir), rows, collator, tmp_path, steps=8,
                  compute_loss_func=trainer_loss("cross_entropy"))
    assert len(ours) == 8 and len(set(ours)) == 8
    assert ours == pytest.approx(builtin, abs=1e-6, rel=0)


def test_cross_entropy_equals_the_trainers_accumulation_fixed_loss(model_dir, tokenizer, tmp_path):
    """grad_accum=4 with padding-heavy micro-batches: the per-token mean of the whole step, as transformers'
    own ``ForTokenClassification`` loss gives it from ``num_items_in_batch``."""
    rows = token_rows(32, tokenizer.vocab_size)
    collator = transformers.DataCollatorForTokenClassification(tokenizer)
    _, reference = fit(token_model(model_dir), rows, collator, tmp_path, grad_accum=4,
                       compute_loss_func=transformers_token_loss)
    _, ours = fit(token_model(model_dir), rows, collator, tmp_path, grad_accum=4,
                  compute_loss_func=trainer_loss("cross_entropy"))
    assert len(ours) == 4 and ours == pytest.approx(reference, abs=1e-6, rel=0)
    assert 0.9 < ours[0] < 1.3  # about log(3): one token mean, not a sum over micro-batches


def test_bert_builtin_loss_is_a_sum_of_micro_batch_means_under_accumulation(model_dir, tokenizer, tmp_path):
    """transformers 5.24: BertForTokenClassification declares ``**kwargs``, so the Trainer treats its loss as
    already normalised by ``num_items_in_batch`` and does not divide by the accumulation steps, but the head
    computes a plain per-micro-batch mean (transformers issue #47688). With equal micro-batches its first logged
    loss is exactly grad_accum times the per-token mean. If this fails, transformers fixed it: update
    docs/trainer.md."""
    rows = token_rows(16, tokenizer.vocab_size, lengths=(6,))
    rows = [{**r, "labels": [IGNORE_INDEX] + [t % 3 for t in r["input_ids"][1:-1]] + [IGNORE_INDEX]} for r in rows]
    collator = transformers.DataCollatorForTokenClassification(tokenizer)
    _, builtin = fit(token_model(model_dir), rows, collator, tmp_path, grad_accum=4, steps=1)
    _, ours = fit(token_model(model_dir), rows, collator, tmp_path, grad_accum=4, steps=1,
                  compute_loss_func=trainer_loss("cross_entropy"))
    assert builtin[0] == pytest.approx(4 * ours[0], rel=1e-6)


def test_focal_learns_a_token_task(model_dir, tokenizer, tmp_path):
    rows = token_rows(64, tokenizer.vocab_size, seed=1, lengths=(3, 5, 8))
    collator = transformers.DataCollatorForTokenClassification(tokenizer)
    trainer, losses = fit(token_model(model_dir), rows, collator, tmp_path, steps=60, learning_rate=1e-2,
                          compute_loss_func=trainer_loss("focal", gamma=2))
    model = trainer.model.eval()
    batch = collator(token_rows(32, tokenizer.vocab_size, seed=2, lengths=(3, 5, 8)))
    with torch.no_grad():
        pred = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.argmax(-1)
    keep = batch["labels"] != IGNORE_INDEX
    assert int(keep.sum()) > 100
    assert (pred[keep] == batch["labels"][keep]).float().mean().item() == 1.0
    assert losses[-1] < 0.05 * losses[0]


def test_evaluate_reports_the_same_eval_loss(model_dir, tokenizer, tmp_path):
    rows = token_rows(10, tokenizer.vocab_size)
    collator = transformers.DataCollatorForTokenClassification(tokenizer)
    results = []
    for f in (None, trainer_loss("cross_entropy")):
        targs = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), per_device_eval_batch_size=3,
                                               use_cpu=True, report_to=[], disable_tqdm=True)
        trainer = transformers.Trainer(model=token_model(model_dir), args=targs, data_collator=collator,
                                       eval_dataset=datasets.Dataset.from_list(rows), compute_loss_func=f)
        results.append(trainer.evaluate()["eval_loss"])
    assert results[1] == pytest.approx(results[0], abs=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# the function itself


def test_divides_the_summed_loss_by_num_items_in_batch():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, generator=gen, requires_grad=True)
    labels = torch.tensor([[0, 1, 2, -100, -100], [3, -100, 1, 1, 0]])
    f = trainer_loss("dice", alpha=0.5)
    per_token = LOSSES["dice"].fn(logits.reshape(-1, 4), labels.reshape(-1), alpha=0.5, reduction="none")
    assert f({"logits": logits}, labels, num_items_in_batch=torch.tensor(20)).item() == pytest.approx(
        per_token.sum().item() / 20, rel=1e-6)
    assert f({"logits": logits}, labels).item() == pytest.approx(per_token.sum().item() / 7, rel=1e-6)
    assert f({"logits": logits}, torch.full_like(labels, -100), num_items_in_batch=0).item() == 0.0
    f({"logits": logits}, labels, num_items_in_batch=7).backward()
    assert logits.grad.abs().sum() > 0 and logits.grad[0, 3].abs().sum() == 0


@pytest.mark.parametrize(("name", "params", "match"), [
    ("focal", {"gamma": -1}, r"loss 'focal': gamma=-1 is invalid; accepted: a finite number >= 0"),
    ("focal", {"gama": 2}, r"has no parameter 'gama'; accepted: gamma \(default 2.0\), alpha \(default None\)"),
    ("focul", {}, r"unknown loss 'focul'; valid names: cross_entropy, dice, focal, hard_truncation, lstar, "
                  r"lstar_logodds"),
])
def test_bad_loss_fails_before_the_trainer_exists(name, params, match, monkeypatch):
    created = []
    monkeypatch.setattr(transformers.Trainer, "__init__", lambda self, *a, **k: created.append(k))
    with pytest.raises(LossConfigError, match=match):
        transformers.Trainer(model=None, compute_loss_func=trainer_loss(name, **params))
    assert created == []


def test_clear_errors_on_missing_or_misshapen_labels():
    logits = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="no 'labels' column"):
        trainer_loss("cross_entropy")({"logits": logits}, None)
    with pytest.raises(ValueError, match=r"labels \(2, 4\) do not match logits \(2, 3, 4\)"):
        trainer_loss("cross_entropy")({"logits": logits}, torch.zeros(2, 4, dtype=torch.long))
    qa = {"start_logits": torch.zeros(2, 5), "end_logits": torch.zeros(2, 5)}
    with pytest.raises(ValueError, match=r"label_names=\['labels'\]"):
        trainer_loss("cross_entropy")(qa, None)
    with pytest.raises(ValueError, match="QA positions must be >= 0 or -100"):
        trainer_loss("cross_entropy")(qa, torch.tensor([[1, 2], [-3, 1]]))
    with pytest.raises(LossConfigError, match="alpha gives one value per class"):
        trainer_loss("focal", alpha=[1.0, 2.0])(qa, torch.tensor([[1, 2], [0, 0]]))


# ---------------------------------------------------------------------------------------------------------------
# extractive QA


def qa_rows(n: int, vocab_size: int, seed: int = 0, packed: bool = False) -> list[dict]:
    """Windows ``[CLS] q q [SEP] context [SEP]`` of 8 to 20 tokens; the answer span is at the first and the last
    context token whose id is even (the toy task); ``packed`` puts [start, end] in ``labels``."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        ctx = [rng.randrange(5, vocab_size) for _ in range(rng.randrange(4, 16))]
        ids = [2, rng.randrange(5, vocab_size), rng.randrange(5, vocab_size), 3, *ctx, 3]
        even = [4 + i for i, t in enumerate(ctx) if t % 2 == 0] or [0]
        start, end = even[0], even[-1]
        pos = {"labels": [start, end]} if packed else {"start_positions": start, "end_positions": end}
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), **pos})
    return rows


def qa_model(model_dir):
    torch.manual_seed(0)
    return transformers.AutoModelForQuestionAnswering.from_pretrained(model_dir)


@pytest.mark.parametrize("grad_accum", [1, 4])
def test_qa_cross_entropy_equals_the_builtin_loss(model_dir, tokenizer, tmp_path, grad_accum):
    """Micro-batches of equal size (32 windows, batches of 2), no position outside its window: transformers'
    per-micro-batch ``(mean start + mean end) / 2``, averaged over the step, is the per-window mean."""
    collator = transformers.DataCollatorWithPadding(tokenizer)
    _, builtin = fit(qa_model(model_dir), qa_rows(32, tokenizer.vocab_size), collator, tmp_path,
                     grad_accum=grad_accum)
    trainer, ours = fit(qa_model(model_dir), qa_rows(32, tokenizer.vocab_size, packed=True), collator, tmp_path,
                        grad_accum=grad_accum, compute_loss_func=trainer_loss("cross_entropy"),
                        label_names=["labels"])
    assert len(ours) == 4 and len(set(ours)) == 4
    assert ours == pytest.approx(builtin, abs=1e-6, rel=0)


def test_qa_positions_outside_the_window_and_minus_100_are_ignored():
    gen = torch.Generator().manual_seed(0)
    start, end = torch.randn(3, 6, generator=gen), torch.randn(3, 6, generator=gen)
    labels = torch.tensor([[1, 2], [9, 3], [-100, 0]])  # 9 >= T = 6: outside the window
    got = trainer_loss("cross_entropy")({"start_logits": start, "end_logits": end}, labels, num_items_in_batch=5)
    ce = torch.nn.functional.cross_entropy
    want = (ce(start[[0]], torch.tensor([1]), reduction="sum") + ce(end[[0, 1, 2]], torch.tensor([2, 3, 0]),
                                                                   reduction="sum")) / 5
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_qa_evaluate_reports_the_builtin_eval_loss(model_dir, tokenizer, tmp_path):
    collator = transformers.DataCollatorWithPadding(tokenizer)
    results = []
    for packed, f, names in ((False, None, None), (True, trainer_loss("cross_entropy"), ["labels"])):
        targs = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), per_device_eval_batch_size=3,
                                               use_cpu=True, report_to=[], disable_tqdm=True, label_names=names)
        trainer = transformers.Trainer(model=qa_model(model_dir), args=targs, data_collator=collator,
                                       eval_dataset=datasets.Dataset.from_list(
                                           qa_rows(9, tokenizer.vocab_size, seed=4, packed=packed)),
                                       compute_loss_func=f)
        results.append(trainer.evaluate()["eval_loss"])
    assert results[1] == pytest.approx(results[0], abs=1e-6)
