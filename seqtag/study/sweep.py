"""The loss study as a tool: one config, trained once per (loss setting, learning rate, seed).

A setting is a loss and, optionally, the head and the decoding (see :func:`parse_loss_settings`):
``cross_entropy``, ``focal:gamma=2@decoding=viterbi``, ``crf=cross_entropy@head=crf``.

Protocol (what ``seqtag sweep`` does):

1. With several learning rates, every loss setting is first trained at every rate with the **first** seed;
   the rate with the best dev F1 is that setting's rate. (At a small budget the rate decides more than the
   loss, so each loss is compared at its own best rate.)
2. The remaining seeds run at that rate; with ``repeat_min_dev_f1`` (``--repeat-min-dev-f1``) a setting whose best
   dev F1 on the grid is below that value is not repeated (a collapsed loss needs no error bar to be read).
3. ``results.csv`` holds one row per run; ``results.md`` the grid and a summary of dev and test F1 (EM/F1 for
   QA) as mean ± sample standard deviation over seeds at the chosen rate (``results.csv`` also counts, per run, the
   dev and test sentences that argmax decoding tags invalidly, whatever the run's decoding); ``f1_by_loss.png`` and
   ``dev_f1_per_epoch.png`` plot them, and ``dynamics.png`` the loss-weight dynamics when the runs logged them.

Each run is a subprocess ``python -m seqtag train`` in ``OUT/runs/NAME``: a finished run is skipped, so the
sweep resumes where it stopped, and a failed run is reported and the sweep goes on.

A setting that differs from an earlier one of the same sweep in its decoding alone (``cross_entropy`` then
``cross_entropy@decoding=viterbi``) is not trained again: each of the earlier setting's runs is decoded again
(``seqtag evaluate --decoding`` on the config's dev and test files) into ``OUT/runs/NAME/metrics.json``, and the
setting takes the earlier one's learning rate. The pair then differs in the decoding and nothing else: the same
weights, the same best epoch (chosen by the earlier setting's dev F1). Data read from the Hub have no files to
evaluate on, so there such a setting is trained like any other.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from seqtag.config import DECODINGS, MODEL_HEADS, load_config
from seqtag.data.ner import load_ner_data
from seqtag.data.stats import inverse_frequency_weights
from seqtag.errors import ConfigError
from seqtag.losses import validate_loss_params
from seqtag.runs import (
    HISTORY_FILE,
    METRICS_FILE,
    SplitScores,
    checkpoint_path,
    is_finished_run,
    read_json,
    read_metrics,
    read_run_info,
    write_json_atomic,
    write_metrics,
)
from seqtag.study.progress import SweepProgress, planned_steps
from seqtag.study.report import write_results
from seqtag.training.plots import read_history

# What a setting may choose besides the loss: ``@option=value`` -> the config key and its valid values.
SETTING_OPTIONS = {"head": ("model.head", MODEL_HEADS), "decoding": ("predict.decoding", DECODINGS)}


@dataclass(frozen=True)
class LossSetting:
    name: str
    params: dict = field(default_factory=dict)
    label: str = ""
    options: dict = field(default_factory=dict)  # head, decoding (SETTING_OPTIONS)

    @property
    def slug(self) -> str:
        base = self.name + "".join(f"_{k}{v}" for k, v in sorted(self.params.items()))
        return self.label or base + ("@" + ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
                                     if self.options else "")

    def overrides(self) -> list[str]:
        """The config overrides of the setting's options (``model.head=crf``...)."""
        return [f"{SETTING_OPTIONS[k][0]}={v}" for k, v in self.options.items()]


