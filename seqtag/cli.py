"""The ``seqtag`` command line. Each subcommand parses its arguments, calls one library function, prints.

User errors (:class:`~seqtag.errors.SeqtagError`) print one paragraph and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import textwrap
import threading
from pathlib import Path

from seqtag.errors import SeqtagError

EXAMPLES = {
    "train": """\
        examples:
          seqtag train configs/quickstart.yaml
          seqtag train configs/wnut17_local.yaml loss.name=focal loss.gamma=1 train.learning_rate=2e-4
          accelerate launch --multi_gpu --num_processes 2 -m seqtag train configs/quickstart.yaml
          seqtag train runs/quickstart/seqtag_config.yaml train.resume=true   # continue an interrupted run""",
    "validate": """\
        example:
          seqtag validate configs/conll2003_local.yaml train.epochs=5""",
    "evaluate": """\
        example:
          seqtag evaluate runs/quickstart --data ../shared/data/wnut17/test.txt --output test_metrics.json""",
    "predict": """\
        examples:
          seqtag predict runs/quickstart --input texts.txt --output entities.jsonl
          seqtag predict runs/quickstart --input test.conll --input-format conll --output tagged.conll --output-format conll
          seqtag predict runs/squad --question "Who wrote it?" --context "It was written by Ada."   # QA runs""",
    "stats": """\
        example:
          seqtag stats ../shared/data/wnut17/train.txt""",
    "push": """\
        example:
          HF_TOKEN=hf_... seqtag push runs/quickstart --repo-id my-user/minilm-wnut17 --private""",
    "sweep": """\
        example:
          seqtag sweep configs/quickstart.yaml --losses cross_entropy focal:gamma=1 lstar:k=0.5 --seeds 1 2 3 \\
              --out runs/sweep-wnut17""",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqtag", description="Fine-tune and use BERT token classifiers for "
                                "imbalanced NER and extractive QA.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=textwrap.dedent(EXAMPLES[name]),
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    t = add("train", "Train a model as a YAML config says (key=value overrides allowed).")
    t.add_argument("config")
    t.add_argument("overrides", nargs="*", metavar="key=value")

    v = add("validate", "Validate a config (and overrides): check the data files and a local model exist, read the "
                        "training tags (files up to 64 MiB) and print the resolved config with every default.")
    v.add_argument("config")
    v.add_argument("overrides", nargs="*", metavar="key=value")

    e = add("evaluate", "Score a finished run on a labelled file; print the report and write metrics JSON.")
    e.add_argument("run_dir")
    e.add_argument("--data", required=True, help="CoNLL/JSONL file (NER) or SQuAD JSON/zip/JSONL (QA)")
    e.add_argument("--output", help="metrics JSON to write (default: print only)")
    e.add_argument("--predictions", help="QA: write {id: answer} here; NER: word, gold and predicted tag per line "
                   "(conlleval's input format)")
    e.add_argument("--batch-size", type=int)

    pr = add("predict", "Tag text (NER) or answer questions (QA) with a finished run.")
    pr.add_argument("run_dir")
    pr.add_argument("--input", help="input file (text: one text per line; or --input-format conll/jsonl)")
    pr.add_argument("--output", help="output file (default: standard output)")
    pr.add_argument("--input-format", choices=["text", "conll", "jsonl"], default="text")
    pr.add_argument("--output-format", choices=["jsonl", "conll"], default="jsonl")
    pr.add_argument("--text", help="NER: tag this one text")
    pr.add_argument("--question", help="QA: the question")
    pr.add_argument("--context", help="QA: the context")
    pr.add_argument("--batch-size", type=int, default=64, help="most texts (windows) per batch")
    pr.add_argument("--max-tokens", type=int, default=4096,
                    help="most padded subword tokens per batch: bounds peak memory on long texts")
    pr.add_argument("--bf16", action="store_true", help="bf16 autocast (faster on CPUs with bf16 support)")

    s = add("stats", "Describe a labelled file: label shares, O share, entity lengths, inverse-frequency weights.")
    s.add_argument("file")
    s.add_argument("--token-column", type=int, default=0)
    s.add_argument("--tag-column", type=int, default=-1)
    s.add_argument("--encoding", default="utf-8", help="text encoding of the file (e.g. latin-1, cp1252)")
    s.add_argument("--json", action="store_true", help="print JSON instead of tables")

    h = add("push", "Upload a finished run to the Hugging Face Hub with a generated model card.")
    h.add_argument("run_dir")
    h.add_argument("--repo-id", required=True, help="namespace/name")
    h.add_argument("--private", action="store_true")
    h.add_argument("--revision", help="branch to push to (created if missing)")
    h.add_argument("--commit-message")

    w = add("sweep", "Train one config once per (loss setting, seed); write a table and plots of the results.")
    w.add_argument("config")
    w.add_argument("overrides", nargs="*", metavar="key=value")
    w.add_argument("--losses", nargs="+", required=True,
                   help="loss settings: NAME or NAME:param=value,param=value (e.g. focal:gamma=2)")
    w.add_argument("--seeds", nargs="+", type=int, default=[42])
    w.add_argument("--lrs", nargs="+", type=float, help="learning rates: each setting is run at each")
    w.add_argument("--out", required=True, help="sweep directory (runs, results.md, results.csv, plots)")
    w.add_argument("--repeat-min-dev-f1", type=float, metavar="F1",
                   help="run the other seeds only for settings whose best grid dev F1 reaches F1 "
                        "(in the runs' own units: 0-1 for NER entity F1, 0-100 for QA F1)")
    return p


