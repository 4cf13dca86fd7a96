"""The imbalance curve: the same losses on training sets that differ only in their share of ``O`` tokens.

One command builds the sets, runs the sweeps, and writes the tables and plots (docs/study/imbalance/README.md
says what they show):

    python scripts/imbalance_study.py                          # everything: ~3.5 h on 2 CPU cores (see --help)
    python scripts/imbalance_study.py --seeds 1                # the curve with one seed first
    python scripts/imbalance_study.py --budget equal-exposure  # the same protocol at equal exposure (below)
    python scripts/imbalance_study.py --report-only            # tables and plots from the runs there are

Sets (:mod:`seqtag.data.imbalance`): the first ``--entity-sentences`` CoNLL-2003 training sentences that hold an
entity, alone (82.3 % ``O`` at 250) and with entity-free training sentences added until the ``O`` share reaches
each of ``--levels``.

Budgets (``--budget``):

- ``fixed`` (the default): every run takes ``--steps`` optimizer steps of ``--batch`` sentences whatever the set's
  size (``train.max_steps``, with ``train.eval_every_epoch=false``: dev once, after the last step, whose weights
  are the result), so the sets differ in their imbalance and not in the training budget; a larger set's
  entity-bearing sentences are seen less often.
- ``equal-exposure``: the steps grow with the set, ``round(--steps x sentences / base sentences)`` (the base:
  the entity-bearing sentences alone), so every set's entity-bearing sentences are seen as often as at the base
  level (about 31 times at 240 steps of 32 over 250 sentences): 555 steps at 90 %, 1,243 at 95 %, 2,624 at
  97.5 % on CoNLL-2003. Dev is evaluated after every epoch (``train.eval_every_epoch=true``: one pass over the
  set, so about 30 evaluations a run at every level), the weights of the best epoch on dev are kept, and those
  are scored on the full dev and test sets.

Each level is one ``seqtag sweep`` directory ``OUT/NAME`` (``o82.3``, ``o90.0``...; ``o90.0-exposure`` under the
equal-exposure budget); finished runs are skipped, so the command resumes where it stopped, and so are the runs the
committed ``--report``/results.csv records (a fresh checkout trains only what it lacks; a recorded run is trained
again only when a re-decoding still to be made needs its weights). Each sweep prints how many runs it has to train
and their estimated time before it starts, and a progress line before each run.

Decoding: constrained Viterbi (``predict.decoding=viterbi``), and cross-entropy's runs re-decoded word by word
(``cross_entropy@decoding=argmax``, what ``pipeline()`` gives).

Rates: every setting runs the ``--lrs`` grid (first seed) at the lowest and the highest level; at a level in
between, a setting runs the rates that won at either end (one rate when both ends agree) and keeps the better
on dev. Seeds: the first seed at every level first (the curve's shape early), then the others.

Report (``--report``): ``results.csv`` (one row per run: the level's ``O`` share, entity and token counts, dev/test
F1, per-type F1 and wall time; once an equal-exposure run is among them, also each row's ``budget``, its optimizer
``steps`` and ``best_step``, the step of the epoch whose weights were kept; a row without a budget is ``fixed``),
``tables.md`` (paired test ΔF1 against cross-entropy per level and budget), ``curves.png`` (ΔF1 and F1 against
the ``O`` share: one line per setting and budget) and ``per_type_delta.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
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


BUDGETS = ("fixed", "equal-exposure")  # the report's order


def budget_of(row: dict) -> str:
    """A row's budget; rows written before budgets existed are ``fixed``."""
    return row.get("budget") or "fixed"


def level_steps(info: dict, name: str, steps: int, budget: str) -> int:
    """Optimizer steps of a run on set ``name``: ``steps``, or at equal exposure ``steps`` scaled by the set's size
    over the first (base) set's, so each entity-bearing sentence is seen as often as at the base level.

    >>> info = {"o82.3": {"sentences": 250}, "o90.0": {"sentences": 578}}
    >>> level_steps(info, "o90.0", 240, "fixed"), level_steps(info, "o90.0", 240, "equal-exposure")
    (240, 555)
    """
    if budget == "fixed":
        return steps
    return round(steps * info[name]["sentences"] / next(iter(info.values()))["sentences"])


