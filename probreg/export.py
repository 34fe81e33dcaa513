"""Export a run's model for serving (ONNX, TensorFlow SavedModel, LiteRT), and read it back.

``probreg export RUN_DIR --format onnx`` writes a folder with the model file and
``probreg-export.json``. The exported model takes inputs in the data's own units (the run's
input standardisation is inside it) and outputs the family's packed parameters, exactly what
the run's Keras model outputs. :func:`distribution` turns those parameters into a probreg
:class:`~probreg.distributions.Distribution` in data units with numpy alone (no TensorFlow or
Keras is imported), and :class:`OnnxModel` does both steps with onnxruntime::

    from probreg.export import OnnxModel
    model = OnnxModel("runs/my-run/export/onnx")
    model.distribution(x).quantile(0.95)

Export goes through Keras's own ``Model.export`` (ONNX needs ``tf2onnx``, LiteRT TensorFlow's
converter; ``pip install probreg[export]``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from probreg import rundir
from probreg.errors import UsageError, shorten
from probreg.heads import FamilyHead

#: format -> (file or folder written inside the export folder, Keras's format name)
FORMATS = {
    "onnx": ("model.onnx", "onnx"),
    "saved_model": ("saved_model", "tf_saved_model"),
    "litert": ("model.tflite", "litert"),
}
METADATA = rundir.EXPORT_METADATA


def default_output(run_dir: str | os.PathLike, format: str) -> Path:
    """Where ``probreg export`` writes without ``--output``: ``RUN_DIR/export/FORMAT``."""
    return Path(run_dir) / "export" / format


def serving_model(predictor):
    """A Keras model from inputs in data units to the run model's packed parameters."""
    import keras

    model = predictor.model
    shape = tuple(model.input_shape[1:])
    mean = np.asarray(predictor.x_scaling.mean, np.float32)
    scale = np.asarray(predictor.x_scaling.scale, np.float32)
    if mean.size == int(np.prod(shape)) and mean.shape != shape[-1:]:
        mean, scale = mean.reshape(shape), scale.reshape(shape)

    class Standardise(keras.layers.Layer):
        """``(x - mean) / scale`` with the run's training statistics (constant weights)."""

        def build(self, input_shape) -> None:
            self.mean = self.add_weight(
                shape=mean.shape, initializer=keras.initializers.Constant(mean), trainable=False
            )
            self.scale = self.add_weight(
                shape=scale.shape, initializer=keras.initializers.Constant(scale), trainable=False
            )

        def call(self, x):
            return (x - self.mean) / self.scale

    inputs = keras.Input(shape, name="x", dtype="float32")
    served = keras.Model(inputs, model(Standardise(name="standardise")(inputs)), name="served")
    served(np.zeros((1, *shape), np.float32))  # Keras exports only models that were called
    return served