def cmd_train(args) -> int:
    from seqtag.config import load_config
    from seqtag.train import train

    cfg = load_config(args.config, args.overrides)
    run_dir = train(cfg)
    if _is_main_process():
        metrics = json.loads((run_dir / "metrics.json").read_text())
        _print_metrics(metrics, cfg.task)
        print(f"run directory: {run_dir}")
    return 0


def _is_main_process() -> bool:
    """False in the non-zero ranks of ``accelerate launch`` / ``torchrun``: they neither print nor write."""
    return os.environ.get("RANK", "0") == "0"


def cmd_validate(args) -> int:
    from seqtag.checks import check_config_inputs
    from seqtag.config import dump_config, load_config

    cfg = load_config(args.config, args.overrides)
    notes = check_config_inputs(cfg)
    print(dump_config(cfg, every_default=True), end="")
    print("".join(f"# {note}\n" for note in notes) + f"# {args.config}: valid", file=sys.stderr)
    return 0


def _print_metrics(metrics: dict, task: str) -> None:
    from seqtag.metrics import format_report

    for split, m in metrics.items():
        print(f"== {split}")
        print(format_report(m) if task == "ner" else f"exact match {m['exact_match']:.2f}  F1 {m['f1']:.2f}")


def cmd_evaluate(args) -> int:
    from seqtag.evaluate import evaluate_run
    from seqtag.runs import write_json_atomic

    report, predictions = evaluate_run(args.run_dir, args.data, args.batch_size)
    if not _is_main_process():
        return 0
    _print_metrics({args.data: report}, "qa" if "exact_match" in report else "ner")
    if args.output:
        write_json_atomic(Path(args.output), report)
    if args.predictions:
        from seqtag.runs import write_text_atomic

        if isinstance(predictions, dict):  # QA: {id: answer}
            write_json_atomic(Path(args.predictions), predictions)
        else:  # NER: word, gold tag, predicted tag: the input format of conlleval
            lines = [f"{w} {g} {p}" if p is not None else "" for w, g, p in predictions]
            write_text_atomic(Path(args.predictions), "\n".join(lines) + "\n")
    return 0


def cmd_predict(args) -> int:
    from seqtag.config import load_config
    from seqtag.runs import CONFIG_FILE, require_finished_run

    run_dir = require_finished_run(args.run_dir)
    task = load_config(run_dir / CONFIG_FILE).task
    if task == "qa":
        from seqtag.tasks.qa import predict_cli

        return predict_cli(run_dir, args)
    if args.question or args.context:
        raise SeqtagError(f"{run_dir} is an NER run; --question/--context are for QA runs. Use --text or --input")
    from seqtag.predict import load_tagger, read_records, split_words

    if args.text is None and not args.input:
        raise SeqtagError("give --text TEXT or --input FILE (see seqtag predict --help)")
    if args.text is None and not Path(args.input).is_file():  # before the model is loaded
        raise SeqtagError(f"--input {args.input} does not exist")
    tagger = load_tagger(run_dir, batch_size=args.batch_size, autocast=args.bf16, max_tokens=args.max_tokens)
    if args.text is not None:
        words, offsets = split_words(args.text, tagger.tokenizer)
        records = [{"text": args.text, "words": words, "offsets": offsets}]
    else:
        records = read_records(args.input, args.input_format, tagger.tokenizer)
    return _write_predictions(tagger, records, args)


def _write_predictions(tagger, records, args) -> int:
    from tqdm.auto import tqdm

    from seqtag.predict import predict_stream, write_record

    if not args.output:
        for rec in predict_stream(tagger, records):
            write_record(sys.stdout, rec, args.output_format)
        return 0
    from seqtag.runs import atomic_output

    with atomic_output(args.output) as f, tqdm(desc="predicting", unit=" lines", smoothing=0.1) as bar:
        for rec in predict_stream(tagger, records):
            write_record(f, rec, args.output_format)
            bar.update(1)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_stats(args) -> int:
    from seqtag.data.conll import read_tagged
    from seqtag.stats import format_stats, label_stats

    sents = read_tagged(args.file, token_column=args.token_column, tag_column=args.tag_column, encoding=args.encoding)
    stats = label_stats([s.tags for s in sents])
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def cmd_push(args) -> int:
    from seqtag.hub import push_run

    url = push_run(args.run_dir, args.repo_id, private=args.private, revision=args.revision,
                   commit_message=args.commit_message)
    print(f"pushed {args.run_dir} to {url}")
    return 0


def cmd_sweep(args) -> int:
    from seqtag.sweep import parse_loss_settings, run_sweep

    result = run_sweep(args.config, args.overrides, parse_loss_settings(args.losses), args.seeds, args.out,
                       lrs=args.lrs, repeat_min_dev_f1=args.repeat_min_dev_f1)
    print(result)
    return 0


COMMANDS = {"train": cmd_train, "validate": cmd_validate, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "stats": cmd_stats, "push": cmd_push, "sweep": cmd_sweep}


def _sigterm_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C, so partial outputs are removed (training saves a checkpoint)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not _is_main_process():  # warnings and progress bars of transformers/datasets once, not once per process
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level if _is_main_process() else logging.WARNING,  # one log, not one per process
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "httpx2", "urllib3", "datasets", "filelock", "accelerate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt) if in_main_thread else None
    try:
        return COMMANDS[args.command](args)
    except SeqtagError as e:
        from seqtag.train import Interrupted

        print(f"seqtag {args.command}: error: {e}", file=sys.stderr)
        return 130 if isinstance(e, Interrupted) else 2
    except KeyboardInterrupt:
        print(f"seqtag {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # disk full, permissions: the user's to fix, so no traceback (-v shows it)
        if args.verbose:
            raise
        print(f"seqtag {args.command}: error: {e}; nothing was finished (run with -v for details)", file=sys.stderr)
        return 2
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
