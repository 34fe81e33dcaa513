"""The run folder's one owner: claim, lock, build aside, swap in; write and read its files.

Every output folder (a run, a ``compare`` report, a ``tune`` study) is made the same way::

    with rundir.claim("runs/my-run", force=False, kind="run") as claim:
        ...  # write into claim.staging
    # finished: claim.path now holds the new folder

1. **Check.** An existing folder is replaced only with ``force``, and only if probreg made it:
   it holds a :data:`MARKER` file with a run id, of the same kind, and nothing at any depth
   that the marker does not list (a user's own files). Other file names never decide (an empty
   folder may be used without ``force``).
2. **Lock.** ``.NAME.probreg-lock`` beside the folder holds an ``flock`` and the owner's PID.
   A second process gets a one-line error naming that PID. The kernel drops the lock when the
   process dies, however it dies.
3. **Build aside.** Everything is written into ``.NAME.probreg-staging-ID``, whose marker says
   ``building`` until the end.
4. **Swap in.** The marker turns ``complete`` and one atomic rename (an exchange, where there is
   an old folder) puts the new folder in place; only then is the old one deleted.

A kill at any moment leaves the old folder (or nothing) at the path, plus at most a staging
folder that :func:`check_complete` rejects as incomplete and the next claim removes.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import datetime as dt
import errno
import fcntl
import glob
import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from probreg import files
from probreg.errors import UsageError, shorten

MARKER = ".probreg.json"
#: What file browsers and editors leave in a folder someone looked into: not the user's work.
SYSTEM_FILES = frozenset(
    {".DS_Store", "Thumbs.db", "desktop.ini", ".directory", ".ipynb_checkpoints"}
)
CONFIG = "config.json"
#: An export folder's metadata (:mod:`probreg.export`).
EXPORT_METADATA = "probreg-export.json"
MODEL = "model.keras"
METRICS = "metrics.json"
HISTORY = "history.json"
FOLDER_KINDS = ("run", "compare", "tune")
#: Marker states: being written; finished (possibly interrupted, with a model); diverged (a
#: record of the failure, no model).
STATES = ("building", "complete", "diverged")


# -- marker, config and metrics --------------------------------------------------------------


def write_marker(
    folder: Path,
    kind: str,
    state: str,
    run_id: str | None = None,
    entries: Any = None,
    tree: Any = None,
) -> str:
    """Write (atomically) the marker that makes ``folder`` a probreg folder; return its run id.
    ``tree`` lists every path probreg wrote below it, so ``--force`` can tell a user's own files
    from its own at any depth; ``entries``, the top level alone, is taken from it unless given
    (markers from before ``tree`` have only ``entries``)."""
    from probreg import __version__

    run_id = run_id or uuid.uuid4().hex
    marker = {
        "run_id": run_id,
        "kind": kind,
        "state": state,
        "probreg": __version__,
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if entries is None and tree is not None:
        entries = [path for path in tree if "/" not in path]
    if entries is not None:
        marker["entries"] = sorted(entries)
    if tree is not None:
        marker["tree"] = sorted(tree)
    files.write_json(Path(folder) / MARKER, marker)
    return run_id


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The folder's marker, ``None`` if it has none, or a one-line error if it is corrupt."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    marker = _read_json(path)
    if (
        not isinstance(marker, dict)
        or not isinstance(marker.get("run_id"), str)
        or marker.get("kind") not in FOLDER_KINDS
        or marker.get("state") not in STATES
    ):
        raise UsageError(f"'{path}' is corrupt: not a probreg marker")
    return marker


def start_folder(folder: Path, kind: str = "run") -> Path:
    """Create ``folder`` (inside a staging folder) marked ``building``; return it."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    write_marker(folder, kind, "building")
    return folder


def finish_folder(folder: Path, state: str = "complete") -> None:
    """Mark a folder made by :func:`start_folder` as finished (``complete`` or ``diverged``)."""
    marker = read_marker(folder) or {}
    kind, run_id = marker.get("kind", "run"), marker.get("run_id")
    write_marker(folder, kind, state, run_id, tree=folder_tree(folder))


def write_config(folder: Path, config: dict[str, Any]) -> None:
    files.write_json(Path(folder) / CONFIG, config)


