"""Training curves from ``history.jsonl``, one PNG: training loss (log scale) and learning rate per optimizer step,
dev F1 per epoch, titled with the run, the loss and the model."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FEW_POINTS = 30
"""Step records up to which the loss and learning-rate lines are drawn with a marker at every point."""


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


def loss_label(name: str, params: Mapping[str, Any] | None = None) -> str:
    """A short name for a loss setting, for titles: per-class lists are summarised by their length.

    >>> loss_label("focal", {"gamma": 2.0, "alpha": None})
    'focal (gamma=2.0)'
    >>> loss_label("cross_entropy", {"weight": [0.1, 2.0, 2.0]})
    'cross_entropy (weight=[3 values])'
    """
    shown = [f"{k}=[{len(v)} values]" if isinstance(v, list | tuple) else f"{k}={v}"
             for k, v in (params or {}).items() if v is not None]
    return f"{name} ({', '.join(shown)})" if shown else name


def training_figure(history: str | Path, *, run_name: str = "", loss: str = "", model: str = ""):
    """The figure :func:`plot_history` writes (a ``matplotlib.figure.Figure`` with three axes).

    Left: training loss per labelled token per optimizer step, on a log scale (steps whose loss is 0 are not
    drawn), with markers when there are at most :data:`FEW_POINTS` records; middle: the learning rate each step used (the ``lr`` of the step records); right: dev F1 per epoch,
    with whole-number epoch ticks. Dotted lines on the left and middle mark the ends of epochs.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    steps, epochs = read_history(history)
    fig, (ax_loss, ax_lr, ax_f1) = plt.subplots(1, 3, figsize=(14, 3.8))
    x = [r["step"] for r in steps]
    losses = [r["loss"] for r in steps]
    # few points (a short run, or a long train.log_every): markers, so that a single point is drawn at all
    marker = "o" if len(steps) <= FEW_POINTS else None
    if steps:
        ax_loss.plot(x, losses, lw=1, marker=marker, ms=3)
        ax_lr.plot([r["step"] for r in steps if "lr" in r], [r["lr"] for r in steps if "lr" in r], lw=1,
                   marker=marker, ms=3)
    if any(v > 0 for v in losses):
        ax_loss.set_yscale("log")
    ax_loss.set(xlabel="optimizer step", ylabel="training loss per labelled token", title="training loss")
    ax_lr.set(xlabel="optimizer step", ylabel="learning rate", title="learning rate")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    for r in epochs:
        for ax in (ax_loss, ax_lr):
            ax.axvline(r["step"], color="0.6", ls=":", lw=0.8)
    dev = [(r["epoch"], r["dev"]["f1"]) for r in epochs if r.get("dev") and "f1" in r["dev"]]
    if dev:
        ax_f1.plot([e for e, _ in dev], [f for _, f in dev], marker="o")
    ax_f1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_f1.set(xlabel="epoch", ylabel="dev F1", title="dev F1")
    for ax in (ax_loss, ax_lr, ax_f1):
        ax.grid(alpha=0.3)
    title = "  |  ".join(part for part in (run_name, f"loss: {loss}" if loss else "",
                                           f"model: {model}" if model else "") if part)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(history: str | Path, out: str | Path, *, run_name: str = "", loss: str = "",
                 model: str = "") -> Path:
    """Write :func:`training_figure` as a PNG to ``out`` and return its path.

    ``run_name``, ``loss`` (e.g. :func:`loss_label`) and ``model`` make up the title; empty ones are left out.
    """
    import matplotlib.pyplot as plt

    fig = training_figure(history, run_name=run_name, loss=loss, model=model)
    # no "Software" entry naming the matplotlib version: the same history gives the same bytes
    fig.savefig(out, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return Path(out)
