"""The loss study as a tool: one config, trained once per (loss setting, learning rate, seed).

Protocol (what ``seqtag sweep`` does):

1. With several learning rates, every loss setting is first trained at every rate with the **first** seed;
   the rate with the best dev F1 is that setting's rate. (At a small budget the rate decides more than the
   loss, so each loss is compared at its own best rate.)
2. The remaining seeds run at that rate; with ``repeat_min_dev_f1`` (``--repeat-min-dev-f1``) a setting whose best
   dev F1 on the grid is below that value is not repeated (a collapsed loss needs no error bar to be read).
3. ``results.csv`` holds one row per run; ``results.md`` the grid and a summary of dev and test F1 (EM/F1 for
   QA) as mean ± sample standard deviation over seeds at the chosen rate; ``f1_by_loss.png`` and
   ``dev_f1_per_epoch.png`` plot them, and ``dynamics.png`` the loss-weight dynamics when the runs logged them.

Each run is a subprocess ``python -m seqtag train`` in ``OUT/runs/NAME``: a finished run is skipped, so the
sweep resumes where it stopped, and a failed run is reported and the sweep goes on.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from seqtag.errors import ConfigError
from seqtag.stats import inverse_frequency_weights


@dataclass(frozen=True)
class LossSetting:
    name: str
    params: dict = field(default_factory=dict)
    label: str = ""

    @property
    def slug(self) -> str:
        return self.label or (self.name + "".join(f"_{k}{v}" for k, v in sorted(self.params.items())))


def parse_loss_settings(specs: Sequence[str]) -> list[LossSetting]:
    """Parse ``NAME`` or ``NAME:param=value,param=value`` (values as YAML scalars; lists like ``[1,2]`` allowed).

    A leading ``LABEL=`` names the setting: ``ce_inv=cross_entropy:weight=inverse_frequency``.

    >>> [s.slug for s in parse_loss_settings(["cross_entropy", "focal:gamma=2", "lstar:k=0.5"])]
    ['cross_entropy', 'focal_gamma2', 'lstar_k0.5']
    """
    from seqtag.losses import validate_loss_params

    out = []
    for spec in specs:
        label = ""
        head = spec.split(":", 1)[0]
        if "=" in head:
            label, spec = spec.split("=", 1)
        name, _, rest = spec.partition(":")
        params = {}
        for item in filter(None, _split_params(rest)):
            if "=" not in item:
                raise ConfigError(f"loss setting {spec!r}: {item!r} must look like param=value")
            k, v = item.split("=", 1)
            params[k.strip()] = yaml.safe_load(v)
        if params.get("weight") != "inverse_frequency":
            validate_loss_params(name, params)
        out.append(LossSetting(name, params, label))
    slugs = [s.slug for s in out]
    if len(set(slugs)) != len(slugs):
        raise ConfigError(f"loss settings repeat: {slugs}")
    return out


def _split_params(text: str) -> list[str]:
    """Split on commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def _fmt_lr(lr: float) -> str:
    return f"{lr:.0e}".replace("e-0", "e-")


def run_name(setting: LossSetting, lr: float | None, seed: int) -> str:
    return f"{setting.slug}" + (f"-lr{_fmt_lr(lr)}" if lr is not None else "") + f"-s{seed}"


def _inverse_frequency_weights(cfg_path: str, overrides: Sequence[str]) -> list[float]:
    """Class weights N / (C * n_c) over the training labels, in the label order training will use."""
    from seqtag.config import load_config
    from seqtag.data.ner import load_ner_data

    cfg = load_config(cfg_path, list(overrides))
    data = load_ner_data(cfg.data)
    weights = inverse_frequency_weights(Counter(t for s in data.splits["train"] for t in s.tags), data.labels)
    return [round(weights[lab], 6) for lab in data.labels]


def _loss_overrides(setting: LossSetting, inv_weights) -> list[str]:
    out = [f"loss.name={setting.name}"]
    for k, v in setting.params.items():
        if v == "inverse_frequency":
            v = inv_weights()
        out.append(f"loss.{k}={json.dumps(v)}")
    return out


def _read_result(run_dir: Path) -> dict | None:
    from seqtag.runs import is_finished_run

    if not is_finished_run(run_dir):
        return None
    metrics = json.loads((run_dir / "metrics.json").read_text())
    info = json.loads((run_dir / "run_info.json").read_text())
    row = {"wall_time_s": info.get("wall_time_s"), "best_epoch": info.get("best_epoch")}
    for split in ("dev", "test"):
        m = metrics.get(split, {})
        row[f"{split}_f1"] = m.get("f1")
        if "exact_match" in m:
            row[f"{split}_em"] = m["exact_match"]
    return row


