"""The tables and plots of a sweep (``seqtag sweep``): ``results.csv`` (one row per run), ``results.md``
(summary at each setting's best rate, paired-by-seed differences, the learning-rate grid) and the PNG plots.

Pure over the result rows, except :func:`write_results`, which writes the files. Scores in the rows are fractions
(NER entity F1, QA EM/F1); the tables show them in percent.
"""

from __future__ import annotations

import csv
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from seqtag.training.plots import read_history

SCALE = 100.0
"""Rows hold fractions; tables and plots show percent."""


CSV_KEYS = ["setting", "loss", "params", "head", "decoding", "decoded_from", "lr", "seed", "status", "dev_f1", "test_f1", "dev_em",
            "test_em", "dev_invalid", "test_invalid", "best_epoch", "steps", "best_step", "wall_time_s", "run"]
_INTS = ("best_epoch", "steps", "best_step", "dev_invalid", "test_invalid")
_FLOATS = ("lr", "dev_f1", "test_f1", "dev_em", "test_em", "wall_time_s")


def read_results_csv(path: str | Path) -> list[dict]:
    """The rows of a sweep's ``results.csv``, typed as :func:`write_results` takes them (so a study's tables can
    be recomputed from its CSV alone)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            row = {k: v for k, v in r.items() if v != "" or k not in _FLOATS + _INTS}
            for k in _FLOATS:
                if k in row:
                    row[k] = float(row[k])
            row["seed"] = int(row["seed"])
            for k in _INTS:
                if k in row:
                    row[k] = int(row[k])
            rows.append(row)
    return rows


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value).

    >>> mean_std([0.4, 0.5, 0.6])
    (0.5, 0.1)
    """
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return float("nan"), float("nan")
    return round(statistics.fmean(vals), 10), round(statistics.stdev(vals), 10) if len(vals) > 1 else 0.0


def summarise(rows: Sequence[dict], best_lr: dict) -> list[dict]:
    """Mean ± std over seeds per setting, at the setting's chosen learning rate."""
    out = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        runs = [r for r in rows if r["setting"] == setting and r.get("status") == "finished"
                and r["lr"] == best_lr.get(setting, r["lr"])]
        entry = {"setting": setting, "lr": best_lr.get(setting), "seeds": len(runs),
                 "failed": sum(1 for r in rows if r["setting"] == setting and r.get("status") != "finished")}
        for key in ("dev_f1", "test_f1", "dev_em", "test_em"):
            if any(r.get(key) is not None for r in runs):
                entry[key] = mean_std([r.get(key) for r in runs])
        out.append(entry)
    return out


def paired_differences(rows: Sequence[dict], best_lr: dict, key: str) -> dict[str, dict]:
    """Each setting minus the first (the baseline), seed by seed, each at its chosen rate.

    Runs of one seed share the initialisation of the new layers and the order of the batches, so the paired
    difference removes most of the seed-to-seed spread that the unpaired mean ± std carries. Returns, per setting
    other than the baseline, ``{"diffs": [...], "mean": m, "std": s, "wins": n}`` over the seeds both finished.

    >>> rows = [{"setting": "ce", "lr": 1, "seed": s, "status": "finished", "f1": v} for s, v in ((1, .5), (2, .4))]
    >>> rows += [{"setting": "fl", "lr": 1, "seed": s, "status": "finished", "f1": v} for s, v in ((1, .6), (2, .45))]
    >>> paired_differences(rows, {"ce": 1, "fl": 1}, "f1")["fl"]["wins"]
    2
    """
    def by_seed(setting: str) -> dict[int, float]:
        return {int(r["seed"]): r[key] for r in rows if r["setting"] == setting and r.get("status") == "finished"
                and r["lr"] == best_lr.get(setting, r["lr"]) and r.get(key) is not None}

    settings = list(dict.fromkeys(r["setting"] for r in rows))
    if not settings:
        return {}
    base = by_seed(settings[0])
    out = {}
    for setting in settings[1:]:
        mine = by_seed(setting)
        diffs = [mine[s] - base[s] for s in sorted(set(mine) & set(base))]
        if diffs:
            m, sd = mean_std(diffs)
            out[setting] = {"diffs": diffs, "mean": m, "std": sd, "wins": sum(d > 0 for d in diffs)}
    return out


def _pm(ms, scale: float) -> str:
    m, s = ms
    return f"{m * scale:.2f} ± {s * scale:.2f}" if not math.isnan(m) else "–"


