"""The argument parser of every subcommand, with the examples its ``--help`` prints."""

from __future__ import annotations

import argparse
import textwrap

from seqtag import __version__

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
          seqtag evaluate runs/quickstart --data {BUNDLED}/dev.txt --decoding viterbi   # never an invalid sequence
          seqtag evaluate runs/quickstart --split test   # the run's own data.test, read as training read it
          seqtag evaluate runs/squad2-pointer-minilm --split test --predictions answers.json   # its test articles""",
    "predict": f"""\
        examples:
          seqtag predict runs/quickstart --text "Barack Obama visited Paris."
          seqtag predict runs/quickstart --input texts.txt --output entities.jsonl --decoding viterbi
          seqtag predict runs/quickstart --input {BUNDLED}/test.txt --input-format conll --output-format conll
          seqtag predict runs/squad --question "Who wrote it?" --context "It was written by Ada."   # QA runs

        NER output (JSON Lines, one object per input line or --text, in input order):
          {{"line": 1, "text": "...", "words": [...], "tags": [...], "scores": [...],
           "entities": [{{"type": "PER", "text": "Barack Obama", "start": 0, "end": 12, "start_token": 0,
                         "end_token": 2, "score": 0.98}}]}}
          words come from the model's own pre-tokenizer (for raw text); start/end are character offsets into
          text (end exclusive, text[start:end] == entity text); start_token/end_token index words; scores and
          an entity's score are probabilities (an entity's: the mean over its words). "line" is the line of
          --input (for conll, of the sentence's first word) or the place of --text among those given (1, 2, ...).
          "text" and the offsets are present for raw text only (--text, --input-format text).
        QA output: {{"id"?, "question", "answer", "score", "start", "end"}} (offsets into the context).""",
    "export": """\
        examples:
          seqtag export runs/quickstart --output runs/quickstart-onnx
          seqtag export runs/quickstart --output runs/quickstart-int8 --quantize int8
          seqtag export runs/quickstart --output runs/quickstart-plain --no-fuse   # without ONNX Runtime's fusions
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
              lstar_logodds:k=2 --seeds 1 2 3 --lrs 1e-4 2e-4 --out runs/sweep-wnut17

        Before the first run it prints the runs to train and their estimated time (s/step measured on the finished
        runs in --out, or on its first run), and before each run "run k of n: NAME (elapsed, time left)".""",
}


