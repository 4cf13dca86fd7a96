"""One function per subcommand: it takes the parsed arguments, calls one library function and
prints. seqtag modules are imported inside these functions, not at the top: they import torch and
transformers, and ``seqtag --help`` should answer at once."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from seqtag.errors import ConfigError, SeqtagError


def is_main_process() -> bool:
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
    if is_main_process():
        _print_metrics({split: m.to_dict() for split, m in read_metrics(run_dir).items()})
        print(f"run directory: {run_dir}")
        if cfg.hub.repo_id:
            print(f"pushed to {push_run(run_dir, cfg.hub.repo_id, private=cfg.hub.private)}")
    return 0


def cmd_validate(args) -> int:
    from seqtag.config import dump_config, load_config
    from seqtag.tasks.checks import check_start
    from seqtag.training.budget import few_steps_note

    cfg = load_config(args.config, args.overrides)
    notes = check_start(cfg)  # what `seqtag train` checks before it starts, and the training labels
    notes += [n for n in [few_steps_note(cfg)] if n]
    print(dump_config(cfg, every_default=True), end="")
    print("".join(f"# {note}\n" for note in notes) + f"# {args.config}: valid", file=sys.stderr)
    return 0


def _print_metrics(metrics: dict) -> None:
    from seqtag.metrics import format_report

    for split, m in metrics.items():
        print(f"== {split}")
        if "exact_match" in m:
            print(f"exact match {100 * m['exact_match']:.2f} %  F1 {100 * m['f1']:.2f} %")
            print(_unanswerable_line(m), end="")
        else:
            print(format_report(m))


def _unanswerable_line(m: dict) -> str:
    """SQuAD 2.0: the answerable and unanswerable questions' F1 and the null threshold (empty for SQuAD v1.1)."""
    if m.get("null_threshold") is None:
        return ""
    parts = [f"{name} F1 {100 * m[key]:.2f} % ({m[total]:,})" for name, key, total in
             (("HasAns", "has_ans_f1", "has_ans_total"), ("NoAns", "no_ans_f1", "no_ans_total")) if key in m]
    return "  ".join(parts + [f"null threshold {m['null_threshold']:.4g}"]) + "\n"


def _check_writable(outputs: dict[str, str | None], inputs: dict[str, str | None]) -> None:
    """Fail before the work when an output's directory does not exist, or when an output (``{flag: path}``) is an
    input or another output: the same file under any name (``./x``, a symlink, a hard link) would be replaced."""
    outputs = {flag: path for flag, path in outputs.items() if path}
    for flag, path in outputs.items():
        if not Path(path).resolve().parent.is_dir():
            raise SeqtagError(f"cannot write {path}: the directory {Path(path).parent} does not exist; create it first")
        for in_flag, source in inputs.items():
            if source and _same_file(path, source):
                raise SeqtagError(f"{flag} {path} is the {in_flag} file {source}; writing it would replace the input. "
                                  f"Write to another file")
    seen: dict[Path, str] = {}
    for flag, path in outputs.items():
        other = next((f for p, f in seen.items() if p == Path(path).resolve() or _same_file(path, p)), None)
        if other:
            raise SeqtagError(f"{other} and {flag} are the same file ({path}); give each its own file")
        seen[Path(path).resolve()] = flag


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def cmd_evaluate(args) -> int:
    from seqtag.runs import write_json_atomic, write_text_atomic
    from seqtag.tasks.evaluate import evaluate_run

    inputs = {"--data": args.data} if args.data else {f"--split {args.split}": _split_file(args.run_dir, args.split,
                                                                                          args.overrides)}
    _check_writable({"--output": args.output, "--predictions": args.predictions}, inputs)
    result = evaluate_run(args.run_dir, args.data, args.batch_size, args.max_tokens, args.overrides, args.decoding,
                          _backend(args.run_dir, args.backend), null_threshold=args.null_threshold, split=args.split)
    if not is_main_process():
        return 0
    _print_metrics({args.data or f"data.{args.split}": result.scores.to_dict()})
    if args.output:  # one split's scores, as in metrics.json
        write_json_atomic(Path(args.output), result.scores.to_dict())
    if args.predictions:
        if isinstance(result.predictions, dict):  # QA: {id: answer}
            write_json_atomic(Path(args.predictions), result.predictions)
        else:  # NER: word, gold tag, predicted tag: the input format of conlleval
            lines = [f"{w} {g} {p}" if p is not None else "" for w, g, p in result.predictions]
            write_text_atomic(Path(args.predictions), "\n".join(lines) + "\n")
    return 0


