"""seqtag.inference: batches bounded by a token budget; windows' logits gathered once each."""

from hypothesis import given, settings
from hypothesis import strategies as st

from seqtag.inference import token_budget_batches


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(1, 300), max_size=60), batch_size=st.integers(1, 70),
       max_tokens=st.integers(1, 2000))
def test_batches_cover_every_window_once_within_both_budgets(lengths, batch_size, max_tokens):
    batches = token_budget_batches(lengths, batch_size, max_tokens)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat, reverse=True)  # longest first: each batch pads to its first window
    for b in batches:
        assert len(b) <= batch_size
        assert len(b) == 1 or lengths[b[0]] * len(b) <= max_tokens  # one window longer than the budget goes alone
        # greedy: the next window would not have fitted (else the batch would have taken it)
    for b, nxt in zip(batches, batches[1:]):
        assert len(b) == batch_size or lengths[b[0]] * (len(b) + 1) > max_tokens or not nxt