def at_least_one(flag: str):
    """An argparse type for a count that must be at least 1 (``--batch-size``, ``--max-tokens``, ``--threads``),
    refused with its range as config keys with a range are.

    >>> at_least_one("--batch-size")("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: --batch-size must be at least 1, got 0
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a whole number, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} must be at least 1, got {value}")
        return value

    return parse


def null_threshold_arg(p: argparse.ArgumentParser) -> None:
    """``--null-threshold`` of evaluate and predict (QA runs)."""
    p.add_argument("--null-threshold", type=float, metavar="P",
                   help='QA: answer "" when the no-answer probability exceeds P (0-1); default: the threshold the run '
                        "recorded (data.allow_unanswerable runs: tuned on dev, 0.5 without a dev split; docs/squad2.md), "
                        "none for SQuAD v1.1 runs")


def build_parser() -> argparse.ArgumentParser:
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

    v = add("validate", "Validate a config (and overrides): run the checks `seqtag train` starts with (output "
                        "directory, data files, model, position limit, precision on this machine), read the training "
                        "tags (files up to 64 MiB) and print the resolved config with every default.")
    config_args(v)

    e = add("evaluate", "Score a finished run on a labelled file or on its own dev or test split; print the report "
                        "and write metrics JSON.")
    e.add_argument("run_dir", help="the output_dir of a finished `seqtag train`")
    e.add_argument("overrides", nargs="*", metavar="data.key=value",
                   help="change how the file is read, e.g. data.unseen_labels=map_to_o data.scheme=IOB1")
    source = e.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="CoNLL/JSONL file (NER) or SQuAD JSON/zip/JSONL (QA), every sentence or "
                        "question of it")
    source.add_argument("--split", choices=["dev", "test"],
                        help="the run's own data.dev or data.test, read exactly as training read it (its file or Hub "
                             "split, format, data.<split>_articles range, data.max_eval_examples)")
    e.add_argument("--output", help="write the scores here as JSON (fractions; default: print only)")
    e.add_argument("--predictions", help="QA: write {id: answer} here; NER: word, gold and predicted tag per line "
                   "(conlleval's input format)")
    e.add_argument("--batch-size", type=at_least_one("--batch-size"),
                   help="most windows per batch (default: the run's eval_batch_size)")
    e.add_argument("--max-tokens", type=at_least_one("--max-tokens"), default=4096,
                   help="most padded subword tokens per batch")
    e.add_argument("--backend", choices=["torch", "onnx"],
                   help="torch for a run directory, onnx for an export directory (`seqtag export`); default: by path")
    e.add_argument("--decoding", choices=["argmax", "viterbi", "nested", "flat"],
                   help="NER: argmax (each word's best tag) or viterbi (the best sequence the tag scheme allows; "
                        "a CRF run's learned transitions); span head: nested (every span scored above 0) or flat (the "
                        "best that do not overlap); default: the run's predict.decoding")
    null_threshold_arg(e)

    pr = add("predict", "Tag text (NER) or answer questions (QA) with a finished run.")
    pr.add_argument("run_dir", help="the output_dir of a finished `seqtag train`")
    pr.add_argument("--input", help="NER: text file, one text per line (or --input-format conll/jsonl); QA: JSON "
                    "Lines of {\"question\", \"context\", \"id\"?}")
    pr.add_argument("--output", help="output file, written atomically (default: standard output); not the --input "
                    "file")
    pr.add_argument("--input-format", choices=["text", "conll", "jsonl"], default="text",
                    help="NER: raw text lines (default), or pre-tokenised CoNLL columns / JSONL {\"tokens\": [...]}")
    pr.add_argument("--output-format", choices=["jsonl", "conll"], default="jsonl",
                    help="NER: JSON Lines (default, see below) or CoNLL columns (word TAB tag)")
    pr.add_argument("--text", action="append", help="NER: tag this text (repeat for several: one record each, with "
                    "\"line\" 1, 2, ... in the order given)")
    pr.add_argument("--question", help="QA: the question")
    pr.add_argument("--context", help="QA: the context")
    pr.add_argument("--batch-size", type=at_least_one("--batch-size"), default=64, help="most windows per batch")
    pr.add_argument("--max-tokens", type=at_least_one("--max-tokens"), default=4096,
                    help="most padded subword tokens per batch: bounds peak memory on long texts")
    pr.add_argument("--bf16", action="store_true",
                    help="bf16 autocast (faster on GPUs and CPUs with native bf16; warned about where a CPU emulates "
                         "it). Without it predict runs fp32, whatever the run was trained with; evaluate and "
                         "training's scores run at the run's train.mixed_precision")
    pr.add_argument("--encoding", default="utf-8", help="text encoding of --input (e.g. latin-1, cp1252)")
    pr.add_argument("--backend", choices=["torch", "onnx"],
                    help="torch for a run directory, onnx for an export directory (`seqtag export`); default: by path")
    pr.add_argument("--threads", type=at_least_one("--threads"),
                    help="ONNX Runtime's intra-op threads (default: one per physical core)")
    pr.add_argument("--decoding", choices=["argmax", "viterbi", "nested", "flat"],
                    help="NER: argmax (each word's best tag) or viterbi (the best sequence the tag scheme allows; "
                         "a CRF run's learned transitions); span head: nested (every span scored above 0) or flat (the "
                        "best that do not overlap); default: the run's predict.decoding")
    null_threshold_arg(pr)

    x = add("export", "Export a finished NER run to ONNX (with its tokenizer and labels) for fast CPU prediction.")
    x.add_argument("run_dir", help="the output_dir of a finished `seqtag train` (NER)")
    x.add_argument("--output", required=True, help="the export directory to create (it must not exist)")
    x.add_argument("--format", choices=["onnx"], default="onnx", help="onnx (the only format)")
    x.add_argument("--quantize", choices=["int8"], help="int8 weights by ONNX Runtime's dynamic quantization")
    x.add_argument("--fuse", action=argparse.BooleanOptionalAction,
                   help="ONNX Runtime's transformer fusions (Attention, SkipLayerNormalization, ...; the graph then "
                        "runs on ONNX Runtime only); default on: faster at small batches on the CPU measured, "
                        "--no-fuse keeps the unfused graph (docs/onnx/README.md)")

    s = add("stats", "Describe a labelled file: label shares, O share, entity lengths, inverse-frequency weights.")
    s.add_argument("file", help="CoNLL columns, JSON Lines with tokens and tags, or JSON Lines with entity spans "
                                "(entities/entity_mentions: counts, nesting, share of positive (span, type) candidates)")
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