def parse_loss_settings(specs: Sequence[str]) -> list[LossSetting]:
    """Parse ``[LABEL=]NAME[:param=value,param=value][@option=value,option=value]``.

    Loss parameter values are YAML scalars (lists like ``[1,2]`` allowed). A leading ``LABEL=`` names the setting:
    ``ce_inv=cross_entropy:weight=inverse_frequency``. After ``@``, the options (:data:`SETTING_OPTIONS`):
    ``head=linear|crf`` (``model.head``) and ``decoding=argmax|viterbi`` (``predict.decoding``); an option not
    given keeps the config's value. Whether the loss goes with the head is checked against the config when the
    sweep starts (``model.head=crf`` trains with cross-entropy only).

    >>> [s.slug for s in parse_loss_settings(["cross_entropy", "focal:gamma=2", "lstar:k=0.5"])]
    ['cross_entropy', 'focal_gamma2', 'lstar_k0.5']
    >>> [s.slug for s in parse_loss_settings(["cross_entropy@head=crf", "focal:gamma=2@decoding=viterbi"])]
    ['cross_entropy@head=crf', 'focal_gamma2@decoding=viterbi']
    >>> parse_loss_settings(["crf=cross_entropy@head=crf,decoding=viterbi"])[0].overrides()
    ['model.head=crf', 'predict.decoding=viterbi']
    """
    out = []
    for spec in specs:
        spec, _, option_text = spec.partition("@")
        options = {}
        for item in filter(None, option_text.split(",")):
            key, eq, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or key not in SETTING_OPTIONS:
                raise ConfigError(f"setting option {item!r} must look like option=value with option one of "
                                  f"{', '.join(SETTING_OPTIONS)} (e.g. cross_entropy@head=crf,decoding=viterbi)")
            if value not in SETTING_OPTIONS[key][1]:
                raise ConfigError(f"setting option {key}={value!r}: valid values: {', '.join(SETTING_OPTIONS[key][1])}")
            options[key] = value
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
        out.append(LossSetting(name, params, label, options))
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
    cfg = load_config(cfg_path, list(overrides))
    data = load_ner_data(cfg.data)
    weights = inverse_frequency_weights(Counter(t for s in data.splits["train"] for t in s.tags), data.labels)
    return [round(weights[lab], 6) for lab in data.labels]


def _loss_overrides(setting: LossSetting, inv_weights) -> list[str]:
    """The overrides of a setting: its loss, its parameters (inverse-frequency weights computed) and options."""
    out = [f"loss.name={setting.name}"]
    for k, v in setting.params.items():
        if v == "inverse_frequency":
            v = inv_weights()
        out.append(f"loss.{k}={json.dumps(v)}")
    return out + setting.overrides()


DERIVED_FILE = "derived.json"  # in a run directory that re-decodes another run: {"source_run", "decoding"}


def best_step(run_dir: Path, best_epoch: int | None) -> int | None:
    """The optimizer step at which the run's best epoch ended (its ``history.jsonl`` epoch record)."""
    steps = [r["step"] for r in read_history(run_dir / HISTORY_FILE)[1] if r.get("epoch") == best_epoch]
    return steps[-1] if best_epoch is not None and steps else None


def _read_result(run_dir: Path) -> dict | None:
    """A finished run's row of ``results.csv``: scores (fractions), argmax's invalid sequences, best epoch, its
    optimizer steps and the step of its best epoch, and wall time (a re-decoding: those of the run it decodes,
    but its own wall time)."""
    if (run_dir / DERIVED_FILE).is_file():
        derived = read_json(run_dir / DERIVED_FILE)
        row = {k: derived.get(k) for k in ("wall_time_s", "best_epoch", "steps", "best_step")}
        metrics = read_metrics(run_dir)
    elif is_finished_run(run_dir):
        metrics, info = read_metrics(run_dir), read_run_info(run_dir)
        row = {"wall_time_s": info.wall_time_s, "best_epoch": info.best_epoch, "steps": info.global_steps,
               "best_step": best_step(run_dir, info.best_epoch)}
    else:
        return None
    for split in ("dev", "test"):
        m = metrics.get(split)
        row[f"{split}_f1"] = m.f1 if m else None
        if m is not None and m.exact_match is not None:
            row[f"{split}_em"] = m.exact_match
        if m is not None and m.invalid_sequences is not None:
            row[f"{split}_invalid"] = m.invalid_sequences
    return row