def write_results(rows: Sequence[dict], best_lr: dict, out: Path, plots: bool = True) -> None:
    out = Path(out)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_KEYS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    summary = summarise(rows, best_lr)
    qa = any("dev_em" in s for s in summary)
    scale = SCALE
    lines = ["## Summary (mean ± std over seeds, at each setting's best learning rate)", ""]
    if qa:
        lines += ["| loss setting | lr | seeds | dev EM (%) | dev F1 (%) | test EM (%) | test F1 (%) |",
                  "|---|---|---|---|---|---|---|"]
    else:
        lines += ["| loss setting | lr | seeds | dev F1 (%) | test F1 (%) |", "|---|---|---|---|---|"]
    for s in summary:
        cells = [s["setting"], f"{s['lr']:g}" if s["lr"] else "–", f"{s['seeds']}" + (f" ({s['failed']} failed)" if s["failed"] else "")]
        keys_ = ("dev_em", "dev_f1", "test_em", "test_f1") if qa else ("dev_f1", "test_f1")
        cells += [_pm(s.get(k, (float("nan"), 0)), scale) for k in keys_]
        lines.append("| " + " | ".join(cells) + " |")
    paired = {split: paired_differences(rows, best_lr, f"{split}_f1") for split in ("dev", "test")}
    if any(paired.values()):
        base = summary[0]["setting"]
        lines += ["", f"## Paired by seed: each setting minus {base} (F1 points, mean ± std of the per-seed differences)",
                  "", f"Runs with the same seed start from the same initialisation and see the same batches, so these "
                  f"differences carry less noise than the table above. wins: seeds on which the setting beat {base}.",
                  "", "| loss setting | dev ΔF1 | wins | test ΔF1 | wins |", "|---|---|---|---|---|"]
        for s in summary[1:]:
            cells = [s["setting"]]
            for split in ("dev", "test"):
                d = paired[split].get(s["setting"])
                cells += ([f"{d['mean'] * scale:+.2f} ± {d['std'] * scale:.2f}", f"{d['wins']}/{len(d['diffs'])}"]
                          if d else ["–", "–"])
            lines.append("| " + " | ".join(cells) + " |")
    lrs = sorted({r["lr"] for r in rows if r["lr"] is not None})
    if len(lrs) > 1:
        lines += ["", "## Learning-rate grid (first seed, dev F1)", "",
                  "| loss setting | " + " | ".join(f"{lr:g}" for lr in lrs) + " |", "|---|" + "---|" * len(lrs)]
        for setting in dict.fromkeys(r["setting"] for r in rows):
            cells = []
            for lr in lrs:
                r = next((r for r in rows if r["setting"] == setting and r["lr"] == lr), None)
                cells.append(f"{r['dev_f1'] * scale:.2f}" if r and r.get("dev_f1") is not None else "–")
            lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    if not plots:
        return
    try:
        plot_sweep(rows, summary, out, scale)
    except Exception as e:  # a plot must not lose the table
        print(f"plotting failed: {e}", file=sys.stderr)


def plot_sweep(rows: Sequence[dict], summary: Sequence[dict], out: Path, scale: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s["setting"] for s in summary]
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names)), 3.8))
    for i, key in enumerate(("dev_f1", "test_f1")):
        ms = [s.get(key, (float("nan"), 0.0)) for s in summary]
        ax.errorbar([x + 0.15 * (2 * i - 1) for x in range(len(names))], [m * scale for m, _ in ms],
                    yerr=[sd * scale for _, sd in ms], fmt="o", capsize=4, label=key.replace("_", " "))
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("F1" + (" (%)" if scale == 100 else ""))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "f1_by_loss.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)  # 20 distinct colours: no two settings share one
    dyn = []
    for s in summary:
        curves = []
        for r in rows:
            if r["setting"] == s["setting"] and r.get("status") == "finished" and r["lr"] == s["lr"]:
                steps, epochs = read_history(out / "runs" / r["run"] / "history.jsonl")
                curves.append([e["dev"].get("f1", float("nan")) for e in epochs if e.get("dev")])
                dyn.append((s["setting"], steps))
        if curves:
            n = min(len(c) for c in curves)
            mean = [statistics.fmean(c[i] for c in curves) * scale for i in range(n)]
            ax.plot(range(1, n + 1), mean, marker="o", label=s["setting"])
    ax.set(xlabel="epoch", ylabel="dev F1 (mean over seeds)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "dev_f1_per_epoch.png", dpi=110)
    plt.close(fig)

    if any(st and "weight_mean_o" in st[0] for _, st in dyn):
        # one run per setting (the first seed at its rate); weights on a log scale, since they span 1e-4 (L** at
        # k=2) to ~20 (inverse-frequency class weights); 20 distinct colours, so no two settings share one
        panels = [("weight_mean_entity", "mean weight, gold entity tokens", True),
                  ("weight_mean_o", "mean weight, gold O tokens", True),
                  ("mean_logit", "mean logit", False),
                  ("weight_below_0.01_entity", "share of entity tokens with weight < 0.01", False),
                  ("weight_below_0.01_o", "share of O tokens with weight < 0.01", False)]
        fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
        colours = plt.get_cmap("tab20").colors
        seen: list[str] = []
        for setting, steps in dyn:
            if setting in seen or not steps or "weight_mean_o" not in steps[0]:
                continue
            seen.append(setting)
            x = [r["step"] for r in steps]
            style = {"color": colours[(len(seen) - 1) % len(colours)], "ls": "-" if len(seen) <= 10 else "--"}
            for ax, (key, _, _) in zip(axes.flat, panels):
                ax.plot(x, [r.get(key, float("nan")) for r in steps], label=setting, **style)
        for ax, (_, title, log) in zip(axes.flat, panels):
            ax.set(title=title, xlabel="optimizer step")
            ax.grid(alpha=0.3)
            if log:
                ax.set_yscale("log")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        axes.flat[5].axis("off")
        axes.flat[5].legend(handles, labels, loc="center", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "dynamics.png", dpi=100)
        plt.close(fig)
