"""Atomic file writes (temp file + rename), what a path is, and where output files go.

A crash or Ctrl-C while writing leaves either the old file or the new one, never half of one.
Output folders are claimed and swapped in by :mod:`probreg.rundir`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from probreg.errors import UsageError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` if the block succeeds.

    The temporary name keeps ``path``'s suffix, for writers (Keras, matplotlib) that check it.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import: setting the umask to read it is not thread-safe, and TensorFlow's
# threads may be creating files later on.
_UMASK = _read_umask()


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


#: What :func:`kind_of` calls the things a path can be.
REGULAR = "a regular file"
DIRECTORY = "a directory"
#: Files written in place, never replaced: devices, FIFOs (named pipes).
STREAMS = ("a FIFO", "a character device", "a block device")


def kind_of(path: str | os.PathLike) -> str | None:
    """What is at ``path`` (symlinks followed), in words, or ``None`` if nothing is there."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken symlink" if os.path.islink(path) else None
    except NotADirectoryError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symlink loop"
        raise
    for test, name in (
        (stat.S_ISREG, REGULAR),
        (stat.S_ISDIR, DIRECTORY),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def check_input_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` if it is a readable regular file, else a one-line error saying what it is."""
    found = kind_of(path)
    if found is None:
        raise UsageError(f"{what} '{path}' does not exist")
    if found != REGULAR:
        raise UsageError(f"{what} '{path}' is {found}, not a regular file")
    return Path(path)


@dataclasses.dataclass(frozen=True)
class Output:
    """Where :func:`write_output` sends text: standard output (``path`` None), a stream or
    device written in place, or a regular file replaced atomically."""

    path: Path | None
    in_place: bool


def given_output(output: str | os.PathLike | None) -> str | os.PathLike | None:
    """``output`` as given; ``None`` (the caller's default folder) stays ``None``, and an empty
    path is refused rather than read as "not given", which would write somewhere else."""
    if output is not None and not str(output).strip():
        raise UsageError("the output path is empty; give one, or leave it out for the default")
    return output


def check_output(path: str | os.PathLike, force: bool) -> Output:
    """Decide, before any work, how an output file will be written; refuse with one line.

    ``-`` is standard output. A FIFO or device is written in place and never replaced. A
    regular file is replaced atomically, and only with ``force``; through a symlink, the
    file it points to is replaced and the symlink stays.
    """
    if str(path) == "-":
        return Output(None, True)
    found = kind_of(path)
    if found in STREAMS:
        return Output(Path(path), True)
    if found == REGULAR and not force:
        raise UsageError(
            f"output file '{path}' already exists; use --force (force=True) to replace it"
        )
    if found not in (None, REGULAR, "a broken symlink"):
        raise UsageError(f"output '{path}' is {found}; give the name of a file to write")
    target = Path(os.path.realpath(path))  # a symlink stays; what it points to is written
    check_writable_parent(target)
    return Output(target, False)


def write_output(output: Output, text: str) -> None:
    """Write ``text`` where :func:`check_output` decided; an :class:`OSError` names the file
    (``-`` for standard output)."""
    try:
        if output.path is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        elif output.in_place:
            with open(output.path, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            write_text(output.path, text)
    except OSError as error:
        name = "-" if output.path is None else str(output.path)
        if error.errno is None or error.filename == name:
            raise
        # Named after the user's file, not the hidden temporary file beside it.
        raise OSError(error.errno, error.strerror, name) from None


def check_writable_parent(path: str | os.PathLike) -> None:
    """Fail early if the file ``path`` could not be created (its folder is missing or read-only)."""
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise UsageError(f"cannot write '{path}': folder '{parent}' does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write '{path}': folder '{parent}' is not writable")
