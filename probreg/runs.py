"""Standardisation, the trained :class:`Predictor`, and :func:`load_run` to use a run later.

A run directory holds ``config.json`` (plugin specs and versions, input and target scaling),
``model.keras``, ``history.json``, ``metrics.json`` and the pictures; :mod:`probreg.rundir`
writes and reads them and decides whether a folder is complete.

Data stays float64 until :class:`Standardizer` has standardised it (in float64); only then is
it cast to float32 for the model. Training and prediction use the same code for this.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from probreg import plugins, rundir
from probreg.datasets import input_rows
from probreg.distributions import Distribution
from probreg.errors import PluginError, ProbregError, UsageError, shorten
from probreg.heads import Head
from probreg.rundir import CONFIG, HISTORY, METRICS, MODEL  # noqa: F401 - re-exported
from probreg.samplers import Sampler


@dataclasses.dataclass(frozen=True)
class Standardizer:
    """Per-column ``(value - mean) / scale`` in float64, fitted on training rows only.

    ``names`` and ``role`` (``input`` or ``target``) only make error messages precise;
    ``constant`` names the columns that had no spread (their scale is 1, so they become 0).
    """

    mean: np.ndarray
    scale: np.ndarray
    names: tuple[str, ...] = ()
    role: str = "input"
    constant: tuple[str, ...] = ()

    @classmethod
    def fit(cls, rows: np.ndarray, names: Sequence[str] = (), role: str = "input") -> Standardizer:
        """Mean and standard deviation per column, in float64.

        A column without spread gets scale 1. One-line :class:`UsageError` for a column whose
        spread overflows float64 (magnitudes beyond about 1e154) and for a constant target.
        """
        rows = np.asarray(rows, np.float64).reshape(len(rows), -1)
        names = tuple(names) or tuple(f"#{j + 1}" for j in range(rows.shape[1]))
        with np.errstate(over="ignore", invalid="ignore"):
            mean, scale = rows.mean(axis=0), rows.std(axis=0)
        for j, name in enumerate(names):
            if not (np.isfinite(mean[j]) and np.isfinite(scale[j])):
                raise UsageError(
                    f"{role} column '{shorten(name, 60)}' has values too large to standardise "
                    f"(up to {np.max(np.abs(rows[:, j])):.3g}; magnitudes must stay below "
                    "1e150): rescale it, for example to other units"
                )
        constant = tuple(name for j, name in enumerate(names) if scale[j] == 0)
        if constant and role == "target":
            raise UsageError(
                f"target column '{shorten(constant[0], 60)}' is constant in the training rows "
                f"(every value is {mean[names.index(constant[0])]:.17g}); there is nothing to "
                "learn"
            )
        return cls(mean, np.where(scale > 0, scale, 1.0), names, role, constant)

    def transform(self, rows: np.ndarray) -> np.ndarray:
        """Standardise in float64, then cast to float32 for the model; a one-line error names
        a column whose standardised values do not fit in float32."""
        rows = np.asarray(rows, np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            standardised = ((rows - self.mean) / self.scale).astype(np.float32)
        if not np.isfinite(standardised).all():
            bad = np.argwhere(~np.isfinite(standardised.reshape(len(rows), -1)))[0]
            j = int(bad[1])
            name = self.names[j] if j < len(self.names) else f"#{j + 1}"
            value = rows.reshape(len(rows), -1)[bad[0], j]
            raise UsageError(
                f"{self.role} column '{shorten(name, 60)}': value {value:.6g} is too large to "
                f"standardise (training mean {self.mean[j]:.6g}, spread {self.scale[j]:.3g})"
            )
        return standardised

    def lazy(self, rows: np.ndarray) -> StandardisedRows:
        """A view of ``rows`` that is standardised only when rows are taken from it."""
        return StandardisedRows(rows, self)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(
        cls, data: dict[str, list[float]], names: Sequence[str] = (), role: str = "input"
    ) -> Standardizer:
        return cls(
            np.asarray(data["mean"], np.float64),
            np.asarray(data["scale"], np.float64),
            tuple(names),
            role,
        )


def fit_scalings(data) -> tuple[Standardizer, Standardizer]:
    """The input and target :class:`Standardizer` of a :class:`probreg.datasets.Data`."""
    return (
        Standardizer.fit(data.x_train, data.x_names, "input"),
        Standardizer.fit(data.y_train, data.y_names, "target"),
    )


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
        self._compiled = None  # the traced model call, made on first use

    def __getstate__(self) -> dict:
        # The model travels as its .keras archive and is loaded back once the head has
        # registered the Keras classes it needs, so a fresh process can unpickle it too.
        # A traced function does not pickle.
        state = {k: v for k, v in self.__dict__.items() if k != "model"}
        return {**state, "_compiled": None, "model_archive": _model_archive(self.model)}

    def __setstate__(self, state: dict) -> None:
        archive = state.pop("model_archive", None)  # pickles from before it hold the model
        self.__dict__.update(state)
        if archive is not None:
            try:
                self.model = _model_from_archive(archive, self.head)
            except UsageError as error:
                raise UsageError(
                    f"cannot unpickle the model: {error}; import the modules that define your "
                    "own Keras classes (a trunk's layers) before unpickling"
                ) from None

    @property
    def input_dim(self) -> int:
        return len(self.x_scaling.mean)

    @property
    def output_dim(self) -> int:
        return len(self.y_scaling.mean)

    def outputs(self, x: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """The model's raw outputs for ``x`` in data units.

        Goes through one traced call of the model (:func:`probreg.fastpath.compiled_call`)
        rather than ``predict`` or an eager call: a single row costs well under a millisecond,
        and a freshly trained model and the same model loaded from disk give identical outputs.
        """
        from probreg.fastpath import compiled_call

        if self._compiled is None:
            self._compiled = compiled_call(self.model)
        x = self.x_scaling.transform(input_rows(x, (self.input_dim,)))
        chunks = [
            self._compiled(x[i : i + batch_size]) for i in range(0, max(len(x), 1), batch_size)
        ]
        return np.concatenate(chunks, axis=0)

    def distribution(self, x: np.ndarray) -> Distribution:
        """The predictive distribution at each row of ``x`` (shape ``(n, input_dim)``)."""
        return self.distribution_of(self.outputs(x))

    def distribution_of(self, outputs: np.ndarray) -> Distribution:
        """The predictive distribution, in data units, for raw model ``outputs``."""
        standardised = self.head.distribution(outputs, self.output_dim)
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


def family_record(head: Any) -> dict[str, dict[str, str]]:
    """``{"family": record}`` for a family head, so a run names the package of its family too."""
    from probreg.families.base import Family

    family = getattr(head, "family", None)
    return {"family": plugin_record(family)} if isinstance(family, Family) else {}


def _not_installed(kind: str, record: dict[str, str]) -> PluginError | None:
    """The one-line error for a recorded plugin whose package is missing, else ``None``."""
    name = str(record.get("spec", "")).partition(":")[0]
    if name in plugins.registry()[kind]:
        return None
    # Names from a run folder are data, never a command to run: quoted and shortened.
    package = str(record.get("package"))
    broken = plugins.broken_reason(package)
    state = (
        f"which failed to load ({shorten(broken, 80)}; fix or reinstall it)"
        if broken
        else "which is not installed or not loaded (install that package, and check "
        f"{plugins.ALLOW_LIST_ENV})"
    )
    return PluginError(
        f"this run needs {kind} '{shorten(name, 60)}' from plugin package "
        f"'{shorten(package, 60)}' {shorten(record.get('version'), 30)}, {state}"
    )


def _create_recorded(kind: str, record: dict[str, str]) -> Any:
    try:
        return plugins.create(kind, record["spec"])
    except UsageError:
        missing = _not_installed(kind, record)
        if missing is not None:
            raise missing from None
        raise


def load_run(path: str | Path, sampler: str | Sampler | None = None) -> LoadedRun:
    """Load a run directory for prediction: model (Keras safe mode), scaling, head and sampler.

    ``sampler`` overrides the run's own sampler. Raises a one-line :class:`UsageError` for a
    missing, incomplete or corrupt run folder (checked by :mod:`probreg.rundir`), and
    :class:`PluginError` when the run's head comes from a plugin package that is not installed.
    """
    path = Path(path)
    rundir.check_complete(path)
    config = rundir.read_config(path)
    metrics = rundir.read_metrics(path)
    x_scaling = Standardizer.from_dict(config["scaling"]["x"], config["x_names"], "input")
    y_scaling = Standardizer.from_dict(config["scaling"]["y"], config["y_names"], "target")
    family = config.get("family")
    missing = _not_installed("family", family) if isinstance(family, dict) else None
    if missing is not None:  # before the head, whose error would only name the family
        raise missing
    head = _create_recorded("head", config["head"])
    sampler_instance = (
        _create_recorded("sampler", config["sampler"])
        if sampler is None
        else plugins.create("sampler", sampler)
    )
    model = load_model(path / MODEL, head)
    predictor = Predictor(model, head, x_scaling, y_scaling)
    _check_consistent(path, config, predictor)
    return LoadedRun(path, config, metrics, predictor, sampler_instance)


def _check_consistent(path: Path, config: dict[str, Any], predictor: Predictor) -> None:
    """One row through the model and the head: a hand-edited head spec or scaling that does
    not fit the saved model is a one-line error here, not a traceback later."""
    head = predictor.head
    try:
        fresh = head.build(predictor.input_dim, predictor.output_dim)
        expected = getattr(fresh, "output_shape", None)
        actual = getattr(predictor.model, "output_shape", None)
        if expected is not None and actual is not None and tuple(expected) != tuple(actual):
            raise ValueError(f"the head makes outputs {expected}, the model {actual}")
        predictor.distribution(np.zeros((1, predictor.input_dim)))
    except ProbregError:
        raise
    except Exception as error:  # whatever Keras or the head raise for mismatched shapes
        raise UsageError(
            f"run folder '{path}' is inconsistent: head '{shorten(config['head']['spec'], 60)}' "
            f"and its scaling do not fit {MODEL} ({shorten(error, 160)})"
        ) from None


def _model_archive(model) -> bytes:
    """A Keras model as the bytes of its ``.keras`` archive."""
    import keras

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / MODEL
        keras.saving.save_model(model, path)
        return path.read_bytes()


def _model_from_archive(archive: bytes, head: Head):
    """The model of :func:`_model_archive`'s bytes, loaded for ``head`` as a run's model is.

    Unpickling already trusts the pickle, so Keras's safe mode is off, as in Keras's own
    pickling of models (a ``Lambda`` trunk loads)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / MODEL
        path.write_bytes(archive)
        return load_model(path, head, safe_mode=False)


