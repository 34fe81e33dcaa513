"""Training on several devices or processes with existing engines, not a home-made one.

- One host, several devices (``--devices N``): ``tf.distribute.MirroredStrategy`` on
  TensorFlow, ``keras.distribution.DataParallel`` on JAX. On a CPU-only machine the CPU is split
  into ``N`` logical devices (useful to test; real speed-ups need accelerators).
- Several processes or hosts (``--distributed``, JAX only): every process joins JAX's
  distributed runtime (``jax.distributed.initialize`` with the coordinator address, number of
  processes and process id, from options or JAX's environment variables), trains on its own
  shard of the rows with ``DataParallel(auto_shard_dataset=False)``, and process 0 alone
  evaluates on the full test set and writes the run directory. CPU collectives use gloo.

``tf.distribute.MultiWorkerMirroredStrategy`` is not offered: Keras 3 cannot ``fit`` with it
(keras-team/keras#20585).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from typing import NoReturn

import numpy as np

from probreg.errors import TrainingError, UsageError, shorten


@dataclasses.dataclass(frozen=True)
class Layout:
    """How training is spread: local devices per process, and this process among all."""

    devices: int = 1
    process_index: int = 0
    process_count: int = 1
    peer_timeout: float = 120.0

    @property
    def is_main(self) -> bool:
        return self.process_index == 0

    @property
    def distributed(self) -> bool:
        return self.process_count > 1

    @property
    def parallel(self) -> bool:
        return self.devices > 1 or self.process_count > 1


SINGLE = Layout()


def backend_name() -> str:
    """The Keras backend that will be used, without importing Keras."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def prepare_local_devices(devices: int) -> None:
    """Ask for ``devices`` host (CPU) devices; must run before JAX or TensorFlow starts.

    For JAX this sets ``--xla_force_host_platform_device_count``; TensorFlow splits the CPU into
    logical devices now, before anything (such as the checks that build a trial model) starts
    it. Accelerators, where present, are used as they are.
    """
    if devices < 1:
        raise UsageError(f"--devices must be at least 1, not {devices}")
    if devices > 1 and backend_name() == "jax":
        flag = f"--xla_force_host_platform_device_count={devices}"
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {flag}".strip()
    elif devices > 1 and backend_name() == "tensorflow":
        import tensorflow as tf

        if len(tf.config.list_physical_devices("GPU")) < devices:
            cpu = tf.config.list_physical_devices("CPU")[0]
            with contextlib.suppress(RuntimeError):  # TensorFlow has started already
                tf.config.set_logical_device_configuration(
                    cpu, [tf.config.LogicalDeviceConfiguration()] * devices
                )


def initialize(
    coordinator: str | None,
    num_processes: int | None,
    process_id: int | None,
    devices: int = 1,
    timeout: int = 120,
) -> Layout:
    """Join a multi-process JAX job and return this process's place in it.

    Missing values fall back to JAX's own detection (its ``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` variables, or a SLURM allocation).
    """
    if backend_name() != "jax":
        raise UsageError(
            "--distributed needs the JAX backend: set KERAS_BACKEND=jax (and pip install "
            "'probreg[jax]'); Keras 3 cannot fit with TensorFlow's multi-worker strategy"
        )
    check_job(coordinator, num_processes, process_id)
    prepare_local_devices(devices)
    try:
        import jax
    except ImportError:
        raise UsageError("--distributed needs JAX: pip install 'probreg[jax]'") from None
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            initialization_timeout=timeout,
            heartbeat_timeout_seconds=max(10, timeout // 4),
        )
    except Exception as error:  # JAX raises several types; all mean "could not join"
        reason = " ".join(str(error).split())[:300]
        if any(missing in reason for missing in _UNDETECTED):  # no cluster to read them from
            raise UsageError(
                "--distributed needs --coordinator HOST:PORT, --num-processes N and "
                "--process-id I (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
                "JAX_PROCESS_ID) where JAX detects no cluster"
            ) from None
        raise TrainingError(
            f"could not join the distributed job at {coordinator or 'the detected coordinator'} "
            f"(waited up to {timeout} s): {reason}"
        ) from None
    return Layout(devices, jax.process_index(), jax.process_count(), float(timeout))


#: JAX's messages for a job setting it could neither read from the options nor detect.
_UNDETECTED = ("coordinator_address should be defined", "must be defined")


def check_job(coordinator: str | None, num_processes: int | None, process_id: int | None) -> None:
    """One-line errors for a malformed ``--coordinator`` or a process id outside the job."""
    if coordinator is not None:
        host, _, port = coordinator.strip().rpartition(":")
        if not host or not re.fullmatch("[0-9]{1,5}", port) or not 0 < int(port) < 65536:
            raise UsageError(
                f"--coordinator must be HOST:PORT with a port from 1 to 65535 "
                f"(e.g. 10.0.0.1:1234), not '{coordinator}'"
            )
    if num_processes is not None and process_id is not None and process_id >= num_processes:
        raise UsageError(
            f"--process-id must be below --num-processes ({num_processes}): 0 to "
            f"{num_processes - 1}, not {process_id}"
        )


