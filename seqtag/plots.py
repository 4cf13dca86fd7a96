"""Training curves from ``history.jsonl``: loss per step and dev F1 per epoch, one PNG."""

from __future__ import annotations

import json
from pathlib import Path


def read_history(path: str | Path) -> tuple[list[dict], list[dict]]:
    """Step records and epoch records of a run's history file."""
    steps, epochs = [], []
    p = Path(path)
    if p.is_file():
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                (steps if rec.get("type") == "step" else epochs).append(rec)
    return steps, epochs


def plot_history(history: str | Path, out: str | Path) -> Path:
    """Write a two-panel PNG (training loss per optimizer step; dev F1 per epoch) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, epochs = read_history(history)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    if steps:
        ax1.plot([r["step"] for r in steps], [r["loss"] for r in steps], lw=1)
    ax1.set(xlabel="optimizer step", ylabel="training loss per labelled token", title="loss")
    dev = [(r["epoch"], r["dev"]["f1"]) for r in epochs if r.get("dev") and "f1" in r["dev"]]
    if dev:
        ax2.plot([e for e, _ in dev], [f for _, f in dev], marker="o")
    ax2.set(xlabel="epoch", ylabel="dev F1", title="dev F1")
    ax2.grid(alpha=0.3)
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)