def run_sweep(config: str, overrides: Sequence[str], settings: Sequence[LossSetting], seeds: Sequence[int],
              out: str | Path, lrs: Sequence[float] | None = None, python: str = sys.executable,
              repeat_min_dev_f1: float | None = None) -> str:
    """Run the study (see the module docstring) and return the markdown summary."""
    from seqtag.config import load_config

    load_config(config, list(overrides))  # fail before running anything
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    cache: dict = {}

    def inv_weights():
        if "w" not in cache:
            cache["w"] = _inverse_frequency_weights(config, overrides)
        return cache["w"]

    rows: list[dict] = []
    lr_grid = list(lrs) if lrs else [None]
    plan = [(s, lr, seeds[0]) for s in settings for lr in lr_grid]
    total = len(plan) + len(settings) * (len(seeds) - 1)
    done = 0

    def run_one(setting, lr, seed) -> dict:
        nonlocal done
        done += 1
        name = run_name(setting, lr, seed)
        run_dir = out / "runs" / name
        row = {"setting": setting.slug, "loss": setting.name, "params": json.dumps(setting.params),
               "lr": lr, "seed": seed, "run": name}
        result = _read_result(run_dir)
        if result is not None:
            print(f"[{done}/{total}] {name}: finished earlier, skipped", file=sys.stderr, flush=True)
            return {**row, **result, "status": "finished"}
        args = [python, "-m", "seqtag", "train", config, *overrides, *_loss_overrides(setting, inv_weights),
                f"train.seed={seed}", f"train.output_dir={run_dir}", "train.keep_checkpoint=false"]
        from seqtag.runs import checkpoint_path

        args.append("train.resume=true" if checkpoint_path(run_dir) is not None else "train.overwrite=true")
        if lr is not None:
            args.append(f"train.learning_rate={lr}")
        print(f"[{done}/{total}] {name}: training", file=sys.stderr, flush=True)
        t0 = time.time()
        with open(out / "runs" / f"{name}.log", "w") as log:
            proc = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
        result = _read_result(run_dir)
        if proc.returncode != 0 or result is None:
            tail = (out / "runs" / f"{name}.log").read_text(errors="replace").strip().splitlines()[-1:]
            print(f"[{done}/{total}] {name}: FAILED (exit {proc.returncode}): {' '.join(tail)}", file=sys.stderr,
                  flush=True)
            return {**row, "status": f"failed (exit {proc.returncode})"}
        print(f"[{done}/{total}] {name}: dev f1 {result.get('dev_f1')}, test f1 {result.get('test_f1')} "
              f"({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
        return {**row, **result, "status": "finished"}

    for setting, lr, seed in plan:
        rows.append(run_one(setting, lr, seed))
    best = _best_on_grid(rows)
    best_lr = {k: lr for k, (_, lr) in best.items()}
    repeated = [s for s in settings
                if repeat_min_dev_f1 is None or best.get(s.slug, (0.0,))[0] >= repeat_min_dev_f1]
    for setting in settings:
        if setting not in repeated:
            print(f"{setting.slug}: best dev F1 {best.get(setting.slug, (None,))[0]} < {repeat_min_dev_f1}, "
                  f"not repeated with seeds {seeds[1:]}", file=sys.stderr, flush=True)
    total = len(plan) + len(repeated) * (len(seeds) - 1)  # the progress count, now that the grid is known
    for setting in repeated:
        for seed in seeds[1:]:
            rows.append(run_one(setting, best_lr.get(setting.slug, lr_grid[0]), seed))
    write_results(rows, best_lr, out)
    return (out / "results.md").read_text()


def choose_lrs(rows: Sequence[dict]) -> dict[str, float | None]:
    """Per setting, the learning rate with the best dev F1 (first seed's grid).

    >>> choose_lrs([{"setting": "ce", "lr": 1e-4, "dev_f1": 0.3, "status": "finished"},
    ...             {"setting": "ce", "lr": 2e-4, "dev_f1": 0.4, "status": "finished"}])
    {'ce': 0.0002}
    """
    return {k: lr for k, (_, lr) in _best_on_grid(rows).items()}


def _best_on_grid(rows: Sequence[dict]) -> dict[str, tuple[float, float | None]]:
    """Per setting, (best dev F1, its learning rate) over the finished runs."""
    best: dict[str, tuple[float, float | None]] = {}
    for r in rows:
        if r.get("status") != "finished" or r.get("dev_f1") is None:
            continue
        if r["setting"] not in best or r["dev_f1"] > best[r["setting"]][0]:
            best[r["setting"]] = (r["dev_f1"], r["lr"])
    return best


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


def write_results(rows: Sequence[dict], best_lr: dict, out: Path) -> None:
    out = Path(out)
    keys = ["setting", "loss", "params", "lr", "seed", "status", "dev_f1", "test_f1", "dev_em", "test_em",
            "best_epoch", "wall_time_s", "run"]
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    summary = summarise(rows, best_lr)
    qa = any("dev_em" in s for s in summary)
    scale = 1.0 if qa else 100.0
    lines = ["## Summary (mean ± std over seeds, at each setting's best learning rate)", ""]
    if qa:
        lines += ["| loss setting | lr | seeds | dev EM | dev F1 | test EM | test F1 |", "|---|---|---|---|---|---|---|"]
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
    try:
        plot_sweep(rows, summary, out, scale)
    except Exception as e:  # a plot must not lose the table
        print(f"plotting failed: {e}", file=sys.stderr)


def plot_sweep(rows: Sequence[dict], summary: Sequence[dict], out: Path, scale: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seqtag.plots import read_history

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
