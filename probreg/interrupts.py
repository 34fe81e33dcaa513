"""The stop signals of the CLI and of tune's workers, and how training makes sure none is lost.

Ctrl-C, SIGTERM (timeout, Docker, Kubernetes, Slurm) and SIGHUP raise ``KeyboardInterrupt``:
training keeps its best weights and the run finishes as ``interrupted``. Python cannot raise an
exception from where it can only print it: a garbage-collection callback (JAX registers one), a
``__del__`` or a weakref callback. A stop handled there would be dropped and training would go
on. So the hook installed here counts each dropped stop instead of printing it, and
:func:`probreg.training.fit` raises it again before its next batch, or finishes as
``interrupted`` if no batch follows. Numpy-free and TensorFlow-free: the CLI installs this
before anything heavy loads. Read the counts as ``interrupts.received``, not by importing them.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable
from types import FrameType

#: Stop signals this process has received since :func:`install`.
received = 0
#: Of those, the ones whose ``KeyboardInterrupt`` Python dropped and nothing has raised again.
dropped = 0


def _stop(signum: int, frame: FrameType | None) -> None:
    global received
    received += 1
    raise KeyboardInterrupt


def take_dropped() -> bool:
    """Whether a stop was dropped since the last call (it is then taken: only one caller acts
    on it)."""
    global dropped
    if not dropped:
        return False
    dropped = 0
    return True


UnraisableHook = Callable[["sys.UnraisableHookArgs"], object]


def _count_dropped_stops(previous: UnraisableHook) -> UnraisableHook:
    """An unraisable-exception hook that counts a dropped stop instead of printing it, and
    passes everything else (a ``KeyboardInterrupt`` before any signal too) to ``previous``."""

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        global dropped
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and received:
            dropped += 1
            return
        previous(unraisable)

    hook.probreg_counts_dropped_stops = True  # type: ignore[attr-defined]
    return hook


def install() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise ``KeyboardInterrupt``, and count the ones Python
    drops. An ignored signal (SIGHUP under nohup) stays ignored; outside the main thread the
    handlers stay as they are."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is None:
            continue
        with contextlib.suppress(ValueError, OSError):  # not the main thread: leave them
            if signal.getsignal(number) is not signal.SIG_IGN:
                signal.signal(number, _stop)
    if not getattr(sys.unraisablehook, "probreg_counts_dropped_stops", False):
        sys.unraisablehook = _count_dropped_stops(sys.unraisablehook)