def write_run_files(folder: Path, config: dict[str, Any], model: Any, history: dict) -> None:
    """A trained run's ``config.json``, ``model.keras`` and ``history.json`` (each atomic);
    :func:`write_metrics` comes last, once the pictures are drawn."""
    write_config(folder, config)
    files.write_with(Path(folder) / MODEL, model.save)
    files.write_json(Path(folder) / HISTORY, history)


def write_metrics(folder: Path, metrics: dict[str, Any]) -> None:
    """The one writer of ``metrics.json`` (runs, diverged records and reports)."""
    files.write_json(Path(folder) / METRICS, metrics)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UsageError(f"'{path}' is corrupt: {shorten(error)}") from None


# -- reading a run ----------------------------------------------------------------------------


def check_complete(path: Path) -> dict[str, Any] | None:
    """Raise a one-line :class:`UsageError` unless ``path`` holds a finished, usable run.

    Returns the marker, or ``None`` for a folder made before markers existed (then
    ``config.json``, ``model.keras`` and ``metrics.json`` must all be there).
    """
    path = Path(path)
    found = files.kind_of(path)
    if found is None:
        raise UsageError(f"run directory '{path}' does not exist")
    if found != files.DIRECTORY:
        raise UsageError(f"run directory '{path}' is {found}, not a directory")
    if ".probreg-staging-" in path.name or ".probreg-old-" in path.name:
        raise UsageError(
            f"run folder '{path}' is incomplete: it was left by a probreg process that was "
            "stopped while writing; the next run with this output removes it"
        )
    marker = read_marker(path)
    if marker is not None and marker["kind"] != "run":
        where = f"; its runs are in '{path / 'runs'}'" if (path / "runs").is_dir() else ""
        raise UsageError(f"'{path}' is a probreg {marker['kind']} folder, not a run{where}")
    if marker is None and not (path / CONFIG).is_file():
        if (path / EXPORT_METADATA).is_file():
            raise UsageError(
                f"'{path}' is a probreg export, not a run: probreg predict needs the run folder "
                "it came from; in Python, probreg.export.distribution reads any export's "
                "outputs and probreg.export.OnnxModel runs an ONNX one"
            )
        raise UsageError(f"'{path}' is not a probreg run directory: it has no {CONFIG}")
    if marker is not None and marker["state"] == "building":
        raise UsageError(
            f"run folder '{path}' is incomplete: its run was stopped before it finished; "
            "run it again"
        )
    if marker is not None and marker["state"] == "diverged":
        metrics = read_metrics(path) or {}
        raise UsageError(
            f"run folder '{path}' has no model: its training diverged "
            f"({shorten(metrics.get('error', 'no details'))})"
        )
    for name in (CONFIG, MODEL, METRICS):
        if not (path / name).is_file():
            what = "model file" if name == MODEL else "file"
            raise UsageError(
                f"run folder '{path}' is incomplete: {what} '{path / name}' is missing; "
                "run it again"
            )
    return marker


def read_config(path: Path) -> dict[str, Any]:
    """``config.json``, checked: plugin records and finite scaling with positive scales."""
    config_path = Path(path) / CONFIG
    config = _read_json(config_path)
    try:
        for key in ("head", "sampler"):
            if not isinstance(config[key]["spec"], str):
                raise TypeError(f"'{key}' has no spec string")
        widths = {"x": len(config["x_names"]), "y": len(config["y_names"])}
        for side, width in widths.items():
            scaling = config["scaling"][side]
            for part in ("mean", "scale"):
                values = scaling[part]
                if len(values) != width or not all(
                    isinstance(v, int | float) and math.isfinite(v) for v in values
                ):
                    raise ValueError(
                        f"{side} scaling '{part}' must be {width} finite numbers, not "
                        f"{shorten(values, 60)}"
                    )
            if not all(v > 0 for v in scaling["scale"]):
                raise ValueError(f"{side} scaling has a scale <= 0")
    except (KeyError, TypeError, ValueError) as error:
        reason = f"missing {error}" if isinstance(error, KeyError) else str(error)
        raise UsageError(f"'{config_path}' is corrupt: {shorten(reason)}") from None
    return config


