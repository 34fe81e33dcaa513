"""The CLI's stop signals, and how training makes sure that none is lost.

Ctrl-C, SIGTERM (timeout, Docker, Kubernetes, Slurm) and SIGHUP raise ``KeyboardInterrupt``:
training keeps its best weights and the run finishes as ``interrupted``. Python cannot raise an
exception from where it can only print it: a garbage-collection callback (JAX registers one), a
``__del__`` or a weakref callback. A signal handled there would be dropped and training would
go on. So the handler also counts each signal, and :func:`probreg.training.fit` raises
``KeyboardInterrupt`` itself before its next batch when one arrived while it ran and did not
end it. Numpy-free and TensorFlow-free: the CLI installs this before anything heavy loads.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import Any

#: How many stop signals this process has received (counted once :func:`install` ran).
received = 0


def _stop(signum: int, frame: Any) -> None:
    global received
    received += 1
    raise KeyboardInterrupt


def _quiet_about_dropped_stops(previous: Any) -> Any:
    """An unraisable-exception hook that says nothing about a dropped stop (training raises it
    again) and passes everything else on to ``previous``."""

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and received:
            return
        previous(unraisable)

    hook.keeps_stops = True  # type: ignore[attr-defined]
    return hook


def install() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise ``KeyboardInterrupt`` and count them. An ignored
    signal (SIGHUP under nohup) stays ignored; outside the main thread nothing changes."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is None:
            continue
        with contextlib.suppress(ValueError, OSError):  # not the main thread: leave them
            if signal.getsignal(number) is not signal.SIG_IGN:
                signal.signal(number, _stop)
    if not getattr(sys.unraisablehook, "keeps_stops", False):
        sys.unraisablehook = _quiet_about_dropped_stops(sys.unraisablehook)
