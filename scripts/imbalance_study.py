"""The imbalance curve: the same losses on training sets that differ only in their share of ``O`` tokens.

One command builds the sets, runs the sweeps, and writes the tables and plots (docs/study/imbalance/README.md
says what they show):

    python scripts/imbalance_study.py                          # everything: ~3.5 h on 2 CPU cores (see --help)
    python scripts/imbalance_study.py --seeds 1                # the curve with one seed first
    python scripts/imbalance_study.py --report-only            # tables and plots from the runs there are

Sets (:mod:`seqtag.data.imbalance`): the first ``--entity-sentences`` CoNLL-2003 training sentences that hold an
entity, alone (82.3 % ``O`` at 250) and with entity-free training sentences added until the ``O`` share reaches
each of ``--levels``. Every run takes ``--steps`` optimizer steps of ``--batch`` sentences whatever the set's
size (``train.max_steps``, with ``train.eval_every_epoch=false``: dev once, after the last step, whose weights are
the result), so the sets differ in their imbalance and not in the training budget. Each level is one
``seqtag sweep`` directory ``OUT/NAME`` (``o82.3``, ``o90.0``...); finished runs are skipped, so the command
resumes where it stopped, and so are the runs the committed ``--report``/results.csv records (a fresh checkout
trains only what it lacks; a recorded run is trained again only when a re-decoding still to be made needs its
weights).

Decoding: constrained Viterbi (``predict.decoding=viterbi``), and cross-entropy's runs re-decoded word by word
(``cross_entropy@decoding=argmax``, what ``pipeline()`` gives).

Rates: every setting runs the ``--lrs`` grid (first seed) at the lowest and the highest level; at a level in
between, a setting runs the rates that won at either end (one rate when both ends agree) and keeps the better
on dev. Seeds: the first seed at every level first (the curve's shape early), then the others.

Report (``--report``): ``results.csv`` (one row per run: the level's ``O`` share, entity and token counts, dev/test
F1 and per-type F1), ``README.md`` tables (paired test ΔF1 against cross-entropy per level), ``delta_f1.png``,
``f1.png``, ``per_type_delta.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

from seqtag.config import load_config
from seqtag.data.imbalance import imbalance_sets, write_sets
from seqtag.data.readers import read_tagged
from seqtag.runs import read_metrics
from seqtag.study.report import mean_std, paired_differences, read_results_csv
from seqtag.study.sweep import choose_lrs, parse_loss_settings, run_sweep

LOSSES = ["cross_entropy", "cross_entropy@decoding=argmax", "focal:gamma=1", "focal:gamma=2",
          "lstar_logodds:k=2", "hard_truncation:threshold=0.5"]  # decoded by Viterbi unless a setting says otherwise
TYPES = ["LOC", "MISC", "ORG", "PER"]
PER_TYPE = [f"{s}_f1_{t}" for s in ("dev", "test") for t in TYPES]


def level_overrides(train_file: Path, args) -> list[str]:
    return [f"data.train={train_file}", "data.tag_column=-1", f"train.max_steps={args.steps}", "train.epochs=100000",
            f"train.batch_size={args.batch}", "train.eval_every_epoch=false", "train.save_every_epoch=false",
            "train.mixed_precision=no", "train.plot=false", "train.log_every=10", "predict.decoding=viterbi",
            *args.overrides]


def run_study(args) -> list[dict]:
    cfg = load_config(args.config)
    sets = imbalance_sets(read_tagged(cfg.data.train, token_column=cfg.data.token_column,
                                      tag_column=cfg.data.tag_column), args.entity_sentences, args.levels)
    paths = write_sets(sets, args.out / "data")
    info = {s.name: {"o_share": s.o_share, "tokens": s.tokens, "entity_tokens": s.entity_tokens,
                     "sentences": len(s.sentences), "added_sentences": s.added_sentences,
                     "pool_passes": s.pool_passes} for s in sets}
    (args.out / "data" / "sets.json").write_text(json.dumps(info, indent=2) + "\n")
    settings = parse_loss_settings(args.losses)
    names = [s.name for s in sets]
    ends, middle = [names[0], names[-1]], names[1:-1]
    if args.report_only:
        return collect(args, info)
    for seeds in ([args.seeds[0]], args.seeds) if len(args.seeds) > 1 else (args.seeds,):
        won: dict[str, set] = {s.slug: set() for s in settings}
        for name in ends + middle:
            if name in ends:
                lrs = {s.slug: args.lrs for s in settings}
            else:  # the rates that won at either end
                lrs = {slug: sorted(r) for slug, r in won.items() if r}
            print(f"== {name} ({100 * info[name]['o_share']:.1f} % O), seeds {seeds}", file=sys.stderr, flush=True)
            run_sweep(args.config, level_overrides(paths[name], args), settings, seeds, args.out / name, lrs=lrs,
                      python=sys.executable, recorded={r["run"]: r for r in committed_rows(args, info)
                                                       if r["level"] == name})
            rows = [r for r in collect(args, info) if r["level"] == name]
            if name in ends:
                for slug, lr in choose_lrs([r for r in rows if r["seed"] == seeds[0]]).items():
                    won.get(slug, set()).add(lr)  # rows of settings not asked for this time are left out
    return collect(args, info)


def committed_rows(args, info: dict) -> list[dict]:
    """The rows of the committed report (``--report``/results.csv) of the levels in ``info``, typed."""
    committed = args.report / "results.csv"
    rows = []
    for r in read_results_csv(committed) if committed.is_file() else []:
        if r["level"] in info:
            for k in ("o_share", "pool_passes", *PER_TYPE):
                r[k] = float(r[k]) if r.get(k) not in (None, "") else None
            for k in ("entity_tokens", "tokens", "sentences", "added_sentences"):
                r[k] = int(r[k])
            rows.append(r)
    return rows


def collect(args, info: dict) -> list[dict]:
    """Every run's row: those of each level's sweep directory (its results.csv, with the level's counts and each
    run's per-type F1), then those of the committed report that the directories do not hold, so a fresh checkout
    goes on from the committed runs (a sweep row whose run directory is not here, because the sweep skipped it as
    recorded, takes its per-type scores from the committed row)."""
    committed = {(r["level"], r["run"]): r for r in committed_rows(args, info)}
    rows = []
    for name, facts in info.items():
        path = args.out / name / "results.csv"
        for r in read_results_csv(path) if path.is_file() else []:
            r.update(level=name, **facts)
            run_dir = args.out / name / "runs" / r["run"]
            finished_here = r.get("status") == "finished" and (run_dir / "metrics.json").is_file()
            metrics = read_metrics(run_dir) if finished_here else {}
            earlier = committed.pop((name, r["run"]), {})  # the committed row, if the report holds this run
            if finished_here:
                earlier = {}  # scores come from the run directory alone
            for split in ("dev", "test"):
                for t in TYPES:
                    pt = metrics[split].per_type.get(t) if split in metrics else None
                    r[f"{split}_f1_{t}"] = pt.f1 if pt else earlier.get(f"{split}_f1_{t}")
            rows.append(r)
    return rows + list(committed.values())

CSV_KEYS = ["level", "o_share", "entity_tokens", "tokens", "sentences", "added_sentences", "pool_passes", "setting",
            "loss", "params", "decoding", "decoded_from", "lr", "seed", "status", "dev_f1", "test_f1", "dev_invalid", "test_invalid",
            *PER_TYPE, "wall_time_s", "run"]


def best_lrs(rows: list[dict]) -> dict[tuple, float]:
    """(level, setting) -> the rate its sweep chose on the first seed (re-decoded settings: their source's)."""
    out = {}
    for level in dict.fromkeys(r["level"] for r in rows):
        level_rows = [r for r in rows if r["level"] == level]
        first_seed = min(r["seed"] for r in level_rows)
        out.update({(level, k): v for k, v in choose_lrs([r for r in level_rows if r["seed"] == first_seed]).items()})
    return out


def report(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: (r["o_share"], r["setting"], r["lr"] or 0, r["seed"]))  # CE first: the baseline
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_KEYS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    chosen = best_lrs(rows)
    levels = sorted(dict.fromkeys(r["level"] for r in rows), key=lambda n: next(r["o_share"] for r in rows
                                                                               if r["level"] == n))
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    table = {}  # (level, setting) -> {"test": (m, s), "dev": ..., "delta": {...}}
    for level in levels:
        lr = {k[1]: v for k, v in chosen.items() if k[0] == level}
        level_rows = [r for r in rows if r["level"] == level]
        for split in ("dev", "test"):
            diffs = paired_differences(level_rows, lr, f"{split}_f1")
            for s in settings:
                runs = [r for r in level_rows if r["setting"] == s and r.get("status") == "finished"
                        and r["lr"] == lr.get(s)]
                cell = table.setdefault((level, s), {"lr": lr.get(s), "seeds": len(runs)})
                cell[split] = mean_std([r[f"{split}_f1"] for r in runs])
                cell[f"{split}_delta"] = diffs.get(s)
                for t in TYPES:
                    cell[f"{split}_{t}"] = {r["seed"]: r[f"{split}_f1_{t}"] for r in runs}  # paired by seed
    lines = ["| O share | setting | lr | seeds | dev F1 | test F1 | test ΔF1 vs CE (wins) |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for level in levels:
        share = next(r["o_share"] for r in rows if r["level"] == level)
        for s in settings:
            c = table.get((level, s))
            if not c or not c["seeds"]:
                continue
            d = c.get("test_delta")
            delta = f"{100 * d['mean']:+.2f} ± {100 * d['std']:.2f} ({d['wins']}/{len(d['diffs'])})" if d else ""
            lines.append(f"| {100 * share:.1f} % | `{s}` | {c['lr']:g} | {c['seeds']} | "
                         f"{100 * c['dev'][0]:.2f} ± {100 * c['dev'][1]:.2f} | "
                         f"{100 * c['test'][0]:.2f} ± {100 * c['test'][1]:.2f} | {delta} |")
    base = settings[0]
    lines += ["", f"Per type: test ΔF1 vs `{base}` (points, mean over the seeds both have at each setting's rate)", "",
              "| O share | setting | " + " | ".join(TYPES) + " |", "| --- | --- |" + " ---: |" * len(TYPES)]
    for level in levels:
        share = next(r["o_share"] for r in rows if r["level"] == level)
        for s in settings[1:]:
            mine, ref = table.get((level, s), {}), table.get((level, base), {})
            cells = []
            for t in TYPES:
                d = type_deltas(mine.get(f"test_{t}"), ref.get(f"test_{t}"))
                cells.append(f"{statistics.fmean(d):+.1f}" if d else "")
            if any(cells):
                lines.append(f"| {100 * share:.1f} % | `{s}` | " + " | ".join(cells) + " |")
    (out / "tables.md").write_text("\n".join(lines) + "\n")
    plot(table, rows, levels, settings, out)


def type_deltas(mine: dict | None, ref: dict | None) -> list[float]:
    """Per-seed differences (points) of one type's F1, over the seeds both settings ran."""
    return [100 * (mine[k] - ref[k]) for k in sorted(set(mine or {}) & set(ref or {}))
            if mine[k] is not None and ref[k] is not None]


def plot(table: dict, rows: list[dict], levels: list[str], settings: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    share = {lv: 100 * next(r["o_share"] for r in rows if r["level"] == lv) for lv in levels}
    x_of = lambda lvs: [share[lv] for lv in lvs]  # noqa: E731
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    colour = {s: plt.get_cmap("tab10").colors[i % 10] for i, s in enumerate(settings)}  # one per setting, both panels
    for s in settings:
        lv = [lv for lv in levels if table.get((lv, s), {}).get("seeds")]
        m = [100 * table[(lv, s)]["test"][0] for lv in lv]
        sd = [100 * table[(lv, s)]["test"][1] for lv in lv]
        seeds = sorted({table[(x, s)]["seeds"] for x in lv})
        label = f"{s} ({'-'.join(map(str, dict.fromkeys([seeds[0], seeds[-1]])))} seed{'s' * (seeds[-1] > 1)})"
        style = {"ls": "-" if seeds[0] > 1 else "--", "mfc": colour[s] if seeds[0] > 1 else "white"}
        axes[1].errorbar(x_of(lv), m, yerr=sd, marker="o", capsize=3, label=label, color=colour[s], **style)
        if s == settings[0]:
            continue
        lv = [lv for lv in levels if table.get((lv, s), {}).get("test_delta")]
        d = [table[(lv, s)]["test_delta"] for lv in lv]
        axes[0].errorbar(x_of(lv), [100 * x["mean"] for x in d], yerr=[100 * x["std"] for x in d], marker="o",
                         capsize=3, label=label, color=colour[s], **style)
    axes[0].axhline(0, color="grey", lw=1)
    axes[0].set(xlabel="share of O tokens in the training set (%)", ylabel=f"test ΔF1 vs {settings[0]} (points)",
                title="paired by seed: mean ± std over seeds (dashed, open: one seed)")
    axes[1].set(xlabel="share of O tokens in the training set (%)", ylabel="test entity F1 (%)",
                title="absolute test F1, mean ± std over seeds")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(TYPES), figsize=(4 * len(TYPES), 3.8), sharey=True)
    base = settings[0]
    for ax, t in zip(axes, TYPES):
        for s in settings[1:]:
            pts = []
            for lv in levels:
                d = type_deltas(table.get((lv, s), {}).get(f"test_{t}"), table.get((lv, base), {}).get(f"test_{t}"))
                if d:
                    pts.append((share[lv], statistics.fmean(d)))
            if pts:
                ax.plot(*zip(*pts), marker="o", label=s, color=colour[s])
        ax.axhline(0, color="grey", lw=1)
        ax.set(title=f"{t}: test ΔF1 vs {base}", xlabel="O share (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("points (mean over seeds)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "per_type_delta.png", dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/conll2003_local.yaml", help="dev/test files and the model")
    p.add_argument("--out", type=Path, default=Path("runs/imbalance"), help="sets and sweep directories")
    p.add_argument("--report", type=Path, default=Path("docs/study/imbalance"), help="where tables and plots go")
    p.add_argument("--entity-sentences", type=int, default=250, help="entity-bearing sentences in every set")
    p.add_argument("--levels", type=float, nargs="+", default=[0.9, 0.925, 0.95, 0.975, 0.99],
                   help="O shares of the sets beyond the entity-bearing sentences alone")
    p.add_argument("--steps", type=int, default=240, help="optimizer steps of every run")
    p.add_argument("--batch", type=int, default=32, help="sentences per step")
    p.add_argument("--lrs", type=float, nargs="+", default=[2e-4, 4e-4], help="the grid at the two ends")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--losses", nargs="+", default=LOSSES, help="loss settings as `seqtag sweep --losses` takes them")
    p.add_argument("--report-only", action="store_true", help="no training: tables and plots from the runs there")
    p.add_argument("overrides", nargs="*", help="more key=value config overrides for every run")
    args = p.parse_args(argv)
    rows = run_study(args)
    if rows:
        report(rows, args.report)
        print((args.report / "tables.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
