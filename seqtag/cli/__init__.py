"""The ``seqtag`` command line: :mod:`~seqtag.cli.parser` (arguments and ``--help`` examples),
:mod:`~seqtag.cli.commands` (one function per subcommand), :mod:`~seqtag.cli.main` (dispatch, exit codes,
signals).

Imports: anything in seqtag, but only inside the command functions, so ``seqtag --help`` answers without loading
torch.
"""

from __future__ import annotations

from seqtag.cli.main import main

__all__ = ["main"]
