"""The ``seqtag`` command line. Each subcommand parses its arguments, calls one library function, prints.

User errors (:class:`~seqtag.errors.SeqtagError`) print one paragraph and exit 2, never a traceback; an
interruption (Ctrl-C, SIGTERM) exits 130 or 143. seqtag modules are imported inside the command functions, not
at the top of this file: they import torch and transformers, and ``seqtag --help`` should answer at once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

from seqtag.cli.commands import (
    cmd_evaluate,
    cmd_export,
    cmd_predict,
    cmd_push,
    cmd_stats,
    cmd_sweep,
    cmd_train,
    cmd_validate,
    is_main_process,
)
from seqtag.cli.parser import build_parser
from seqtag.errors import Interrupted, SeqtagError
from seqtag.runs import CONFIG_FILE, INFO_FILE, file_problem

COMMANDS = {"train": cmd_train, "validate": cmd_validate, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "export": cmd_export, "stats": cmd_stats, "push": cmd_push, "sweep": cmd_sweep}


class _Terminated(KeyboardInterrupt):
    """SIGTERM, unwound like Ctrl-C (partial outputs are removed; training saves a checkpoint)."""


def _sigterm_as_interrupt(signum, frame) -> None:
    raise _Terminated


def _exit_code(e: BaseException) -> int:
    """130 for SIGINT, 143 for SIGTERM (128 + the signal number), as shells report them."""
    if isinstance(getattr(e, "signum", None), int):  # Interrupted, and a second signal during training
        return 128 + e.signum
    return 128 + (signal.SIGTERM if isinstance(e, _Terminated) else signal.SIGINT)


def _damaged_run_config(args) -> str:
    """When ``seqtag train`` was given a run's own ``seqtag_config.yaml`` and that file is damaged: what to do."""
    config = Path(getattr(args, "config", None) or "")
    if args.command != "train" or config.name != CONFIG_FILE or not (config.parent / INFO_FILE).is_file() \
            or not config.is_file() or file_problem(config) is None:
        return ""
    return (f". {config} is the saved config of the run in {config.parent}, and it is damaged: resume with the "
            f"config file the run was started from (resuming writes {config.name} again): seqtag train YOUR_CONFIG "
            f"train.resume=true; or start the run again: seqtag train YOUR_CONFIG train.overwrite=true")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # `seqtag evaluate RUN --data F data.key=value`: overrides may follow the options
        if args.command != "evaluate" or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    if not is_main_process():  # warnings and progress bars of transformers/datasets once, not once per process
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level if is_main_process() else logging.WARNING,  # one log, not one per process
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
        print(f"seqtag {args.command}: error: {e}{_damaged_run_config(args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # a second signal during training says where it stopped and what to do
        print(f"seqtag {args.command}: {str(e) or 'interrupted'}", file=sys.stderr)
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