def export_run(
    run_dir: str | os.PathLike,
    output: str | os.PathLike | None = None,
    format: str = "onnx",
    force: bool = False,
) -> Path:
    """Export the run at ``run_dir``; return the export folder (model file + metadata)."""
    from probreg.runs import load_run

    if format not in FORMATS:
        raise UsageError(f"unknown export format '{format}'; allowed: {', '.join(FORMATS)}")
    import keras

    backend = keras.backend.backend()
    if format == "litert" and backend != "tensorflow":  # Keras's own limit (or torch)
        raise UsageError(
            f"exporting to litert needs the tensorflow backend, not {backend}; export with "
            "KERAS_BACKEND=tensorflow (the run folder is the same)"
        )
    target = Path(output) if output is not None else default_output(run_dir, format)
    if target.exists() and not _empty_folder(target):  # an empty one is used, as run does
        if not force:
            raise UsageError(
                f"output '{target}' already exists; use --force (force=True) to replace it"
            )
        _check_replaceable(target)
    run = load_run(run_dir)
    file_name, keras_format = FORMATS[format]
    served = serving_model(run.predictor)
    staging = target.parent / f".{target.name}.probreg-export-{uuid.uuid4().hex[:12]}"
    made = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    try:
        staging.mkdir(parents=True)
        try:
            with warnings.catch_warnings():  # Keras's tf2onnx copy probes np.object
                warnings.filterwarnings("ignore", message=".*np.object", category=FutureWarning)
                served.export(str(staging / file_name), format=keras_format, verbose=False)
        except ImportError as error:
            hint = (
                "pip install 'probreg[export]'"
                if backend == "tensorflow"
                else "or export with KERAS_BACKEND=tensorflow (the run folder is the same)"
            )
            reason = " ".join(str(error).split())
            raise UsageError(
                f"exporting to {format} on the {backend} backend needs a "
                f"package that is not installed ({reason}); {hint}"
            ) from None
        if format == "onnx":
            _check_onnx_runs(staging / file_name, served, run.predictor.x_scaling)
        head = run.predictor.head
        layer = head.layer_config(run.predictor.model) if isinstance(head, FamilyHead) else None
        metadata = {
            "format": format,
            "file": file_name,
            "run": str(Path(run_dir).resolve()),
            "head": head.spec,
            "output_dim": run.predictor.output_dim,
            "input_shape": list(served.input_shape[1:]),
            "outputs": int(served.output_shape[-1]),
            "x_names": run.x_names,
            "y_names": run.y_names,
            "y_scaling": run.predictor.y_scaling.to_dict(),
            "files": rundir.folder_tree(staging),  # so --force can tell a user's files
            # the options the layer fixes, whatever the defaults become (FamilyHead.after_load)
            **({"family_layer": layer} if layer is not None else {}),
        }
        (staging / METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        if _empty_folder(target):
            target.rmdir()
        elif target.exists():
            _check_replaceable(target)  # again: files may have been added while exporting
            shutil.rmtree(target)
        staging.rename(target)
        made = []  # they hold the export now
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in made:  # a failed export leaves no empty folder it made (RUN/export)
            with contextlib.suppress(OSError):
                folder.rmdir()
    return target


def _check_onnx_runs(path: Path, served: Any, x_scaling: Any) -> None:
    """The ONNX file loads in onnxruntime (when installed) and computes the Keras model's
    numbers one standard deviation either side of the training inputs' mean: a converter can
    write a graph with an operator onnxruntime lacks (tf2onnx turns exact ``gelu`` into
    ``Erfc``), which is refused here rather than found by whoever deploys it."""
    try:
        import onnxruntime
    except ImportError:
        return
    shape = tuple(served.input_shape[1:])
    mean, scale = (np.asarray(v, np.float32).ravel() for v in (x_scaling.mean, x_scaling.scale))
    size = int(np.prod(shape))
    rows = np.stack([mean - scale, mean + scale])  # (2, features), as serving_model reads them
    rows = np.tile(rows, (1, size // mean.size)).reshape(2, *shape).astype(np.float32)
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        ours = session.run(None, {session.get_inputs()[0].name: rows})[0]
    except Exception as error:
        missing = re.search(r"No Op registered for (\w+)", str(error))
        reason = (
            f"it has no {missing.group(1)} operator"
            if missing
            else shorten(str(error).replace(str(path.parent), "<export>"), 200)
        )
        gelu = (  # the one case seen: exact gelu
            ", or train with another activation than gelu, whose exact form tf2onnx writes as Erfc"
            if missing and missing.group(1) == "Erfc"
            else ""
        )
        raise UsageError(
            f"the exported ONNX graph does not run in onnxruntime ({reason}); export another "
            f"format (--format saved_model){gelu}"
        ) from None
    import keras

    theirs = keras.ops.convert_to_numpy(served(rows))
    if ours.shape != theirs.shape or not np.allclose(ours, theirs, rtol=1e-4, atol=1e-5):
        raise UsageError(
            "the ONNX file computes other numbers than the model (largest difference "
            f"{_largest_difference(ours, theirs)}); export another format (--format "
            "saved_model)"
        )


def _empty_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def _largest_difference(ours: np.ndarray, theirs: np.ndarray) -> str:
    if ours.shape != theirs.shape:
        return f"shape {ours.shape} against {theirs.shape}"
    return f"{float(np.max(np.abs(ours - theirs))):.3g}"


def _check_replaceable(target: Path) -> None:
    """Refuse to replace ``target`` unless it is an export holding only what export wrote."""
    extra = rundir.export_extras(target)
    if extra is None:
        raise UsageError(
            f"output '{target}' is not a probreg export (no readable {METADATA}); refusing "
            "to replace it, choose another --output (output=)"
        )
    if extra:
        raise rundir.refusal(target, extra)


def read_metadata(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``probreg-export.json`` of an export folder."""
    path = Path(folder) / METADATA
    if not path.is_file():
        raise UsageError(f"'{folder}' is not a probreg export: it has no {METADATA}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise UsageError(f"'{path}' is corrupt: {error}") from None


def distribution(params: np.ndarray, metadata: dict[str, Any] | str | os.PathLike):
    """The probreg Distribution, in data units, for an exported model's ``params`` output.

    ``metadata`` is the export folder or its parsed ``probreg-export.json``. Needs numpy and
    probreg only: no TensorFlow or Keras is imported.
    """
    if not isinstance(metadata, dict):
        metadata = read_metadata(metadata)
    return _Reader(metadata)(params)


class _Reader:
    """Packed parameters -> Distribution in data units, with the head and scaling made once."""

    def __init__(self, metadata: dict[str, Any]) -> None:
        from probreg import plugins

        self.head = plugins.create("head", metadata["head"])
        self.width, self.output_dim = metadata["outputs"], metadata["output_dim"]
        if isinstance(self.head, FamilyHead):
            if "family_layer" in metadata:
                self.head.adopt_layer_config(metadata["family_layer"])
            elif self.head.packed_width(self.output_dim) != self.width:
                # Exported before the layer's config was recorded and before an option changed
                # the layout (the spline's affine map): read it as a layer from before then.
                self.head.adopt_layer_config({})
            if self.head.packed_width(self.output_dim) != self.width:
                raise UsageError(
                    f"export metadata does not fit: head '{shorten(metadata['head'], 60)}' makes "
                    f"{self.head.packed_width(self.output_dim)} parameters per row, the export "
                    f"{self.width}; export the run again"
                )
        self.mean = np.asarray(metadata["y_scaling"]["mean"], np.float64)
        self.scale = np.asarray(metadata["y_scaling"]["scale"], np.float64)

    def __call__(self, params: np.ndarray):
        params = np.asarray(params, np.float64).reshape(-1, self.width)
        return self.head.distribution(params, self.output_dim).affine(self.mean, self.scale)


class OnnxModel:
    """An exported ONNX model run with onnxruntime: ``params(x)`` and ``distribution(x)``."""

    def __init__(self, folder: str | os.PathLike, threads: int = 1) -> None:
        import onnxruntime

        self.metadata = read_metadata(folder)
        if self.metadata["format"] != "onnx":
            raise UsageError(f"'{folder}' holds a {self.metadata['format']} export, not onnx")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(Path(folder) / self.metadata["file"]), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.shape = tuple(self.metadata["input_shape"])
        self._reader = _Reader(self.metadata)

    def params(self, x: np.ndarray) -> np.ndarray:
        """The packed family parameters for inputs ``x`` in data units."""
        from probreg.datasets import input_rows

        x = input_rows(x, self.shape, np.float32)
        return self.session.run(None, {self.input_name: x})[0]

    def distribution(self, x: np.ndarray):
        """The predictive distribution at each row of ``x``, in data units."""
        return self._reader(self.params(x))
