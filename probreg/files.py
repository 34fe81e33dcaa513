"""Atomic file writes (temp file + rename) and output-directory checks.

A crash or Ctrl-C while writing leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from probreg.errors import UsageError

#: Files whose presence marks a directory as probreg output that ``--force`` may replace.
MARKERS = ("config.json", "metrics.json", "report.html")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` if the block succeeds.

    The temporary name keeps ``path``'s suffix, for writers (Keras, matplotlib) that check it.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically. NaN and infinity are refused, not written."""
    write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Let ``writer(tmp_path)`` produce the file, then move it into place atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def prepare_output_dir(path: str | os.PathLike, force: bool) -> Path:
    """Create an empty output directory, or refuse with a one-line reason.

    An existing directory is replaced only with ``force`` and only if it is empty or holds
    probreg output (one of :data:`MARKERS`), so ``--force`` cannot wipe an unrelated folder.
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"output path '{path}' exists and is not a directory")
        contents = list(path.iterdir())
        if contents and not force:
            raise UsageError(f"output directory '{path}' already exists; use --force to replace it")
        if contents and not any((path / m).exists() for m in MARKERS):
            raise UsageError(
                f"output directory '{path}' is not empty and holds no probreg output; "
                "refusing to replace it, choose another --output"
            )
        for item in contents:
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item)
            else:
                item.unlink()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".probreg-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UsageError(
            f"cannot write to output directory '{path}': {error.strerror or error}"
        ) from None
    return path


def check_writable_parent(path: str | os.PathLike) -> None:
    """Fail early if the file ``path`` could not be created (its folder is missing or read-only)."""
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise UsageError(f"cannot write '{path}': folder '{parent}' does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write '{path}': folder '{parent}' is not writable")