def _training_key(setting: LossSetting, cfg) -> tuple:
    """What a setting's training depends on among the things settings change (decoding is not one of them)."""
    return setting.name, json.dumps(setting.params, sort_keys=True), cfg.model.head


def derived_settings(settings: Sequence[LossSetting], resolved: dict) -> dict[str, LossSetting]:
    """``{slug: earlier setting}`` for each setting that differs from an earlier one in its decoding alone, when the
    config reads its dev and test sets from files (see the module docstring).

    >>> from types import SimpleNamespace as NS
    >>> s = parse_loss_settings(["cross_entropy", "focal", "cross_entropy@decoding=viterbi"])
    >>> cfg = NS(model=NS(head="linear"), data=NS(format="conll", dev="d.txt", test="t.txt"))
    >>> {k: v.slug for k, v in derived_settings(s, {x.slug: cfg for x in s}).items()}
    {'cross_entropy@decoding=viterbi': 'cross_entropy'}
    """
    out: dict[str, LossSetting] = {}
    trained: dict[tuple, LossSetting] = {}
    for s in settings:
        cfg = resolved[s.slug]
        key = _training_key(s, cfg)
        if key in trained and cfg.data.format != "hub" and cfg.data.dev and cfg.data.test:
            out[s.slug] = trained[key]
        else:
            trained.setdefault(key, s)
    return out