def level_dir(out: Path, name: str, budget: str) -> Path:
    """The sweep directory of a level: ``OUT/o90.0``, or ``OUT/o90.0-exposure`` at equal exposure."""
    return out / (name if budget == "fixed" else f"{name}-exposure")


def level_overrides(train_file: Path, steps: int, args) -> list[str]:
    """The config of every run of a level: at the fixed budget dev once, after the last step; at equal exposure
    dev after every epoch, the best epoch's weights kept."""
    every_epoch = "true" if args.budget == "equal-exposure" else "false"
    return [f"data.train={train_file}", "data.tag_column=-1", f"train.max_steps={steps}", "train.epochs=100000",
            f"train.batch_size={args.batch}", f"train.eval_every_epoch={every_epoch}", "train.save_every_epoch=false",
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
            steps = level_steps(info, name, args.steps, args.budget)
            sweep_dir = level_dir(args.out, name, args.budget)
            print(f"== {sweep_dir.name} ({100 * info[name]['o_share']:.1f} % O, {steps} steps, {args.budget} "
                  f"budget), seeds {seeds}", file=sys.stderr, flush=True)
            run_sweep(args.config, level_overrides(paths[name], steps, args), settings, seeds, sweep_dir, lrs=lrs,
                      python=sys.executable, recorded={r["run"]: r for r in committed_rows(args, info)
                                                       if r["level"] == name and budget_of(r) == args.budget})
            rows = [r for r in collect(args, info) if r["level"] == name and budget_of(r) == args.budget]
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
            r["budget"] = budget_of(r)
            for k in ("o_share", "pool_passes", *PER_TYPE):
                r[k] = float(r[k]) if r.get(k) not in (None, "") else None
            for k in ("entity_tokens", "tokens", "sentences", "added_sentences"):
                r[k] = int(r[k])
            rows.append(r)
    return rows


def collect(args, info: dict) -> list[dict]:
    """Every run's row, of both budgets: those of each level's sweep directory (its results.csv, with the level's
    counts, the budget and each run's per-type F1), then those of the committed report that the directories do not
    hold, so a fresh checkout goes on from the committed runs (a sweep row whose run directory is not here, because
    the sweep skipped it as recorded, takes its per-type scores from the committed row)."""
    committed = {(r["budget"], r["level"], r["run"]): r for r in committed_rows(args, info)}
    rows = []
    for budget, (name, facts) in ((b, item) for b in BUDGETS for item in info.items()):
        path = level_dir(args.out, name, budget) / "results.csv"
        for r in read_results_csv(path) if path.is_file() else []:
            r.update(level=name, budget=budget, **facts)
            run_dir = path.parent / "runs" / r["run"]
            finished_here = r.get("status") == "finished" and (run_dir / "metrics.json").is_file()
            metrics = read_metrics(run_dir) if finished_here else {}
            earlier = committed.pop((budget, name, r["run"]), {})  # the committed row, if the report holds this run
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
BUDGET_LABEL = {"fixed": "fixed", "equal-exposure": "equal exposure"}
MARKER = {"fixed": "o", "equal-exposure": "s"}  # plots: one marker per budget, one colour per setting


def csv_keys(rows: list[dict]) -> list[str]:
    """:data:`CSV_KEYS`; once a row is not of the fixed budget, also each row's ``budget`` (after its level), and
    its optimizer ``steps`` and ``best_step`` (before its wall time). A report of fixed-budget rows alone keeps
    the columns it always had."""
    if all(budget_of(r) == "fixed" for r in rows):
        return CSV_KEYS
    keys = list(CSV_KEYS)
    keys.insert(keys.index("level") + 1, "budget")
    keys[keys.index("wall_time_s"):keys.index("wall_time_s")] = ["steps", "best_step"]
    return keys


def best_lrs(rows: list[dict]) -> dict[tuple, float]:
    """(budget, level, setting) -> the rate its sweep chose on the first seed (re-decoded settings: their
    source's)."""
    out = {}
    for group in dict.fromkeys((budget_of(r), r["level"]) for r in rows):
        group_rows = [r for r in rows if (budget_of(r), r["level"]) == group]
        first_seed = min(r["seed"] for r in group_rows)
        out.update({(*group, k): v for k, v in choose_lrs([r for r in group_rows if r["seed"] == first_seed]).items()})
    return out


def summary_table(rows: list[dict], budgets: list[str], levels: list[str], settings: list[str]) -> dict:
    """``{(budget, level, setting): cell}``: each setting at its chosen rate, mean ± std of dev and test F1, the
    paired differences to the first setting, per-type F1 by seed, optimizer steps and the best epoch's step."""
    chosen = best_lrs(rows)
    table = {}
    for budget in budgets:
        for level in levels:
            lr = {k[2]: v for k, v in chosen.items() if k[:2] == (budget, level)}
            level_rows = [r for r in rows if r["level"] == level and budget_of(r) == budget]
            for split in ("dev", "test") if level_rows else ():
                diffs = paired_differences(level_rows, lr, f"{split}_f1")
                for s in settings:
                    runs = [r for r in level_rows if r["setting"] == s and r.get("status") == "finished"
                            and r["lr"] == lr.get(s)]
                    cell = table.setdefault((budget, level, s), {"lr": lr.get(s), "seeds": len(runs)})
                    cell[split] = mean_std([r[f"{split}_f1"] for r in runs])
                    cell[f"{split}_delta"] = diffs.get(s)
                    for t in TYPES:
                        cell[f"{split}_{t}"] = {r["seed"]: r[f"{split}_f1_{t}"] for r in runs}  # paired by seed
                    cell["steps"] = sorted({r["steps"] for r in runs if r.get("steps") is not None})
                    cell["best_step"] = mean_std([r.get("best_step") for r in runs])
    return table


def steps_cells(c: dict) -> str:
    """The steps and best-step cells of a table row: ``555 | 412 ± 80``, empty where the rows do not say."""
    steps = "-".join(str(x) for x in dict.fromkeys([c["steps"][0], c["steps"][-1]])) if c["steps"] else ""
    best = c["best_step"]
    return f" {steps} | " + (f"{best[0]:.0f} ± {best[1]:.0f}" if not math.isnan(best[0]) else "") + " |"


def report(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # CE first (the baseline); the fixed budget's rows before the equal-exposure ones
    rows = sorted(rows, key=lambda r: (BUDGETS.index(budget_of(r)), r["o_share"], r["setting"], r["lr"] or 0,
                                       r["seed"]))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=csv_keys(rows), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    budgets = [b for b in BUDGETS if any(budget_of(r) == b for r in rows)]
    both = budgets != ["fixed"]  # a budget column, and the steps of each row, once another budget is there
    levels = sorted(dict.fromkeys(r["level"] for r in rows), key=lambda n: next(r["o_share"] for r in rows
                                                                               if r["level"] == n))
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    table = summary_table(rows, budgets, levels, settings)
    budget_cell = (lambda b: f" {BUDGET_LABEL[b]} |") if both else (lambda b: "")
    if both:
        lines = ["| O share | budget | setting | lr | seeds | dev F1 | test F1 | test ΔF1 vs CE (wins) | steps | "
                 "best dev step |", "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    else:
        lines = ["| O share | setting | lr | seeds | dev F1 | test F1 | test ΔF1 vs CE (wins) |",
                 "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for level in levels:
        share = next(r["o_share"] for r in rows if r["level"] == level)
        for s in settings:
            for b in budgets:
                c = table.get((b, level, s))
                if not c or not c["seeds"]:
                    continue
                d = c.get("test_delta")
                delta = f"{100 * d['mean']:+.2f} ± {100 * d['std']:.2f} ({d['wins']}/{len(d['diffs'])})" if d else ""
                lines.append(f"| {100 * share:.1f} % |{budget_cell(b)} `{s}` | {c['lr']:g} | {c['seeds']} | "
                             f"{100 * c['dev'][0]:.2f} ± {100 * c['dev'][1]:.2f} | "
                             f"{100 * c['test'][0]:.2f} ± {100 * c['test'][1]:.2f} | {delta} |"
                             + (steps_cells(c) if both else ""))
    base = settings[0]
    lines += ["", f"Per type: test ΔF1 vs `{base}` (points, mean over the seeds both have at each setting's rate)", "",
              "| O share |" + (" budget |" if both else "") + " setting | " + " | ".join(TYPES) + " |",
              "| --- |" + (" --- |" if both else "") + " --- |" + " ---: |" * len(TYPES)]
    for level in levels:
        share = next(r["o_share"] for r in rows if r["level"] == level)
        for s in settings[1:]:
            for b in budgets:
                mine, ref = table.get((b, level, s), {}), table.get((b, level, base), {})
                cells = []
                for t in TYPES:
                    d = type_deltas(mine.get(f"test_{t}"), ref.get(f"test_{t}"))
                    cells.append(f"{statistics.fmean(d):+.1f}" if d else "")
                if any(cells):
                    lines.append(f"| {100 * share:.1f} % |{budget_cell(b)} `{s}` | " + " | ".join(cells) + " |")
    (out / "tables.md").write_text("\n".join(lines) + "\n")
    plot(table, rows, levels, settings, budgets, out)


def type_deltas(mine: dict | None, ref: dict | None) -> list[float]:
    """Per-seed differences (points) of one type's F1, over the seeds both settings ran."""
    return [100 * (mine[k] - ref[k]) for k in sorted(set(mine or {}) & set(ref or {}))
            if mine[k] is not None and ref[k] is not None]


def plot(table: dict, rows: list[dict], levels: list[str], settings: list[str], budgets: list[str],
         out: Path) -> None:
    """``curves.png`` (test ΔF1 and test F1 against the O share) and ``per_type_delta.png``: one colour per setting;
    with both budgets, one line per setting and budget (circles: fixed; squares, dash-dot or dotted: equal
    exposure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = budgets != ["fixed"]
    share = {lv: 100 * next(r["o_share"] for r in rows if r["level"] == lv) for lv in levels}
    x_of = lambda lvs: [share[lv] for lv in lvs]  # noqa: E731
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    colour = {s: plt.get_cmap("tab10").colors[i % 10] for i, s in enumerate(settings)}  # one per setting, both panels
    for s in settings:
        for b in budgets:
            lv = [lv for lv in levels if table.get((b, lv, s), {}).get("seeds")]
            if not lv:
                continue
            m = [100 * table[(b, lv, s)]["test"][0] for lv in lv]
            sd = [100 * table[(b, lv, s)]["test"][1] for lv in lv]
            seeds = sorted({table[(b, x, s)]["seeds"] for x in lv})
            label = (f"{s}{f', {BUDGET_LABEL[b]}' if both else ''} "
                     f"({'-'.join(map(str, dict.fromkeys([seeds[0], seeds[-1]])))} seed{'s' * (seeds[-1] > 1)})")
            lines = ("-", "--") if b == "fixed" else ("-.", ":")
            style = {"ls": lines[seeds[0] == 1], "mfc": colour[s] if seeds[0] > 1 else "white", "marker": MARKER[b]}
            axes[1].errorbar(x_of(lv), m, yerr=sd, capsize=3, label=label, color=colour[s], **style)
            if s == settings[0]:
                continue
            lv = [lv for lv in levels if table.get((b, lv, s), {}).get("test_delta")]
            d = [table[(b, lv, s)]["test_delta"] for lv in lv]
            axes[0].errorbar(x_of(lv), [100 * x["mean"] for x in d], yerr=[100 * x["std"] for x in d],
                             capsize=3, label=label, color=colour[s], **style)
    axes[0].axhline(0, color="grey", lw=1)
    axes[0].set(xlabel="share of O tokens in the training set (%)", ylabel=f"test ΔF1 vs {settings[0]} (points)",
                title="paired by seed: mean ± std over seeds (dashed, open: one seed)" if not both else
                "paired by seed, mean ± std (open: one seed; squares: equal exposure)")
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
            for b in budgets:
                pts = []
                for lv in levels:
                    d = type_deltas(table.get((b, lv, s), {}).get(f"test_{t}"),
                                    table.get((b, lv, base), {}).get(f"test_{t}"))
                    if d:
                        pts.append((share[lv], statistics.fmean(d)))
                if pts:
                    ax.plot(*zip(*pts), marker=MARKER[b], ls="-" if b == "fixed" else "-.", color=colour[s],
                            label=f"{s}, {BUDGET_LABEL[b]}" if both else s)
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
    p.add_argument("--steps", type=int, default=240, help="optimizer steps of every run (equal-exposure budget: of "
                   "the base level's runs; the other levels' grow with their set)")
    p.add_argument("--budget", choices=BUDGETS, default="fixed",
                   help="fixed: --steps for every set, dev once at the end; equal-exposure: steps grow with the set "
                        "so its entity-bearing sentences are seen as often as at the base level, dev every epoch, "
                        "the best epoch's weights kept (sweep directories OUT/NAME-exposure)")
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
