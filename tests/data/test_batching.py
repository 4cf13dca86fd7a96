import torch

from seqtag.constants import IGNORE_INDEX
from seqtag.data.batching import LengthGroupedBatches, collate


def test_length_grouping_reduces_padding_and_covers_all():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 120, (1000,), generator=g).tolist()
    grouped = LengthGroupedBatches(lengths, 16, shuffle=True, seed=1)
    plain = LengthGroupedBatches(lengths, 16, shuffle=True, seed=1, group=False)

    def padded(batches):
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    gb, pb = list(grouped), list(plain)
    assert sorted(i for b in gb for i in b) == list(range(1000))
    assert padded(gb) < 0.75 * padded(pb)
    assert all(len(b) == 16 for b in gb[:-1])


def test_the_longest_example_is_in_the_first_batch_and_a_short_batch_stays_last():
    """Peak memory is allocated at step 1 on a fresh heap (and an out-of-memory batch fails at once)."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 120, (1003,), generator=g).tolist()
    lengths[517] = 200  # one outlier, wherever the shuffle puts it
    for group in (True, False):
        for epoch in range(3):
            s = LengthGroupedBatches(lengths, 16, shuffle=True, seed=epoch, group=group)
            s.use_epoch(epoch)
            batches = list(s)
            assert 517 in batches[0], (group, epoch)
            assert len(batches[-1]) == 1003 % 16 and all(len(b) == 16 for b in batches[:-1])
            assert sorted(i for b in batches for i in b) == list(range(1003))


def test_order_is_seeded_per_epoch():
    s = LengthGroupedBatches(list(range(100)), 8, shuffle=True, seed=3)
    s.use_epoch(0)
    a = list(s)
    s.use_epoch(1)
    b = list(s)
    s.use_epoch(0)
    assert list(s) == a and a != b


def test_collate_pads_per_column():
    batch = collate([{"input_ids": [1, 2, 3], "labels": [-100, 4, -100], "word_index": [-1, 0, -1]},
                     {"input_ids": [1, 2], "labels": [-100, 5], "word_index": [-1, 0]}], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [1, 2, 0]]
    assert batch["labels"].tolist() == [[-100, 4, -100], [-100, 5, IGNORE_INDEX]]
    assert batch["word_index"].tolist() == [[-1, 0, -1], [-1, 0, -1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_collate_pads_to_a_multiple_within_the_model_length():
    feats = [{"input_ids": [1] * 13, "labels": [0] * 13, "start": 3}, {"input_ids": [1] * 5, "labels": [0] * 5, "start": 1}]
    assert collate(feats, pad_token_id=0)["input_ids"].shape == (2, 13)  # the default: the longest example
    batch = collate(feats, pad_token_id=0, pad_to_multiple_of=8)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (2, 16)
    assert batch["attention_mask"].sum(1).tolist() == [13, 5] and batch["start"].tolist() == [3, 1]
    assert batch["labels"][0, 13:].tolist() == [IGNORE_INDEX] * 3 and batch["input_ids"][1, 5:].tolist() == [0] * 11
    assert collate(feats, pad_token_id=0, pad_to_multiple_of=8, max_length=14)["input_ids"].shape == (2, 14)
    assert collate(feats[1:], pad_token_id=0, pad_to_multiple_of=8, max_length=14)["input_ids"].shape == (1, 8)


def test_loader_settings_follow_the_device():
    from seqtag.data.batching import LoaderSettings, loader_settings

    assert loader_settings("cuda") == LoaderSettings(pad_to_multiple_of=8, pin_memory=True)
    assert loader_settings("cpu") == LoaderSettings(pad_to_multiple_of=None, pin_memory=False)