def _split_file(run_dir: str, split: str, overrides: list[str]) -> str | None:
    """The file of a run's configured ``split`` (``evaluate --split``), which no output may replace; None for a Hub
    split, or when the run's config cannot be read (evaluate then says why)."""
    from seqtag.config import load_config
    from seqtag.paths import resolve
    from seqtag.runs import CONFIG_FILE

    try:
        data = load_config(Path(run_dir) / CONFIG_FILE, overrides).data
        spec = getattr(data, split)
        return resolve(spec) if spec and data.format != "hub" else None
    except (SeqtagError, OSError):
        return None


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
    _check_writable({"--output": args.output}, {"--input": args.input})
    if not onnx and load_config(run_dir / CONFIG_FILE).task == "qa":  # exports are of NER runs only
        return _predict_qa(run_dir, args)
    if args.question or args.context or args.null_threshold is not None:
        raise SeqtagError(f"{run_dir} is an NER run; --question/--context/--null-threshold are for QA runs. Use "
                          "--text or --input")
    from seqtag.data.words import check_text
    from seqtag.inference.predict import load_onnx_tagger, load_tagger, read_records, split_words

    if args.text is None and not args.input:
        raise SeqtagError("give --text TEXT or --input FILE (see seqtag predict --help)")
    if onnx and args.bf16:
        raise SeqtagError("--bf16 is for --backend torch; an ONNX export runs in its own precision (fp32 or int8)")
    for n, text in enumerate(args.text or [], start=1):  # before the model is loaded
        check_text(text, "--text" if len(args.text) == 1 else f"--text number {n}", "the text")
    if onnx:
        tagger = load_onnx_tagger(run_dir, args.batch_size, args.max_tokens, args.threads, args.decoding)
    else:
        tagger = load_tagger(run_dir, batch_size=args.batch_size, autocast=args.bf16, max_tokens=args.max_tokens,
                             accelerator=_prediction_accelerator(args.bf16), decoding=args.decoding)
    if args.text is not None:
        records = []
        for n, text in enumerate(args.text, start=1):
            words, offsets = split_words(text, tagger.tokenizer)
            records.append({"line": n, "text": text, "words": words, "offsets": offsets})
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
    from seqtag.inference.onnx import read_export_info
    from seqtag.inference.onnx_export import export_run

    fuse = {} if args.fuse is None else {"fuse": args.fuse}  # None: export_run's default
    out = export_run(args.run_dir, args.output, fmt=args.format, quantize=args.quantize, **fuse)
    info = read_export_info(out)
    fused = ", ".join(f"{op} x{n}" for op, n in info.fused_ops.items()) or "none"
    print(f"wrote {out}: ONNX Runtime fusions: {fused}; int8 weights: {', '.join(info.quantized_ops) or 'none'}")
    for note in info.notes:
        print(f"note: {note}")
    return 0


def _predict_qa(run_dir: Path, args) -> int:
    """``seqtag predict`` for a QA run: ``--question/--context`` prints one JSON answer; ``--input`` JSONL of
    ``{id?, question, context}`` gives one JSON line per record."""
    from seqtag.data.squad import read_question_records
    from seqtag.data.words import check_text
    from seqtag.inference.engine import load_finished_run
    from seqtag.inference.predict import chunks
    from seqtag.modeling.accel import make_accelerator
    from seqtag.tasks.qa import answer_questions, check_null_threshold, run_null_threshold

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
    if single:
        check_text(args.question, "--question", "the question")
        check_text(args.context, "--context", "the context")
    accelerator = _prediction_accelerator(args.bf16) or make_accelerator("bf16" if args.bf16 else "no",
                                                                          setting="--bf16")
    if args.null_threshold is not None:
        check_null_threshold(args.null_threshold)  # before the model is loaded
    run = load_finished_run(run_dir, str(accelerator.device))
    model = run.model
    threshold = run_null_threshold(run.cfg, run.info.null_threshold, args.null_threshold)
    records = [{"question": args.question, "context": args.context}] if single else read_question_records(args.input)

    def results():
        for chunk in chunks(records, 256):
            for rec, ans in zip(chunk, answer_questions(model, run.tokenizer, chunk, run.cfg, accelerator,
                                                        args.batch_size, args.max_tokens, threshold), strict=True):
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

    return make_accelerator("bf16" if bf16 else "no", setting="--bf16")


def _write_lines(output: str | None, lines) -> int:
    """Write text records to ``output`` atomically (never half-written) with a progress count, or to stdout.

    Under several processes every process computes its share of each chunk and receives all results; only the
    main one writes, in input order."""
    if not is_main_process():
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
    from seqtag.data.spans import is_span_file, read_span_file
    from seqtag.data.stats import format_span_stats, format_stats, label_stats, loss_advice, span_stats

    if is_span_file(args.file, args.encoding):  # entity spans that may nest (model.head=span); raw text: regex words
        stats = span_stats([(len(s.tokens), s.spans) for s in read_span_file(args.file, encoding=args.encoding,
                                                                              on_misaligned="widen")[0]])
        print(json.dumps(stats, indent=2) if args.json else format_span_stats(stats))
        return 0
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
