"""The ``seqtag`` command line. Each subcommand parses its arguments, calls one library function, prints.

User errors (:class:`~seqtag.errors.SeqtagError`) print one paragraph and exit 2, never a traceback; an
interruption (Ctrl-C, SIGTERM) exits 130 or 143. seqtag modules are imported inside the command functions, not
at the top of this file: they import torch and transformers, and ``seqtag --help`` should answer at once.
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

from seqtag import __version__
from seqtag.errors import ConfigError, Interrupted, SeqtagError

BUNDLED = "seqtag/data/bundled/wnut17"  # WNUT-17 ships with seqtag: examples that run in a fresh clone use it

EXAMPLES = {
    "seqtag": f"""\
        examples:
          seqtag train configs/quickstart.yaml                  # MiniLM on the bundled WNUT-17, offline
          seqtag validate configs/quickstart.yaml loss.name=focal loss.gamma=2
          seqtag evaluate runs/quickstart --data {BUNDLED}/test.txt
          seqtag predict runs/quickstart --text "Barack Obama visited Paris."
          seqtag stats {BUNDLED}/train.txt
          seqtag push runs/quickstart --repo-id your-user/minilm-wnut17

        every command has --help with examples; the config reference is docs/config.md""",
    "train": """\
        examples:
          seqtag train configs/quickstart.yaml
          seqtag train configs/quickstart.yaml loss.name=focal loss.gamma=2 train.learning_rate=2e-4
          seqtag train configs/quickstart.yaml data.train=my_train.conll data.dev=my_dev.conll data.test=null
          accelerate launch --multi_gpu --num_processes 2 -m seqtag train configs/quickstart.yaml
          seqtag train runs/quickstart/seqtag_config.yaml train.resume=true   # continue an interrupted run""",
    "validate": """\
        example:
          seqtag validate configs/quickstart.yaml train.epochs=5 loss.name=focal""",
    "evaluate": f"""\
        examples:
          seqtag evaluate runs/quickstart --data {BUNDLED}/test.txt --output test_metrics.json
          seqtag evaluate runs/quickstart --data my_test.conll data.unseen_labels=map_to_o --predictions out.txt
          seqtag evaluate runs/quickstart --data {BUNDLED}/dev.txt --decoding viterbi   # never an invalid sequence""",
    "predict": f"""\
        examples:
          seqtag predict runs/quickstart --text "Barack Obama visited Paris."
          seqtag predict runs/quickstart --input texts.txt --output entities.jsonl --decoding viterbi
          seqtag predict runs/quickstart --input {BUNDLED}/test.txt --input-format conll --output-format conll
          seqtag predict runs/squad --question "Who wrote it?" --context "It was written by Ada."   # QA runs

        NER output (JSON Lines, one object per input line, in input order):
          {{"line": 1, "text": "...", "words": [...], "tags": [...], "scores": [...],
           "entities": [{{"type": "PER", "text": "Barack Obama", "start": 0, "end": 12, "start_token": 0,
                         "end_token": 2, "score": 0.98}}]}}
          words come from the model's own pre-tokenizer (for raw text); start/end are character offsets into
          text (end exclusive, text[start:end] == entity text); start_token/end_token index words; scores and
          an entity's score are probabilities (an entity's: the mean over its words). "text" and the offsets
          are present for --input-format text only.
        QA output: {{"id"?, "question", "answer", "score", "start", "end"}} (offsets into the context).""",
    "export": """\
        examples:
          seqtag export runs/quickstart --output runs/quickstart-onnx
          seqtag export runs/quickstart --output runs/quickstart-int8 --quantize int8
          seqtag predict runs/quickstart-int8 --input texts.txt --output entities.jsonl   # ONNX Runtime, CPU""",
    "stats": f"""\
        example:
          seqtag stats {BUNDLED}/train.txt
          seqtag stats my_data.jsonl --json""",
    "push": """\
        example:
          HF_TOKEN=hf_... seqtag push runs/quickstart --repo-id your-user/minilm-wnut17 --private""",
    "sweep": """\
        example:
          seqtag sweep configs/quickstart.yaml --losses cross_entropy focal:gamma=1 focal:gamma=2 \\
              lstar_logodds:k=2 --seeds 1 2 3 --lrs 1e-4 2e-4 --out runs/sweep-wnut17""",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="seqtag", description="Fine-tune and use BERT token classifiers for imbalanced NER and extractive QA.",
        epilog=textwrap.dedent(EXAMPLES["seqtag"]), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"seqtag {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging, and tracebacks for system errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=textwrap.dedent(EXAMPLES[name]),
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    def config_args(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config", help="a YAML config (the shipped ones are in configs/)")
        parser.add_argument("overrides", nargs="*", metavar="key=value",
                            help="override config keys, e.g. train.epochs=5 loss.name=focal (docs/config.md)")

    t = add("train", "Train a model as a YAML config says (key=value overrides allowed).")
    config_args(t)

    v = add("validate", "Validate a config (and overrides): check the data files and a local model exist, read the "
                        "training tags (files up to 64 MiB) and print the resolved config with every default.")
    config_args(v)

    e = add("evaluate", "Score a finished run on a labelled file; print the report and write metrics JSON.")
    e.add_argument("run_dir", help="the output_dir of a finished `seqtag train`")
    e.add_argument("overrides", nargs="*", metavar="data.key=value",
                   help="change how the file is read, e.g. data.unseen_labels=map_to_o data.scheme=IOB1")
    e.add_argument("--data", required=True, help="CoNLL/JSONL file (NER) or SQuAD JSON/zip/JSONL (QA)")
    e.add_argument("--output", help="write the scores here as JSON (fractions; default: print only)")
    e.add_argument("--predictions", help="QA: write {id: answer} here; NER: word, gold and predicted tag per line "
                   "(conlleval's input format)")
    e.add_argument("--batch-size", type=int, help="most windows per batch (default: the run's eval_batch_size)")
    e.add_argument("--max-tokens", type=int, default=4096, help="most padded subword tokens per batch")
    e.add_argument("--backend", choices=["torch", "onnx"],
                   help="torch for a run directory, onnx for an export directory (`seqtag export`); default: by path")
    e.add_argument("--decoding", choices=["argmax", "viterbi"],
                   help="NER: argmax (each word's best tag) or viterbi (the best sequence the tag scheme allows; "
                        "a CRF run's learned transitions); default: the run's predict.decoding")

    pr = add("predict", "Tag text (NER) or answer questions (QA) with a finished run.")
    pr.add_argument("run_dir", help="the output_dir of a finished `seqtag train`")
    pr.add_argument("--input", help="NER: text file, one text per line (or --input-format conll/jsonl); QA: JSON "
                    "Lines of {\"question\", \"context\", \"id\"?}")
    pr.add_argument("--output", help="output file, written atomically (default: standard output)")
    pr.add_argument("--input-format", choices=["text", "conll", "jsonl"], default="text",
                    help="NER: raw text lines (default), or pre-tokenised CoNLL columns / JSONL {\"tokens\": [...]}")
    pr.add_argument("--output-format", choices=["jsonl", "conll"], default="jsonl",
                    help="NER: JSON Lines (default, see below) or CoNLL columns (word TAB tag)")
    pr.add_argument("--text", help="NER: tag this one text")
    pr.add_argument("--question", help="QA: the question")
    pr.add_argument("--context", help="QA: the context")
    pr.add_argument("--batch-size", type=int, default=64, help="most windows per batch")
    pr.add_argument("--max-tokens", type=int, default=4096,
                    help="most padded subword tokens per batch: bounds peak memory on long texts")
    pr.add_argument("--bf16", action="store_true", help="bf16 autocast (faster on CPUs with bf16 support)")
    pr.add_argument("--encoding", default="utf-8", help="text encoding of --input (e.g. latin-1, cp1252)")
    pr.add_argument("--backend", choices=["torch", "onnx"],
                    help="torch for a run directory, onnx for an export directory (`seqtag export`); default: by path")
    pr.add_argument("--threads", type=int, help="ONNX Runtime's intra-op threads (default: one per physical core)")
    pr.add_argument("--decoding", choices=["argmax", "viterbi"],
                    help="NER: argmax (each word's best tag) or viterbi (the best sequence the tag scheme allows; "
                         "a CRF run's learned transitions); default: the run's predict.decoding")

    x = add("export", "Export a finished NER run to ONNX (with its tokenizer and labels) for fast CPU prediction.")
    x.add_argument("run_dir", help="the output_dir of a finished `seqtag train` (NER)")
    x.add_argument("--output", required=True, help="the export directory to create (it must not exist)")
    x.add_argument("--format", choices=["onnx"], default="onnx", help="onnx (the only format)")
    x.add_argument("--quantize", choices=["int8"], help="int8 weights by ONNX Runtime's dynamic quantization")

    s = add("stats", "Describe a labelled file: label shares, O share, entity lengths, inverse-frequency weights.")
    s.add_argument("file", help="CoNLL columns, or JSON Lines with tokens and tags")
    s.add_argument("--token-column", type=int, default=0, help="CoNLL: column of the word (default 0)")
    s.add_argument("--tag-column", type=int, default=-1, help="CoNLL: column of the tag (default -1, the last)")
    s.add_argument("--encoding", default="utf-8", help="text encoding of the file (e.g. latin-1, cp1252)")
    s.add_argument("--json", action="store_true", help="print JSON instead of tables")

    h = add("push", "Upload a finished run to the Hugging Face Hub with a generated model card.")
    h.add_argument("run_dir", help="the output_dir of a finished `seqtag train`")
    h.add_argument("--repo-id", required=True, help="namespace/name of the model repository (created if missing)")
    h.add_argument("--private", action="store_true", help="create the repository as private")
    h.add_argument("--revision", help="branch to push to (created if missing)")
    h.add_argument("--commit-message", help="default: 'Upload seqtag run RUN_NAME'")

    w = add("sweep", "Train one config once per (loss setting, learning rate, seed); write tables and plots.")
    config_args(w)
    w.add_argument("--losses", nargs="+", required=True,
                   help="loss settings: NAME or NAME:param=value,param=value (e.g. focal:gamma=2), or "
                        "LABEL=NAME:params to name a setting")
    w.add_argument("--seeds", nargs="+", type=int, default=[42], help="seeds: the first runs the grid, the others "
                   "run at each setting's best learning rate")
    w.add_argument("--lrs", nargs="+", type=float, help="learning rates: each setting is run at each")
    w.add_argument("--out", required=True, help="sweep directory (runs, results.md, results.csv, plots)")
    w.add_argument("--repeat-min-dev-f1", type=float, metavar="F1",
                   help="run the other seeds only for settings whose best grid dev F1 reaches F1 (a fraction, "
                        "0-1, for NER and QA alike)")
    w.add_argument("--recorded", metavar="CSV",
                   help="the results.csv of an earlier sweep (a committed study): the runs it records as finished "
                        "are not trained again, so a study goes on without their run directories")
    return p


def _is_main_process() -> bool:
    """False in the non-zero ranks of ``accelerate launch`` / ``torchrun``: they neither print nor write."""
    return os.environ.get("RANK", "0") == "0"


def cmd_train(args) -> int:
    from seqtag.config import load_config
    from seqtag.publish.hub import check_repo_id, push_run
    from seqtag.runs import read_metrics
    from seqtag.training.loop import train

    cfg = load_config(args.config, args.overrides)
    if cfg.hub.repo_id:
        check_repo_id(cfg.hub.repo_id)  # before training, not after it
    run_dir = train(cfg)
    if _is_main_process():
        _print_metrics({split: m.to_dict() for split, m in read_metrics(run_dir).items()})
        print(f"run directory: {run_dir}")
        if cfg.hub.repo_id:
            print(f"pushed to {push_run(run_dir, cfg.hub.repo_id, private=cfg.hub.private)}")
    return 0


def cmd_validate(args) -> int:
    from seqtag.config import dump_config, load_config
    from seqtag.tasks.checks import check_config_inputs

    cfg = load_config(args.config, args.overrides)
    notes = check_config_inputs(cfg)
    print(dump_config(cfg, every_default=True), end="")
    print("".join(f"# {note}\n" for note in notes) + f"# {args.config}: valid", file=sys.stderr)
    return 0


def _print_metrics(metrics: dict) -> None:
    from seqtag.metrics import format_report

    for split, m in metrics.items():
        print(f"== {split}")
        if "exact_match" in m:
            print(f"exact match {100 * m['exact_match']:.2f} %  F1 {100 * m['f1']:.2f} %")
        else:
            print(format_report(m))


def _check_writable(*paths: str | None) -> None:
    """Fail before the work when an output's directory does not exist."""
    for path in paths:
        if path and not Path(path).resolve().parent.is_dir():
            raise SeqtagError(f"cannot write {path}: the directory {Path(path).parent} does not exist; create it first")


def cmd_evaluate(args) -> int:
    from seqtag.runs import write_json_atomic, write_text_atomic
    from seqtag.tasks.evaluate import evaluate_run

    _check_writable(args.output, args.predictions)
    result = evaluate_run(args.run_dir, args.data, args.batch_size, args.max_tokens, args.overrides, args.decoding,
                          _backend(args.run_dir, args.backend))
    if not _is_main_process():
        return 0
    _print_metrics({args.data: result.scores.to_dict()})
    if args.output:  # one split's scores, as in metrics.json
        write_json_atomic(Path(args.output), result.scores.to_dict())
    if args.predictions:
        if isinstance(result.predictions, dict):  # QA: {id: answer}
            write_json_atomic(Path(args.predictions), result.predictions)
        else:  # NER: word, gold tag, predicted tag: the input format of conlleval
            lines = [f"{w} {g} {p}" if p is not None else "" for w, g, p in result.predictions]
            write_text_atomic(Path(args.predictions), "\n".join(lines) + "\n")
    return 0


def cmd_predict(args) -> int:
    from seqtag.config import load_config
    from seqtag.runs import CONFIG_FILE, require_finished_run

    onnx = _backend(args.run_dir, args.backend) == "onnx"
    run_dir = Path(args.run_dir) if onnx else require_finished_run(args.run_dir)
    if args.text is not None and args.input:
        raise SeqtagError("give --text or --input, not both")
    if args.input and not Path(args.input).is_file():  # before the model is loaded
        what = "is a directory" if Path(args.input).is_dir() else "does not exist"
        raise SeqtagError(f"--input {args.input} {what}; give a file")
    _check_writable(args.output)
    if not onnx and load_config(run_dir / CONFIG_FILE).task == "qa":  # exports are of NER runs only
        return _predict_qa(run_dir, args)
    if args.question or args.context:
        raise SeqtagError(f"{run_dir} is an NER run; --question/--context are for QA runs. Use --text or --input")
    from seqtag.inference.predict import load_onnx_tagger, load_tagger, read_records, split_words

    if args.text is None and not args.input:
        raise SeqtagError("give --text TEXT or --input FILE (see seqtag predict --help)")
    if onnx and args.bf16:
        raise SeqtagError("--bf16 is for --backend torch; an ONNX export runs in its own precision (fp32 or int8)")
    if onnx:
        tagger = load_onnx_tagger(run_dir, args.batch_size, args.max_tokens, args.threads, args.decoding)
    else:
        tagger = load_tagger(run_dir, batch_size=args.batch_size, autocast=args.bf16, max_tokens=args.max_tokens,
                             accelerator=_prediction_accelerator(args.bf16), decoding=args.decoding)
    if args.text is not None:
        words, offsets = split_words(args.text, tagger.tokenizer)
        records = [{"text": args.text, "words": words, "offsets": offsets}]
    else:
        records = read_records(args.input, args.input_format, tagger.tokenizer, args.encoding)
    from seqtag.inference.predict import format_record, predict_stream

    return _write_lines(args.output, (format_record(rec, args.output_format) for rec in predict_stream(tagger, records)))


def _backend(path: str, backend: str | None) -> str:
    """The backend for ``path``: ``backend`` if given and possible, else onnx for an export, torch for a run."""
    from seqtag.inference.onnx import is_export_dir, read_export_info

    exported = is_export_dir(path)
    backend = backend or ("onnx" if exported else "torch")
    if backend == "onnx" and not exported:
        raise SeqtagError(f"--backend onnx needs an export directory and {path} is not one; make one with "
                          f"`seqtag export {path} --output EXPORT_DIR [--quantize int8]` and pass EXPORT_DIR")
    if backend == "torch" and exported:
        raise SeqtagError(f"{path} is an ONNX export, which holds no torch weights; use --backend onnx, or pass the "
                          f"run it was exported from ({read_export_info(path).source_run})")
    return backend


def cmd_export(args) -> int:
    from seqtag.inference.onnx import export_run

    print(f"wrote {export_run(args.run_dir, args.output, fmt=args.format, quantize=args.quantize)}")
    return 0


def _predict_qa(run_dir: Path, args) -> int:
    """``seqtag predict`` for a QA run: ``--question/--context`` prints one JSON answer; ``--input`` JSONL of
    ``{id?, question, context}`` gives one JSON line per record."""
    from seqtag.data.squad import read_question_records
    from seqtag.inference.engine import load_finished_run
    from seqtag.inference.predict import chunks
    from seqtag.modeling.accel import make_accelerator
    from seqtag.tasks.qa import answer_questions

    if args.text is not None:
        raise SeqtagError(f"{run_dir} is a QA run; --text is for NER runs. Use --question and --context, or --input")
    if args.decoding:
        raise SeqtagError(f"{run_dir} is a QA run; --decoding is for NER runs (the QA decoders only return "
                          "well-formed spans)")
    if args.input_format != "text" or args.output_format != "jsonl":
        raise SeqtagError("--input-format and --output-format are for NER runs; a QA run reads JSON Lines of "
                          '{"question", "context"} and writes JSON Lines')
    single = args.question is not None or args.context is not None
    if single and (args.question is None or args.context is None):
        raise SeqtagError("give both --question and --context (or --input FILE with one JSON object per line)")
    if single and args.input:
        raise SeqtagError("give --question/--context or --input, not both")
    if not single and not args.input:
        raise SeqtagError("give --question and --context, or --input FILE (JSONL with question and context)")
    accelerator = _prediction_accelerator(args.bf16) or make_accelerator("bf16" if args.bf16 else "no")
    run = load_finished_run(run_dir, str(accelerator.device))
    model = run.model
    records = [{"question": args.question, "context": args.context}] if single else read_question_records(args.input)

    def results():
        for chunk in chunks(records, 256):
            for rec, ans in zip(chunk, answer_questions(model, run.tokenizer, chunk, run.cfg, accelerator,
                                                        args.batch_size, args.max_tokens), strict=True):
                yield json.dumps({**({"id": rec["id"]} if "id" in rec else {}),
                                  **({} if single else {"question": rec["question"]}), **ans},
                                 ensure_ascii=False) + "\n"

    return _write_lines(args.output, results())


def _prediction_accelerator(bf16: bool):
    """Under ``accelerate launch``/``torchrun`` (several processes) an accelerator that shares the batches out;
    None in a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return None
    from seqtag.modeling.accel import make_accelerator

    return make_accelerator("bf16" if bf16 else "no")


def _write_lines(output: str | None, lines) -> int:
    """Write text records to ``output`` atomically (never half-written) with a progress count, or to stdout.

    Under several processes every process computes its share of each chunk and receives all results; only the
    main one writes, in input order."""
    if not _is_main_process():
        for _ in lines:  # take part in every chunk's batches
            pass
        return 0
    if not output:
        for line in lines:
            sys.stdout.write(line)
        return 0
    from tqdm.auto import tqdm

    from seqtag.runs import atomic_output

    n = 0
    with atomic_output(output) as f, tqdm(desc="predicting", unit=" records", smoothing=0.1) as bar:
        for line in lines:
            f.write(line)
            n += 1
            bar.update(1)
    print(f"wrote {n} records to {output}", file=sys.stderr)
    return 0


def cmd_stats(args) -> int:
    from seqtag.data.readers import read_tagged
    from seqtag.data.stats import format_stats, label_stats, loss_advice

    sents = read_tagged(args.file, token_column=args.token_column, tag_column=args.tag_column, encoding=args.encoding)
    stats = label_stats([s.tags for s in sents])
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(format_stats(stats) + ("\n\n" + loss_advice(stats["o_share"]) if stats["tokens"] else ""))
    return 0


def cmd_push(args) -> int:
    from seqtag.publish.hub import push_run

    url = push_run(args.run_dir, args.repo_id, private=args.private, revision=args.revision,
                   commit_message=args.commit_message)
    print(f"pushed {args.run_dir} to {url}")
    return 0


def cmd_sweep(args) -> int:
    from seqtag.study.report import read_results_csv
    from seqtag.study.sweep import parse_loss_settings, run_sweep

    recorded = None
    if args.recorded:
        try:
            recorded = {r["run"]: r for r in read_results_csv(args.recorded)}
        except FileNotFoundError:
            raise ConfigError(f"--recorded {args.recorded}: no such file; give the results.csv of an earlier "
                              f"sweep") from None
        except (KeyError, ValueError) as e:
            raise ConfigError(f"--recorded {args.recorded}: not a sweep's results.csv ({e}); give the results.csv "
                              f"that `seqtag sweep` wrote") from None
    result = run_sweep(args.config, args.overrides, parse_loss_settings(args.losses), args.seeds, args.out,
                       lrs=args.lrs, repeat_min_dev_f1=args.repeat_min_dev_f1, recorded=recorded)
    print(result)
    return 0


COMMANDS = {"train": cmd_train, "validate": cmd_validate, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "export": cmd_export, "stats": cmd_stats, "push": cmd_push, "sweep": cmd_sweep}


class _Terminated(KeyboardInterrupt):
    """SIGTERM, unwound like Ctrl-C (partial outputs are removed; training saves a checkpoint)."""


def _sigterm_as_interrupt(signum, frame) -> None:
    raise _Terminated


def _exit_code(e: BaseException) -> int:
    """130 for SIGINT, 143 for SIGTERM (128 + the signal number), as shells report them."""
    if isinstance(e, Interrupted):
        return 128 + e.signum
    return 128 + (signal.SIGTERM if isinstance(e, _Terminated) else signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # `seqtag evaluate RUN --data F data.key=value`: overrides may follow the options
        if args.command != "evaluate" or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
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
    except Interrupted as e:
        print(f"seqtag {args.command}: {e}", file=sys.stderr)
        return _exit_code(e)
    except SeqtagError as e:
        print(f"seqtag {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"seqtag {args.command}: interrupted", file=sys.stderr)
        return _exit_code(e)
    except BrokenPipeError:  # `seqtag stats FILE | head`: the reader has gone, which is not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        return 0
    except OSError as e:  # disk full, permissions: the user's to fix, so no traceback (-v shows it)
        if args.verbose:
            raise
        print(f"seqtag {args.command}: error: {e}; nothing was finished (run with -v for details)", file=sys.stderr)
        return 2
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
