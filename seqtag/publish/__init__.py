"""Publishing a finished run: the model card and the Hub upload. Reads a run directory, nothing else.

- :mod:`~seqtag.publish.card_facts`: the facts a card states, read from the run's records.
- :mod:`~seqtag.publish.card_loss`: the card's loss paragraphs, per head, as the loop computes the loss.
- :mod:`~seqtag.publish.card_metadata`: the card's YAML front matter and ``model-index``.
- :mod:`~seqtag.publish.card`: the card's text.
- :mod:`~seqtag.publish.card_squad2`: the card's section for a run with unanswerable questions (SQuAD 2.0): the
  no-answer threshold, HasAns/NoAns scores, and plain transformers code that applies the threshold.
- :mod:`~seqtag.publish.span_card`: the parts of the card that differ for a span-head run.
- :mod:`~seqtag.publish.hub`: ``seqtag push``: what is uploaded, the token, the errors.

Imports: modeling (the CRF file name), data, config, runs, losses and the core modules; never training (which
imports it, to write the card at the end of a run), study or cli.
"""