def read_metrics(path: Path) -> dict[str, Any] | None:
    """``metrics.json``, or ``None`` if there is none; a one-line error if it is corrupt."""
    metrics_path = Path(path) / METRICS
    if not metrics_path.is_file():
        return None
    metrics = _read_json(metrics_path)
    if not isinstance(metrics, dict):
        raise UsageError(f"'{metrics_path}' is corrupt: not a JSON object")
    return metrics


# -- claim, lock, build aside, swap in --------------------------------------------------------


@dataclasses.dataclass
class Claim:
    """A claimed output folder being built in ``staging``; :meth:`commit` puts it in place."""

    path: Path  # where the finished folder goes (absolute)
    staging: Path
    kind: str
    run_id: str
    replaces: bool  # something (a probreg folder, or an empty one) is there now
    force: bool = False
    committed: bool = False
    shown: Path | None = None  # ``path`` as the caller gave it (a generated name moved on)

    def commit(self, state: str = "complete") -> Path:
        """Mark the staging folder finished and swap it in; the old folder goes only after.

        If a folder that may not be replaced appeared at the path meanwhile, the finished
        folder is kept where it was built and the refusal names it."""
        try:
            check_target(self.path, force=self.force, shown=self.path, kind=self.kind)
        except UsageError as error:
            self.committed = True  # keep the staging folder: it holds the finished work
            raise UsageError(f"{error}; the finished output was kept in '{self.staging}'") from None
        # A tune folder keeps growing after this (its study), so only finished kinds list theirs.
        tree = None if self.kind == "tune" else folder_tree(self.staging)
        write_marker(self.staging, self.kind, state, self.run_id, tree=tree)
        swap_in(self.staging, self.path)
        self.committed = True
        return self.path


def folder_tree(folder: Path) -> list[str]:
    """Every path below ``folder`` (files and folders, not following links), POSIX, relative."""
    found = []
    for root, folders, names in os.walk(folder):
        below = Path(root).relative_to(folder)
        found += [(below / name).as_posix() for name in (*folders, *names)]
    return found


def _ignored(name: str) -> bool:
    """A file browser's, editor's or file system's leftover: not the user's work."""
    return name in SYSTEM_FILES or name.startswith(("._", ".nfs"))


def _tune_temporary(name: str) -> bool:
    """The temporary of an atomic write into a tune folder that was killed
    (:func:`probreg.files.atomic_path` names it ``.STEM-XXXXXXXX.SUFFIX``)."""
    from probreg.tune_report import TUNE_FILES

    written = re.fullmatch(r"\.(.+)-[a-z0-9_]{8}(\.\w+)?", name)
    return written is not None and written[1] + (written[2] or "") in TUNE_FILES


def refusal(shown: Any, extra: list[str]) -> UsageError:
    """The one-line refusal to replace ``shown``, which holds ``extra`` paths of the user's."""
    more = ", ..." if len(extra) > 3 else ""
    return UsageError(
        f"output directory '{shown}' holds files probreg did not write there "
        f"({', '.join(shorten(name, 40) for name in extra[:3])}{more}); refusing to "
        "replace it: move them, or choose another --output (output=)"
    )


def _not_written_by_probreg(path: Path, marker: dict[str, Any]) -> list[str]:
    """Paths in the probreg folder ``path`` that probreg did not write (a user's own files).

    Finished folders list every path (``tree``; older ones only their top level, ``entries``).
    ``export`` folders added later by ``probreg export`` are checked against their own list.
    A tune folder is checked by name (:data:`probreg.tune_report.TUNE_FILES`)."""
    if marker.get("kind") == "tune":
        from probreg.tune_report import TUNE_FILES

        known = TUNE_FILES | {MARKER}
        return sorted(
            n
            for n in os.listdir(path)
            if n not in known and not _ignored(n) and not _tune_temporary(n)
        )
    listed = marker.get("tree")
    if listed is None:  # written before the tree was recorded: its top level only
        if marker.get("entries") is None:
            return []
        known = {*marker["entries"], MARKER} | (
            {"export"} if _real_folder(path / "export") else set()
        )
        return sorted(n for n in os.listdir(path) if n not in known and not _ignored(n))
    known, extra, exports = {*listed, MARKER}, [], set()
    for found in folder_tree(path):
        parts = found.split("/")
        if found in known or any(_ignored(part) for part in parts):
            continue
        cut = next((i for i, part in enumerate(parts) if part == "export"), None)
        container = None if cut is None else "/".join(parts[: cut + 1])
        if container is not None and container not in known and _real_folder(path / container):
            if len(parts) > cut + 1:  # exports come later, each checked against its own list
                exports.add("/".join(parts[: cut + 2]))
            continue
        extra.append(found)
    for folder in sorted(exports):
        name = Path(folder).name
        if name.startswith(".") and ".probreg-export-" in name:
            continue  # an export's own staging folder, left by a kill
        inside = export_extras(path / folder)
        extra += [folder] if inside is None else [f"{folder}/{found}" for found in inside]
    return sorted(extra)