def load_model(model_path: Path, head: Head, *, safe_mode: bool = True):
    """Load a ``.keras`` file in Keras safe mode (no code from the file runs), then let the
    head read what the saved model fixes (:meth:`~probreg.heads.Head.after_load`).

    ``safe_mode=False`` is for archives already trusted (unpickling)."""
    import keras

    if not model_path.is_file():
        raise UsageError(f"model file '{model_path}' is missing")
    if not zipfile.is_zipfile(model_path):  # Keras would say "File not found"
        raise UsageError(
            f"model file '{model_path}' is corrupt or truncated: not a zip archive, which a "
            ".keras file is"
        )
    head.prepare_load()
    try:
        model = keras.saving.load_model(model_path, compile=False, safe_mode=safe_mode)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as error:
        reason = " ".join(str(error).split())
        if "safe_mode" in reason:
            raise UsageError(
                f"model file '{model_path}' contains code (such as a Lambda layer), which Keras "
                "safe mode refuses to run; only load models you trust outside probreg"
            ) from None
        missing = re.search(r"Could not locate (?:class|function) '([^']+)'", reason)
        if missing:
            raise UsageError(
                f"model file '{model_path}' uses '{missing[1]}', which Keras cannot find: the "
                "plugin that defines it must decorate it with "
                "@keras.saving.register_keras_serializable() in a module its head lists in "
                "keras_modules"
            ) from None
        raise UsageError(
            f"model file '{model_path}' is corrupt or truncated: {reason[:200]}"
        ) from None
    head.after_load(model)
    return model
