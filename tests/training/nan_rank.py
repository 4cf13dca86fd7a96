"""``accelerate launch ... -m tests.training.nan_rank DUMP_DIR RANK BATCH seqtag-train-args...``: ``seqtag train``
with the loss of one process's micro-batch made NaN.

Process ``RANK``'s ``BATCH``-th training micro-batch (1-based) gets a NaN loss; the other processes' losses stay
finite. Every process writes ``DUMP_DIR/rank{R}.json``: for each optimizer-step window, whether the loop skipped
it and a hash of the parameters before and after it (so a test can tell that a skipped window changed nothing and
that every replica holds the same weights). Exits with ``seqtag``'s exit status.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path


def params_hash(model) -> str:
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main() -> int:
    import seqtag.tasks.ner as ner
    import seqtag.training.loop as loop
    from seqtag.cli import main as seqtag_main

    dump, rank, at_batch, argv = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    me = int(os.environ.get("RANK", "0"))
    real_loss_step, real_step, calls, windows = ner.loss_step, loop.optimizer_step, [0], []

    def loss_step(model, batch, loss):
        calls[0] += 1
        loss_sum, n, logits, targets = real_loss_step(model, batch, loss)
        return (loss_sum * float("nan") if (me, calls[0]) == (rank, at_batch) else loss_sum), n, logits, targets

    def optimizer_step(run, window):
        entry = {"before": params_hash(run.model)}
        windows.append(entry)
        try:
            result = real_step(run, window)
        finally:  # also when the step raises
            entry["after"] = params_hash(run.model)
        entry["skipped"] = result is None
        return result

    ner.loss_step, loop.optimizer_step = loss_step, optimizer_step
    try:
        return seqtag_main(argv)
    finally:
        (dump / f"rank{me}.json").write_text(json.dumps(windows))
        import torch.distributed as dist

        if dist.is_initialized():  # no process exits (and has the launcher end the others) before all are done
            dist.barrier()


if __name__ == "__main__":
    sys.exit(main())