def shard(rows: np.ndarray, layout: Layout) -> np.ndarray:
    """This process's rows: every ``process_count``-th row, the same number on every process
    (a few trailing rows are dropped so that all processes take the same number of steps)."""
    if not layout.distributed:
        return rows
    per_process = len(rows) // layout.process_count
    if per_process < 1:
        raise UsageError(f"{len(rows)} rows cannot be shared by {layout.process_count} processes")
    return rows[layout.process_index :: layout.process_count][:per_process]


def plan(config, rows: np.ndarray, val_rows: np.ndarray, layout: Layout):
    """Training recipe and rows for this process in a parallel layout.

    ``batch_size`` stays the global batch: each process takes ``batch_size / process_count``
    rows per step from its own shard. Every batch must split evenly over the devices (JAX
    requires it, and TensorFlow's MirroredStrategy fails on a last batch that does not), so
    batch sizes are rounded down to a multiple of the local device count and the rows to a
    multiple of the batch (the rest of each shard is left out, the same on every process).
    """
    import keras

    rows, val_rows = shard(rows, layout), shard(val_rows, layout)
    batch = max(layout.devices, config.batch_size // layout.process_count)
    changes = {"batch_size": batch}
    backend = keras.backend.backend()
    if backend == "tensorflow":
        # Keras turns XLA off under tf.distribute, and its multi-step loop fails with
        # MirroredStrategy ("You must feed a value for placeholder tensor"): one step per call.
        changes.update(jit_compile=False, steps_per_execution=1)
    batch -= batch % layout.devices
    changes["batch_size"] = batch
    rows = rows[: max(batch, len(rows) - len(rows) % batch)]
    keep = len(val_rows) - len(val_rows) % (min(batch, len(val_rows)) or 1)
    keep -= keep % layout.devices
    if len(rows) < batch or keep < layout.devices:
        raise UsageError(
            f"too few rows for {layout.process_count} process(es) x {layout.devices} "
            f"device(s) at batch size {config.batch_size}"
        )
    val_rows = val_rows[:keep]
    changes["validation_batch_size"] = min(batch, keep)
    return dataclasses.replace(config, **changes), rows, val_rows


@contextlib.contextmanager
def strategy_scope(layout: Layout) -> Iterator[None]:
    """Build and compile the model inside this block to train data-parallel."""
    if not layout.parallel:
        yield
        return
    import keras

    if keras.backend.backend() == "jax":
        import jax

        if layout.distributed:
            devices = jax.devices()
        else:
            devices = jax.local_devices()[: layout.devices]
            if len(devices) < layout.devices:
                raise UsageError(
                    f"--devices {layout.devices}: JAX sees only {len(devices)} local device(s)"
                )
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
        )
        try:
            yield
        finally:
            keras.distribution.set_distribution(None)
        return
    if keras.backend.backend() != "tensorflow":
        raise UsageError(f"--devices is not supported on the {keras.backend.backend()} backend")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) >= layout.devices:
        names = [f"/gpu:{i}" for i in range(layout.devices)]
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        # TensorFlow allows this once per process, before it starts; later calls raise.
        with contextlib.suppress(RuntimeError):
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * layout.devices
            )
        names = [d.name for d in tf.config.list_logical_devices("CPU")][: layout.devices]
        if len(names) < layout.devices:
            raise UsageError(
                f"--devices {layout.devices}: TensorFlow already started with {len(names)} "
                "CPU device(s) in this process"
            )
    with tf.distribute.MirroredStrategy(devices=names).scope():
        yield


def local_weights(model) -> list[np.ndarray]:
    """The model's weights as numpy on this process, also when they are global JAX arrays."""
    values = []
    for variable in model.weights:
        value = variable.value
        if hasattr(value, "addressable_shards") and not getattr(
            value, "is_fully_addressable", True
        ):
            value = value.addressable_shards[0].data  # replicated: any local shard is the whole
        values.append(np.asarray(value))
    return values


#: Words in the errors JAX raises when a collective operation loses a peer process.
PEER_FAILURES = ("Gloo", "Connection reset by peer", "coordination service", "heartbeat")


class PeerWatchdog:
    """Stop this process with a clear error when training makes no progress for ``timeout``
    seconds, which in a multi-process job means a peer died or hung (collectives would
    otherwise wait forever)."""

    def __init__(self, timeout: float, process_index: int) -> None:
        self.timeout = timeout
        self.process_index = process_index
        self.last = time.monotonic()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def beat(self) -> None:
        self.last = time.monotonic()

    def _watch(self) -> None:
        while not self.stopped.wait(1.0):
            if time.monotonic() - self.last > self.timeout:
                self._stop(f"no training progress for {self.timeout:.0f} s")

    def _stop(self, what: str) -> NoReturn:
        """One line, then exit at once: the job cannot go on, and an orderly exit would wait
        on the dead peer (or abort in JAX's coordination service with a native dump)."""
        sys.stderr.write(
            f"Error: process {self.process_index}: {what}; a peer process probably died. "
            "Stopping.\n"
        )
        sys.stderr.flush()
        os._exit(1)

    def __enter__(self) -> PeerWatchdog:
        self.thread.start()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.stopped.set()
        message = " ".join(str(exc).split()) if exc is not None else ""
        if any(mark in message for mark in PEER_FAILURES):  # a collective lost its peer
            self._stop(f"a collective operation failed ({shorten(message, 200)})")
