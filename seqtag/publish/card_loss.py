"""The model card's loss paragraphs: the objective a run was trained on, as :mod:`seqtag.training.loop` computes it.

Three shapes: a registry loss per labelled token (NER with the linear head, QA with the tagging head), averaged
over the labelled positions of an optimizer step; the pointer QA head, whose start and end losses are averaged per
window and then over the windows (:func:`seqtag.tasks.qa.pointer_loss_step`); and the CRF head, whose sequence
negative log-likelihood replaces the registry loss and is divided by the labelled words
(:func:`seqtag.tasks.ner.crf_loss_step`).
"""

from __future__ import annotations

import yaml

from seqtag.publish.card_facts import CRF_FORMULA, CardRun, head_of, loss_doc


def loss_text(run: CardRun) -> list[str]:
    """The card's loss paragraphs: what the run minimised, its formula and symbols, and how the loop normalises it."""
    cfg = run.config
    formula, description, params = loss_doc(cfg.loss.name, dict(cfg.loss.params))
    snippet = yaml.safe_dump({"loss": {"name": cfg.loss.name, **params}}, default_flow_style=True, sort_keys=False,
                             width=1000).strip()[1:-1]  # loss: {name: focal, gamma: 2.0, alpha: null}
    if head_of(run) == "crf":
        scheme = run.info.tag_scheme or cfg.data.train_scheme
        return [
            "Loss: the negative log-likelihood of the gold tag sequence under the linear-chain CRF (`model.head: "
            f"crf`); the config's `{snippet}` is not used by this head.", "",
            "Computed per chain, the first subword of every word in a window, with e_i the emission scores (the "
            "token classifier's logits) of the chain's i-th word, T the learned transition scores, start and end "
            f"the scores of the first and last tag (`-inf` where {scheme} forbids a move), and Z(x) summing over "
            "every tag sequence y':", "", "```text", CRF_FORMULA, "```", "",
            "A window cut from a longer sentence has no start (end) score where it does not begin (end) the "
            "sentence. The chains' losses are summed and divided by the number of labelled words in the optimizer "
            "step (all its micro-batches and processes), so the logged loss is the negative log-likelihood of the "
            "gold sequences per word, in nats.", ""]
    what = description or f"`{cfg.loss.name}`, a loss this seqtag version does not document"
    lines = [f"Loss: {what}; in the config: `{snippet}`.", ""]
    if not formula:
        return lines
    pointer = cfg.task == "qa" and cfg.data.qa_head == "pointer"
    span = run.info.model_head == "span"
    where = ("for the start and for the end position, with p_t the predicted probability of the gold position"
             if pointer else "per sentence window and entity type, over its candidate spans k, with x a span's score, "
             "s = sigmoid(x) and y = 1 for a gold entity" if span else
             "per labelled token, with p_t the predicted probability of the gold label")
    symbols = [f"{sym} is the gold class's `{param}` (1 when null)" for sym, param in
               (("w_t", "weight"), ("alpha_t", "alpha")) if sym in formula and param in params]
    where += "".join(f"; {s}" for s in symbols)
    if pointer:
        norm = ("Each window's start and end losses are averaged, and that average is averaged over the windows of "
                "the optimizer step (all its micro-batches and processes): every window of a long context is one "
                "example, and one that does not hold the whole answer has its gold position at `[CLS]`. The "
                "question, special tokens and padding are not positions the model chooses from.")
    elif span:
        norm = ("It is summed over the entity types and averaged over the sentence windows; spans past a sentence's "
                "end or longer than `model.max_span_length` are ignored.")
    else:
        ignored = ("the question, special tokens, padding" if cfg.task == "qa" else
                   "special tokens, padding" + ("" if cfg.data.label_all_tokens else ", continuation subwords"))
        norm = ("It is averaged over the labelled positions of the optimizer step (all its micro-batches and "
                f"processes); positions labelled -100 ({ignored}) are ignored.")
    return lines + [f"Computed {where}:", "", "```text",
                    formula if formula.lstrip().startswith("L =") else f"L = {formula}", "```", "", norm, ""]
