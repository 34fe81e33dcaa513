"""Run directories: what a run writes, and :func:`load_run` to use a trained run later.

A run directory holds ``config.json`` (plugin specs and versions, input and target scaling),
``model.keras``, ``history.json``, ``metrics.json`` (written last) and the pictures.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from probreg import plugins
from probreg.distributions import Distribution
from probreg.errors import PluginError, UsageError
from probreg.heads import Head
from probreg.samplers import Sampler

CONFIG = "config.json"
MODEL = "model.keras"
METRICS = "metrics.json"
HISTORY = "history.json"


@dataclasses.dataclass(frozen=True)
class Standardizer:
    """Per-column ``(value - mean) / scale``, fitted on training rows only."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, rows: np.ndarray) -> Standardizer:
        rows = np.asarray(rows, np.float64)
        scale = rows.std(axis=0)
        return cls(rows.mean(axis=0), np.where(scale > 0, scale, 1.0))

    def transform(self, rows: np.ndarray) -> np.ndarray:
        return ((np.asarray(rows, np.float64) - self.mean) / self.scale).astype(np.float32)

    def lazy(self, rows: np.ndarray) -> StandardisedRows:
        """A view of ``rows`` that is standardised only when rows are taken from it."""
        return StandardisedRows(rows, self)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> Standardizer:
        return cls(np.asarray(data["mean"], np.float64), np.asarray(data["scale"], np.float64))


class StandardisedRows:
    """Rows of an array (or memory map), standardised batch by batch as they are indexed."""

    def __init__(self, rows: np.ndarray, scaling: Standardizer) -> None:
        self.rows, self.scaling = rows, scaling

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> np.ndarray:
        return self.scaling.transform(self.rows[index])


class Predictor:
    """A trained model with its scaling: inputs in data units in, a distribution in data units out.

    Standardisation stays inside; callers never see standardised numbers.
    """

    def __init__(self, model, head: Head, x_scaling: Standardizer, y_scaling: Standardizer) -> None:
        self.model = model
        self.head = head
        self.x_scaling = x_scaling
        self.y_scaling = y_scaling

    @property
    def input_dim(self) -> int:
        return len(self.x_scaling.mean)

    @property
    def output_dim(self) -> int:
        return len(self.y_scaling.mean)

    def outputs(self, x: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """The model's raw outputs for ``x`` in data units.

        Calls the model directly rather than through ``predict``, so a freshly trained model
        (compiled with XLA) and the same model loaded from disk give bit-identical outputs.
        """
        import keras

        x = self.x_scaling.transform(np.asarray(x, np.float64).reshape(-1, self.input_dim))
        chunks = [
            keras.ops.convert_to_numpy(self.model(x[i : i + batch_size], training=False))
            for i in range(0, max(len(x), 1), batch_size)
        ]
        return np.concatenate(chunks, axis=0)

    def distribution(self, x: np.ndarray) -> Distribution:
        """The predictive distribution at each row of ``x`` (shape ``(n, input_dim)``)."""
        standardised = self.head.distribution(self.outputs(x), self.output_dim)
        return standardised.affine(self.y_scaling.mean, self.y_scaling.scale)


@dataclasses.dataclass
class LoadedRun:
    """A run directory loaded back: its config, metrics and a ready :class:`Predictor`."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any] | None
    predictor: Predictor
    sampler: Sampler

    @property
    def model(self):
        return self.predictor.model

    @property
    def x_names(self) -> list[str]:
        return self.config["x_names"]

    @property
    def y_names(self) -> list[str]:
        return self.config["y_names"]

    def distribution(self, x: np.ndarray) -> Distribution:
        return self.predictor.distribution(x)


def plugin_record(instance: Any) -> dict[str, str]:
    """How ``config.json`` records a plugin: its spec and the package (and version) it came from."""
    source = plugins.source_of(instance)
    return {"spec": instance.spec, "package": source.name, "version": source.version}


def _create_recorded(kind: str, record: dict[str, str]) -> Any:
    try:
        return plugins.create(kind, record["spec"])
    except UsageError:
        name = record["spec"].partition(":")[0]
        if name not in plugins.registry()[kind]:
            raise PluginError(
                f"this run needs {kind} '{name}' from plugin package '{record['package']}' "
                f"{record['version']}, which is not installed or not loaded "
                f"(pip install {record['package']}, and check {plugins.ALLOW_LIST_ENV})"
            ) from None
        raise


def load_run(path: str | Path, sampler: str | Sampler | None = None) -> LoadedRun:
    """Load a run directory for prediction: model (Keras safe mode), scaling, head and sampler.

    ``sampler`` overrides the run's own sampler. Raises a one-line :class:`UsageError` for a
    missing directory or a corrupt model file, and :class:`PluginError` when the run's head
    comes from a plugin package that is not installed.
    """
    path = Path(path)
    config_path = path / CONFIG
    if not path.is_dir():
        raise UsageError(f"run directory '{path}' does not exist")
    if not config_path.is_file():
        raise UsageError(f"'{path}' is not a probreg run directory: it has no {CONFIG}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        head_record = config["head"]
        config["sampler"]["spec"]
        x_scaling = Standardizer.from_dict(config["scaling"]["x"])
        y_scaling = Standardizer.from_dict(config["scaling"]["y"])
    except (ValueError, KeyError, TypeError) as error:
        raise UsageError(f"'{config_path}' is corrupt: {error}") from None
    head = _create_recorded("head", head_record)
    sampler_instance = (
        _create_recorded("sampler", config["sampler"])
        if sampler is None
        else plugins.create("sampler", sampler)
    )
    model = load_model(path / MODEL, head)
    metrics_path = path / METRICS
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    return LoadedRun(
        path, config, metrics, Predictor(model, head, x_scaling, y_scaling), sampler_instance
    )


def load_model(model_path: Path, head: Head):
    """Load a ``.keras`` file in Keras safe mode (no code from the file runs)."""
    import importlib

    import keras

    if not model_path.is_file():
        raise UsageError(f"model file '{model_path}' is missing")
    for module in head.keras_modules:
        importlib.import_module(module)
    try:
        return keras.saving.load_model(model_path, compile=False, safe_mode=True)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as error:
        reason = " ".join(str(error).split())
        if "safe_mode" in reason:
            raise UsageError(
                f"model file '{model_path}' contains code (such as a Lambda layer), which Keras "
                "safe mode refuses to run; only load models you trust outside probreg"
            ) from None
        raise UsageError(
            f"model file '{model_path}' is corrupt or truncated: {reason[:200]}"
        ) from None
