"""The stop signals of the CLI and of tune's workers, and how training makes sure none is lost.

Ctrl-C, SIGTERM (timeout, Docker, Kubernetes, Slurm) and SIGHUP raise ``KeyboardInterrupt``:
training keeps its best weights and the run finishes as ``interrupted``. A raised
``KeyboardInterrupt`` can still be lost before it reaches training: Python only prints one
raised where it cannot propagate (a garbage-collection callback, which JAX registers, a
``__del__`` or a weakref callback), and native code that checks for signals while it waits
(JAX's, for one) may clear it. So every stop also counts as *pending* until training acts on
it: :func:`probreg.training.fit` raises a pending stop before its next batch, or finishes as
``interrupted`` if no batch follows, and the hook installed here keeps Python from printing the
dropped exception. Numpy-free and TensorFlow-free: the CLI installs this before anything heavy
loads. Read the counts as ``interrupts.received``, not by importing them.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType

_STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


def _stop_signal_numbers() -> list[int]:
    """The stop signals this platform has (Windows has no SIGHUP)."""
    return [getattr(signal, name) for name in _STOP_SIGNALS if hasattr(signal, name)]


#: Stop signals this process has received since :func:`install`.
received = 0
#: Of those, the ones training has not acted on yet (see :func:`take_pending`).
pending = 0


def _stop(signum: int, frame: FrameType | None) -> None:
    global received, pending
    received += 1
    pending += 1
    raise KeyboardInterrupt


def take_pending() -> bool:
    """Whether a stop arrived that nothing has acted on since the last call; it is then
    taken, so only one caller acts on it (training, when it stops for it)."""
    global pending
    if not pending:
        return False
    pending = 0
    return True


def __getattr__(name: str) -> object:
    """The earlier names, for code written against them: ``dropped`` reads :data:`pending`
    and ``take_dropped`` is :func:`take_pending` (every lost stop now counts as pending)."""
    if name == "dropped":
        return pending
    if name == "take_dropped":
        return take_pending
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


UnraisableHook = Callable[["sys.UnraisableHookArgs"], object]


def _silence_dropped_stops(previous: UnraisableHook) -> UnraisableHook:
    """An unraisable-exception hook that drops a stop's ``KeyboardInterrupt`` silently (it stays
    pending) and passes everything else (a ``KeyboardInterrupt`` before any signal too) to
    ``previous``."""

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and received:
            return
        previous(unraisable)

    hook.probreg_silences_dropped_stops = True  # type: ignore[attr-defined]
    return hook


def install() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise ``KeyboardInterrupt`` and count as pending, and
    keep Python from printing the ones it drops. An ignored signal (SIGHUP under nohup) stays
    ignored; outside the main thread the handlers stay as they are."""
    global pending
    pending = 0
    for number in _stop_signal_numbers():
        with contextlib.suppress(ValueError, OSError):  # not the main thread: leave them
            if signal.getsignal(number) is not signal.SIG_IGN:
                signal.signal(number, _stop)
    if not getattr(sys.unraisablehook, "probreg_silences_dropped_stops", False):
        sys.unraisablehook = _silence_dropped_stops(sys.unraisablehook)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold stop signals while a last write runs, so it is never cut in half: a stop that
    arrives meanwhile is noted and sent again, to whatever handler was there, once the write is
    done; a second stop is not held. Python runs signal handlers in the main thread, whichever
    thread got the signal, so swapping the handlers holds them for the whole process; outside
    the main thread nothing is held."""
    noted: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        if noted:  # asked twice: stop now
            raise KeyboardInterrupt
        noted.append(signum)

    previous = {}
    for number in _stop_signal_numbers():
        handler = signal.getsignal(number)
        if handler in (signal.SIG_IGN, None):  # ignored, or native code's own
            continue
        with contextlib.suppress(ValueError, OSError):  # not the main thread: nothing held
            signal.signal(number, note)
            previous[number] = handler
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if noted:
        signal.raise_signal(noted[0])
