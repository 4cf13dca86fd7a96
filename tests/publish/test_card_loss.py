"""seqtag.publish.card_loss: the card states the objective each head trains on and how the loop normalises it.

The normalisations the card states are checked against the loss steps themselves: a CRF's loss step returns the
summed sequence NLL and its labelled words (the loop's divisor), the pointer head returns the mean of its start
and end losses summed over windows and the number of windows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seqtag.losses import get_loss
from seqtag.publish.card import render_card
from tests.fake_run import make_run
from tests.fake_run import split_front_matter as front_matter
from tests.publish.test_card import crf_run, section, with_config


def training(run: Path) -> str:
    return section(front_matter(render_card(run))[1], "Training")


def test_a_linear_ner_run_states_the_token_average(tmp_path):
    text = training(make_run(tmp_path, junk=False))
    assert ("It is averaged over the labelled positions of the optimizer step (all its micro-batches and processes); "
            "positions labelled -100 (special tokens, padding, continuation subwords) are ignored.") in text


def test_a_crf_run_states_the_sequence_nll_and_its_normalisation(tmp_path):
    text = training(crf_run(tmp_path))
    assert ("the config's `loss: {name: cross_entropy, weight: null, label_smoothing: 0.0}` is not used by this "
            "head") in text
    assert "s(x, y) = start[y_1] + sum_i e_i[y_i] + sum_{i>1} T[y_{i-1}, y_i] + end[y_n]" in text
    assert ("The chains' losses are summed and divided by the number of labelled words in the optimizer step (all "
            "its micro-batches and processes)") in text
    assert "Computed per labelled token" not in text and "averaged over the labelled positions" not in text


def test_the_crf_loss_step_returns_the_summed_nll_and_the_labelled_words():
    """What the CRF card states: the step's loss is the sum of the chains' NLLs; its count, the labelled words."""
    from transformers import BertConfig, BertForTokenClassification

    from seqtag.modeling.crf import CRF
    from seqtag.modeling.heads import CRFTagger, crf_of
    from seqtag.tasks.ner import crf_loss_step

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                     num_labels=3)
    model = CRFTagger(BertForTokenClassification(cfg), CRF(3), ["O", "B-X", "I-X"]).eval()  # no dropout
    labels = torch.tensor([[-100, 0, 1, -100, 2, -100], [-100, 1, 0, -100, -100, -100]])
    batch = {"input_ids": torch.randint(5, 30, (2, 6)), "attention_mask": torch.ones(2, 6, dtype=torch.long),
             "labels": labels, "word_index": torch.tensor([[-1, 0, 1, -1, 2, -1], [-1, 0, 1, -1, -1, -1]]),
             "num_words": torch.tensor([3, 2])}  # whole sentences: every chain has its start and end scores
    loss_sum, n, _, _ = crf_loss_step(model, batch, None)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    per_chain = crf_of(model).nll(logits, labels, reduction="none")
    assert int(n) == 5  # labelled words, the loop's divisor
    assert loss_sum.item() == pytest.approx(per_chain.sum().item(), rel=1e-6)


def test_a_pointer_qa_run_states_the_per_window_average(tmp_path):
    text = training(make_run(tmp_path, task="qa", junk=False))
    assert "Each window's start and end losses are averaged, and that average is averaged over the windows" in text
    assert "averaged over the labelled positions" not in text


def test_the_pointer_loss_step_averages_start_and_end_and_counts_windows():
    """What the pointer card states: the step returns (start + end) / 2 summed over windows, and the windows."""
    from seqtag.tasks.qa import pointer_loss_step

    class Pointer(torch.nn.Module):
        def forward(self, input_ids, **_):
            out = type("Out", (), {})()
            out.start_logits = torch.linspace(-1, 1, input_ids.numel()).reshape(input_ids.shape)
            out.end_logits = out.start_logits.flip(1)
            return out

    ctx = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 0]])
    batch = {"input_ids": torch.zeros(2, 6, dtype=torch.long), "attention_mask": torch.ones(2, 6, dtype=torch.long),
             "context_mask": ctx, "start_positions": torch.tensor([3, 0]), "end_positions": torch.tensor([5, 0])}
    loss_sum, n, _, _ = pointer_loss_step(Pointer(), batch, get_loss("cross_entropy"))
    out = Pointer()(batch["input_ids"])
    allowed = ctx.bool().clone()
    allowed[:, 0] = True
    ce = [torch.nn.functional.cross_entropy(logits[i][allowed[i]], (allowed[i].cumsum(0)[pos[i]] - 1))
          for logits, pos in ((out.start_logits, batch["start_positions"]), (out.end_logits, batch["end_positions"]))
          for i in range(2)]
    assert n == 2  # windows, the loop's divisor
    assert loss_sum.item() == pytest.approx(sum(ce).item() / 2, rel=1e-6)


def test_a_tagging_qa_run_states_the_token_average_over_the_context(tmp_path):
    run = with_config(make_run(tmp_path, task="qa", junk=False), data={"qa_head": "tagging"})
    text = training(run)
    assert ("It is averaged over the labelled positions of the optimizer step (all its micro-batches and processes); "
            "positions labelled -100 (the question, special tokens, padding) are ignored.") in text


@pytest.mark.parametrize("recorded, shown", [("no", "fp32"), ("bf16", "bf16"), ("fp16", "fp16")])
def test_training_precision_names_the_format(tmp_path, recorded, shown):
    from seqtag.publish.card_facts import precision_of

    run = make_run(tmp_path, junk=False)
    info = json.loads((run / "run_info.json").read_text())
    (run / "run_info.json").write_text(json.dumps({**info, "mixed_precision": recorded}))
    assert f"| training precision | {shown} |" in training(run)
    assert precision_of(recorded) == shown