def _redecode(source_dir: Path, run_dir: Path, decoding: str, files: dict[str, str], python: str,
              log_path: Path) -> int:
    """Score a finished run on ``files`` ({split: path}) with ``decoding`` (``seqtag evaluate``); write
    ``run_dir/metrics.json`` and ``run_dir/derived.json``, all or nothing. Returns the first failing exit code or
    0."""
    t0 = time.time()
    tmp = run_dir.with_name(f".{run_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    metrics = {}
    with open(log_path, "w") as log:
        for split, path in files.items():
            args = [python, "-m", "seqtag", "evaluate", str(source_dir), "--data", path, "--decoding", decoding,
                    "--output", str(tmp / f"{split}.json")]
            proc = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
            if proc.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                return proc.returncode
            metrics[split] = SplitScores.from_dict(read_json(tmp / f"{split}.json"))
            (tmp / f"{split}.json").unlink()
    write_metrics(tmp / METRICS_FILE, metrics)
    source = read_run_info(source_dir)
    derived = {"source_run": source_dir.name, "decoding": decoding, "best_epoch": source.best_epoch,
               "steps": source.global_steps, "best_step": best_step(source_dir, source.best_epoch),
               "wall_time_s": round(time.time() - t0, 1)}
    write_json_atomic(tmp / DERIVED_FILE, derived)
    shutil.rmtree(run_dir, ignore_errors=True)
    tmp.rename(run_dir)
    return 0


def run_sweep(config: str, overrides: Sequence[str], settings: Sequence[LossSetting], seeds: Sequence[int],
              out: str | Path, lrs: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
              python: str = sys.executable,
              repeat_min_dev_f1: float | None = None, recorded: Mapping[str, dict] | None = None,
              clock: Callable[[], float] = time.monotonic) -> str:
    """Run the study (see the module docstring) and return the markdown summary. ``lrs``: one learning-rate grid
    for every setting, or ``{setting slug: its grid}`` (a setting left out runs at the config's rate).
    ``recorded``: rows of runs that finished elsewhere (a committed results file), by run name; such a run is not
    trained again, unless a re-decoding this sweep still has to make needs its weights. Before the first run it
    prints the runs to train and their estimated time, and before each run a progress line
    (:mod:`seqtag.study.progress`; ``clock``: its seconds)."""
    recorded = {k: v for k, v in (recorded or {}).items() if v.get("status") == "finished"}
    load_config(config, list(overrides))  # fail before running anything
    # each setting too (its loss with its head...); inverse-frequency weights stand in as [1.0] until computed
    resolved = {s.slug: load_config(config, [*overrides, *_loss_overrides(s, lambda: [1.0])]) for s in settings}
    derived_from = derived_settings(settings, resolved)
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    cache: dict = {}

    def inv_weights():
        if "w" not in cache:
            cache["w"] = _inverse_frequency_weights(config, overrides)
        return cache["w"]

    rows: list[dict] = []
    def grid(setting: LossSetting) -> list:  # lrs: one grid for all settings, or {slug: its grid}
        setting = derived_from.get(setting.slug, setting)  # a re-decoded setting decodes its source's runs
        chosen = lrs.get(setting.slug) if isinstance(lrs, Mapping) else lrs
        return list(chosen) if chosen else [None]

    plan = [(s, lr, seeds[0]) for s in settings for lr in grid(s)]
    total = len(plan) + len(settings) * (len(seeds) - 1)
    done = 0

    def finished(setting, lr, seed) -> bool:
        name = run_name(setting, lr, seed)
        return name in recorded or _read_result(out / "runs" / name) is not None

    trained = [s for s in settings if s.slug not in derived_from]  # the others decode these runs again
    later = {s.slug: sum(not any(finished(s, lr, seed) for lr in grid(s)) for seed in seeds[1:]) for s in trained}
    to_train = sum(not finished(s, lr, seeds[0]) for s in trained for lr in grid(s)) + sum(later.values())
    progress = SweepProgress(out / "runs", to_train, sum(len(grid(s)) + len(seeds) - 1 for s in trained) - to_train,
                             planned_steps(resolved[trained[0].slug]) if trained else None, clock)
    print(progress.estimate() + (f"; and {len(settings) - len(trained)} setting(s) decoded again, not counted"
                                 if derived_from else ""), file=sys.stderr, flush=True)

    def run_one(setting, lr, seed) -> dict:
        nonlocal done
        done += 1
        name = run_name(setting, lr, seed)
        run_dir = out / "runs" / name
        row = {"setting": setting.slug, "loss": setting.name, "params": json.dumps(setting.params),
               "lr": lr, "seed": seed, "run": name}
        cfg = resolved[setting.slug]
        if setting.slug in derived_from:
            row["decoded_from"] = derived_from[setting.slug].slug
        if cfg.task == "ner":
            row.update(head=cfg.model.head, decoding=cfg.predict.decoding)
        result = _read_result(run_dir)
        if result is not None:
            print(f"[{done}/{total}] {name}: finished earlier, skipped", file=sys.stderr, flush=True)
            return {**row, **result, "status": "finished"}
        if name in recorded and not weights_needed(setting, lr, seed):
            print(f"[{done}/{total}] {name}: recorded earlier, skipped", file=sys.stderr, flush=True)
            return {**recorded[name], **row, "status": "finished"}
        if setting.slug in derived_from:
            return redecode_one(setting, derived_from[setting.slug], lr, seed, row)
        args = [python, "-m", "seqtag", "train", config, *overrides, *_loss_overrides(setting, inv_weights),
                f"train.seed={seed}", f"train.output_dir={run_dir}", "train.keep_checkpoint=false"]
        args.append("train.resume=true" if checkpoint_path(run_dir) is not None else "train.overwrite=true")
        if lr is not None:
            args.append(f"train.learning_rate={lr}")
        print(progress.before(done, total, name), file=sys.stderr, flush=True)
        t0 = time.time()
        with open(out / "runs" / f"{name}.log", "w") as log:
            proc = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
        result = _read_result(run_dir)
        if (estimate := progress.trained(proc.returncode == 0 and result is not None)) is not None:
            print(f"after the first run: {estimate}", file=sys.stderr, flush=True)
        if proc.returncode != 0 or result is None:
            tail = (out / "runs" / f"{name}.log").read_text(errors="replace").strip().splitlines()[-1:]
            print(f"[{done}/{total}] {name}: FAILED (exit {proc.returncode}): {' '.join(tail)}", file=sys.stderr,
                  flush=True)
            return {**row, "status": f"failed (exit {proc.returncode})"}
        print(f"[{done}/{total}] {name}: dev f1 {result.get('dev_f1')}, test f1 {result.get('test_f1')} "
              f"({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
        return {**row, **result, "status": "finished"}

    def weights_needed(setting, lr, seed) -> bool:
        """Whether a re-decoding of this run is still to be made (neither on disk nor recorded)."""
        return any(src.slug == setting.slug and run_name(d, lr, seed) not in recorded
                   and _read_result(out / "runs" / run_name(d, lr, seed)) is None
                   for d in settings if (src := derived_from.get(d.slug)) is not None)

    def redecode_one(setting, source, lr, seed, row) -> dict:
        name, source_name = row["run"], run_name(source, lr, seed)
        source_dir = out / "runs" / source_name
        if _read_result(source_dir) is None:
            print(f"[{done}/{total}] {name}: {source_name} did not finish, nothing to decode", file=sys.stderr,
                  flush=True)
            return {**row, "status": f"failed ({source_name} did not finish)"}
        print(progress.before(done, total, name, trains=False), file=sys.stderr, flush=True)
        print(f"[{done}/{total}] {name}: decoding {source_name} again ({setting.options['decoding']})",
              file=sys.stderr, flush=True)
        data = resolved[setting.slug].data
        code = _redecode(source_dir, out / "runs" / name, resolved[setting.slug].predict.decoding,
                         {"dev": data.dev, "test": data.test}, python, out / "runs" / f"{name}.log")
        result = _read_result(out / "runs" / name)
        if code != 0 or result is None:
            print(f"[{done}/{total}] {name}: FAILED (exit {code}), see {name}.log", file=sys.stderr, flush=True)
            return {**row, "status": f"failed (exit {code})"}
        print(f"[{done}/{total}] {name}: dev f1 {result.get('dev_f1')}, test f1 {result.get('test_f1')}",
              file=sys.stderr, flush=True)
        return {**row, **result, "status": "finished"}

    for setting, lr, seed in plan:
        rows.append(run_one(setting, lr, seed))
    best = _best_on_grid(rows)
    best_lr = {k: lr for k, (_, lr) in best.items()}
    repeated: list[LossSetting] = []
    for s in settings:  # a re-decoded setting follows the one it decodes (which comes earlier in settings)
        source = derived_from.get(s.slug)
        if (source in repeated if source is not None else
                repeat_min_dev_f1 is None or best.get(s.slug, (0.0,))[0] >= repeat_min_dev_f1):
            repeated.append(s)
    for setting in settings:
        if setting not in repeated:
            progress.drop(later.get(setting.slug, 0))
            print(f"{setting.slug}: best dev F1 {best.get(setting.slug, (None,))[0]} < {repeat_min_dev_f1}, "
                  f"not repeated with seeds {seeds[1:]}", file=sys.stderr, flush=True)
    total = len(plan) + len(repeated) * (len(seeds) - 1)  # the progress count, now that the grid is known
    for setting in repeated:
        for seed in seeds[1:]:
            rows.append(run_one(setting, best_lr.get(setting.slug, grid(setting)[0]), seed))
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
    """Per setting, (best dev F1, its learning rate) over the finished runs. A setting that decodes another's runs
    again (its rows' ``decoded_from``) takes that setting's rate: the same weights, decoded another way."""
    best: dict[str, tuple[float, float | None]] = {}
    for r in rows:
        if r.get("status") != "finished" or r.get("dev_f1") is None:
            continue
        if r["setting"] not in best or r["dev_f1"] > best[r["setting"]][0]:
            best[r["setting"]] = (r["dev_f1"], r["lr"])
    for slug, source in {r["setting"]: r["decoded_from"] for r in rows if r.get("decoded_from")}.items():
        best.pop(slug, None)
        if source in best:
            lr = best[source][1]
            f1 = next((r["dev_f1"] for r in rows if r["setting"] == slug and r["lr"] == lr
                       and r.get("status") == "finished" and r.get("dev_f1") is not None), None)
            if f1 is not None:
                best[slug] = (f1, lr)
    return best