def _real_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def export_extras(folder: Path) -> list[str] | None:
    """Paths in an export folder that ``probreg export`` did not write; ``None`` if ``folder``
    is not an export. Exports from before their metadata listed files are taken whole."""
    try:
        metadata = json.loads((Path(folder) / EXPORT_METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(metadata, dict):
        return None
    if "files" not in metadata:
        return []
    written = metadata["files"]
    if not (isinstance(written, list) and all(isinstance(name, str) for name in written)):
        return None
    known = {*written, EXPORT_METADATA}
    return sorted(
        found
        for found in folder_tree(Path(folder))
        if found not in known and not any(_ignored(part) for part in found.split("/"))
    )


def check_target(path: Path, force: bool, shown: Any = None, kind: str | None = None) -> bool:
    """Whether ``path`` may be written (True if something is there to replace), else a
    one-line refusal naming the folder. ``--force`` replaces only a probreg folder of the same
    ``kind`` holding nothing but what probreg wrote there."""
    shown = path if shown is None else shown
    if os.path.islink(path):
        raise UsageError(f"output '{shown}' is a symlink; give the folder it points to")
    found = files.kind_of(path)
    if found is None:
        return False
    if found != files.DIRECTORY:
        raise UsageError(f"output path '{shown}' exists and is {found}, not a directory")
    try:
        empty = not any(Path(path).iterdir())
    except OSError as error:
        raise UsageError(f"cannot read output directory '{shown}': {error.strerror}") from None
    if empty:
        return True
    try:
        marker = read_marker(path)
    except UsageError:
        raise UsageError(
            f"output directory '{shown}' has a corrupt {MARKER}; refusing to replace it, "
            "choose another --output (output=)"
        ) from None
    if marker is None:
        raise UsageError(
            f"output directory '{shown}' already exists and was not made by probreg (it has "
            f"no {MARKER}); refusing to replace it, choose another --output (output=)"
        )
    if kind is not None and marker.get("kind") not in (None, kind):
        raise UsageError(
            f"output directory '{shown}' is a probreg {marker['kind']} folder, not a {kind} "
            f"folder; refusing to replace it, choose another --output (output=)"
        )
    extra = _not_written_by_probreg(Path(path), marker)
    if extra:
        raise refusal(shown, extra)
    if not force:
        raise UsageError(
            f"output directory '{shown}' already exists; use --force (force=True) to replace it"
        )
    return True


@contextlib.contextmanager
def claim(
    path: str | os.PathLike, *, force: bool = False, kind: str = "run", unique: bool = False
) -> Iterator[Claim]:
    """Claim ``path`` for a new folder of ``kind`` and yield a :class:`Claim` to build it.

    Leaving the block normally commits (unless :meth:`Claim.commit` was called already); an
    exception (Ctrl-C, a full disk, a failed run) discards the staging folder and leaves
    ``path`` as it was. Refusals are one-line :class:`UsageError` and create nothing.
    ``unique`` (for generated names) takes ``path-2``, ``path-3``... when ``path`` is taken or
    another process is writing it, so runs started in the same second do not collide.
    """
    shown = path
    target = Path(os.path.abspath(path))
    if not unique:  # a generated name that is taken moves on instead
        check_target(target, force, shown, kind)
    created = _make_parents(target.parent, shown)
    lock = None
    try:
        if unique:
            target, lock = _first_free(target, shown)
        else:
            lock = _lock(target, shown)
        replaces = check_target(target, force, shown, kind)  # again, now that we hold the lock
        _remove_stale(target)
        run_id = uuid.uuid4().hex
        staging = target.parent / f".{target.name}.probreg-staging-{run_id[:12]}"
        try:
            staging.mkdir()
            write_marker(staging, kind, "building", run_id)
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise UsageError(
                f"cannot write to output directory '{shown}': {error.strerror or error}"
            ) from None
        moved = Path(shown).with_name(target.name) if unique else Path(shown)
        claimed = Claim(target, staging, kind, run_id, replaces, force, shown=moved)
        try:
            yield claimed
            if not claimed.committed:
                claimed.commit()
        finally:
            if not claimed.committed:
                shutil.rmtree(staging, ignore_errors=True)
    finally:
        if lock is not None:
            _unlock(lock, target)
        if not target.exists():
            for folder in reversed(created):  # parents we made for nothing
                with contextlib.suppress(OSError):
                    folder.rmdir()


def swap_in(staging: Path, path: Path) -> None:
    """Put ``staging`` at ``path`` atomically; an old folder there is deleted afterwards.

    Where the kernel cannot exchange two folders (not Linux, some network file systems) it
    takes two renames; a failed second rename puts the old folder back, and a kill between
    the two leaves it beside the path as ``.NAME.probreg-old-*``, which the next claim
    restores (see :func:`_remove_stale`).
    """
    if not os.path.lexists(path):
        os.rename(staging, path)
        return
    if _exchange(staging, path):
        shutil.rmtree(staging, ignore_errors=True)  # the old folder now lives here
        return
    old = path.parent / f".{path.name}.probreg-old-{uuid.uuid4().hex[:12]}"
    os.rename(path, old)
    try:
        os.rename(staging, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)``; False if unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _make_parents(folder: Path, shown: Any) -> list[Path]:
    """Create ``folder`` and missing parents; return those created (outermost first)."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    missing.reverse()
    try:
        for item in missing:
            item.mkdir()
    except OSError as error:
        raise UsageError(
            f"cannot write to output directory '{shown}': {error.strerror or error}"
        ) from None
    return missing


def _lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.probreg-lock"


def _first_free(target: Path, shown: Any) -> tuple[Path, int]:
    """The first of ``target``, ``target-2``, ``target-3``... that nobody holds, locked."""
    for counter in range(1, 1000):
        candidate = target if counter == 1 else target.with_name(f"{target.name}-{counter}")
        if os.path.lexists(candidate):
            continue
        lock = _lock(candidate, shown, busy=None)
        if lock is None:
            continue
        if not os.path.lexists(candidate):
            return candidate, lock
        _unlock(lock, candidate)
    raise UsageError(f"no free name beside output '{shown}'; choose another --output (output=)")


def _lock(target: Path, shown: Any, busy: Any = UsageError) -> int | None:
    """Take the output's lock (non-blocking); a one-line error names the holder's PID."""
    path = _lock_path(target)
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise UsageError(
                f"cannot write to output directory '{shown}': {error.strerror or error}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if busy is None:
                return None
            raise UsageError(
                f"output '{shown}' is being written by another probreg process (PID "
                f"{shorten(holder, 20)}); wait for it or choose another --output (output=)"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a lock file its last holder unlinked while we opened it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)
    raise UsageError(f"output '{shown}' is contended by other processes; try again")


def _unlock(fd: int, target: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(_lock_path(target))
    os.close(fd)


def _remove_stale(target: Path) -> None:
    """Tidy what killed processes left beside ``target``: staging folders go; an old folder
    that a kill caught between the two renames of :func:`swap_in` goes back to ``target`` if
    nothing is there, else it goes too."""
    prefix = glob.escape(str(target.parent / f".{target.name}."))
    for pattern in ("probreg-old-*", "probreg-staging-*"):
        for item in sorted(glob.glob(prefix + pattern)):
            if not os.path.isdir(item) or os.path.islink(item):
                continue
            if pattern == "probreg-old-*" and not os.path.lexists(target):
                os.rename(item, target)
            else:
                shutil.rmtree(item, ignore_errors=True)
