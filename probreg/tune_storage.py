"""Where a :func:`probreg.tuning.tune` study lives: Optuna storage on SQLite (the default, a
file in the tune folder) or a shared database such as PostgreSQL, opened with one-line errors
and a lock around schema creation."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probreg.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover - optuna is imported when a search starts
    pass

#: Seconds between a worker's signs of life in the storage; a trial whose worker stays silent
#: for twice as long is marked failed.
HEARTBEAT = 60


@dataclasses.dataclass
class Storage:
    """An opened Optuna storage, the URL to show (no password) and the lock workers share."""

    optuna: Any
    url: str
    shown: str
    lock: Callable[[str], contextlib.AbstractContextManager]


def hide_password(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and files)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def open_storage(url: str, heartbeat: int = HEARTBEAT) -> Storage:
    """Open (and create the tables of) an Optuna RDB storage; bad URLs and unreachable
    databases are one-line :class:`UsageError` s naming the URL without its password."""
    import optuna
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        raise UsageError(
            f"bad storage URL '{hide_password(url)}': expected e.g. sqlite:///tune.db or "
            "postgresql://user:password@host:5432/database"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        if parsed.database:
            folder = Path(parsed.database).resolve().parent
            if not folder.is_dir():
                raise UsageError(f"cannot open storage '{shown}': folder '{folder}' does not exist")
        engine_kwargs["connect_args"] = {"timeout": 120}
    elif backend == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    lock_file = Path(parsed.database or "memory").with_suffix(".lock")
    try:
        # One process at a time creates the tables: concurrent creation collides.
        with _schema_lock(backend, url, engine_kwargs, lock_file), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
            )
    except ImportError as error:
        cause = error.__cause__ or error
        driver = getattr(cause, "name", None) or parsed.get_driver_name()
        hint = "; install it with pip install 'psycopg[binary]'" if driver == "psycopg" else ""
        raise UsageError(
            f"cannot open storage '{shown}': its database driver ({driver}) is not installed{hint}"
        ) from None
    except sqlalchemy.exc.NoSuchModuleError:
        raise UsageError(
            f"bad storage URL '{shown}': unknown database type '{parsed.drivername}'; use "
            "sqlite:///FILE or postgresql://user:password@host:port/database"
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
        reason = _one_line(getattr(error, "orig", None) or error.__cause__ or error, parsed)
        raise UsageError(f"cannot connect to storage '{shown}': {reason}") from None
    except ValueError as error:
        raise UsageError(f"bad storage URL '{shown}': {_one_line(error, parsed)}") from None
    if backend == "sqlite":
        lock = _file_lock(lock_file)
    elif backend == "postgresql":
        lock = _advisory_lock(storage.engine)
    else:  # best effort: no cross-process lock
        lock = lambda study: contextlib.nullcontext()  # noqa: E731
    return Storage(storage, url, shown, lock)


@contextlib.contextmanager
def _schema_lock(backend: str, url: str, engine_kwargs: dict, lock_file: Path) -> Iterator[None]:
    if backend == "sqlite":
        with _file_lock(lock_file)("schema"):
            yield
    elif backend == "postgresql":
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, **engine_kwargs)
        try:
            with _advisory_lock(engine)("schema"):
                yield
        finally:
            engine.dispose()
    else:
        yield


def _one_line(error: Any, parsed: Any) -> str:
    text = " ".join(str(error).split())
    if parsed.password:
        text = text.replace(str(parsed.password), "***")
    return text[:300] or type(error).__name__


def _file_lock(path: Path) -> Callable[[str], contextlib.AbstractContextManager]:
    @contextlib.contextmanager
    def lock(study: str) -> Iterator[None]:
        import fcntl

        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    return lock


def _advisory_lock(engine: Any) -> Callable[[str], contextlib.AbstractContextManager]:
    from sqlalchemy import text

    @contextlib.contextmanager
    def lock(study: str) -> Iterator[None]:
        key = zlib.crc32(f"probreg-tune:{study}".encode())
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()

    return lock
