"""Dataset ``uci``: a UCI regression benchmark folder in the standard 20-split format.

The format of Hernandez-Lobato & Adams (2015) and Gal & Ghahramani (2016): ``data.txt``
(whitespace-separated numbers), ``index_features.txt`` and ``index_target.txt`` (0-based
columns), ``index_train_K.txt`` and ``index_test_K.txt`` (0-based rows of split K) and,
optionally, ``n_splits.txt``. Validation rows for early stopping are carved (seeded) from the
training rows only; probreg standardises on the remaining training rows and reports test scores
in the target's original units, as the published tables do.

``probreg compare --dataset uci:path=FOLDER --splits all`` runs every split and sets the result
beside the published figures (:data:`PUBLISHED`, sources in :data:`REFERENCES`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from probreg.datasets import Data, Dataset, split_rows
from probreg.errors import UsageError
from probreg.hookspecs import hookimpl
from probreg.params import Param

#: The published methods, in table order: a short label, the source and how its splits relate
#: to the standard ones (only same-split numbers are strictly comparable).
REFERENCES = {
    "mc_dropout": {
        "label": "MC dropout",
        "source": "Gal & Ghahramani (2016), grid-search re-run with their code; ± standard error",
        "splits": "same splits",
    },
    "deep_ensembles": {
        "label": "Deep Ens.",
        "source": "Lakshminarayanan, Pritzel & Blundell (2017), Table 1",
        "splits": "same splits",
    },
    "dvi": {
        "label": "DVI",
        "source": "Wu et al., Deterministic Variational Inference (ICLR 2019), Table 2; no RMSE",
        "splits": "standard protocol; splits not checked",
    },
    "der": {
        "label": "Evidential",
        "source": (
            "Amini et al., Deep Evidential Regression (NeurIPS 2020), as tabulated in "
            "WGBoost's Table 1"
        ),
        "splits": "standard protocol; splits not checked",
    },
    "ngboost": {
        "label": "NGBoost",
        "source": "Duan et al., NGBoost (ICML 2020), as tabulated in WGBoost's Table 1",
        "splits": "own random 90/10 splits",
    },
    "wgboost": {
        "label": "WGBoost",
        "source": (
            "Matsubara et al., Wasserstein Gradient Boosting (arXiv:2405.09536), Table 1; "
            "± std. dev."
        ),
        "splits": "own random 90/10 splits",
    },
}

#: Published test scores by folder name and method: ``ll`` (test log-likelihood, higher is
#: better) and ``rmse``, each ``(value, ±)`` in the target's original units. NLLs in the sources
#: are sign-flipped. A missing entry was not published (or not verified by us).
PUBLISHED: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "bostonHousing": {
        "mc_dropout": {"ll": (-2.40, 0.04), "rmse": (2.90, 0.18)},
        "deep_ensembles": {"ll": (-2.41, 0.25), "rmse": (3.28, 1.00)},
        "dvi": {"ll": (-2.41, 0.02)},
        "der": {"ll": (-2.35, 0.06), "rmse": (3.06, 0.16)},
        "ngboost": {"ll": (-2.43, 0.15), "rmse": (2.94, 0.53)},
        "wgboost": {"ll": (-2.47, 0.16), "rmse": (2.78, 0.60)},
    },
    "concrete": {
        "mc_dropout": {"ll": (-2.93, 0.02), "rmse": (4.82, 0.16)},
        "deep_ensembles": {"ll": (-3.06, 0.18), "rmse": (6.03, 0.58)},
        "dvi": {"ll": (-3.06, 0.01)},
        "der": {"ll": (-3.01, 0.02), "rmse": (5.85, 0.15)},
        "ngboost": {"ll": (-3.04, 0.17), "rmse": (5.06, 0.61)},
        "wgboost": {"ll": (-2.83, 0.11), "rmse": (4.15, 0.52)},
    },
    "energy": {
        "mc_dropout": {"ll": (-1.21, 0.01), "rmse": (0.54, 0.06)},
        "deep_ensembles": {"ll": (-1.38, 0.22), "rmse": (2.09, 0.29)},
        "dvi": {"ll": (-1.01, 0.06)},
        "der": {"ll": (-1.39, 0.06), "rmse": (2.06, 0.10)},
        "ngboost": {"ll": (-0.60, 0.45), "rmse": (0.46, 0.06)},
        "wgboost": {"ll": (-0.53, 0.08), "rmse": (0.42, 0.07)},
    },
    "naval-propulsion-plant": {
        "mc_dropout": {"ll": (4.45, 0.00), "rmse": (0.00, 0.00)},
        "deep_ensembles": {"ll": (5.63, 0.05), "rmse": (0.00, 0.00)},
        "dvi": {"ll": (6.29, 0.04)},
        "der": {"ll": (5.73, 0.07), "rmse": (0.00, 0.00)},
        "ngboost": {"ll": (5.34, 0.04), "rmse": (0.00, 0.00)},
        "wgboost": {"ll": (5.47, 0.03), "rmse": (0.00, 0.00)},
    },
    "protein-tertiary-structure": {
        "mc_dropout": {"ll": (-2.87, 0.00), "rmse": (4.27, 0.02)},
        "deep_ensembles": {"ll": (-2.83, 0.02), "rmse": (4.71, 0.06)},
        "dvi": {"ll": (-2.85, 0.01)},
        "der": {"ll": (-2.63, 0.00), "rmse": (4.64, 0.03)},
        "ngboost": {"ll": (-2.81, 0.03), "rmse": (4.33, 0.03)},
        "wgboost": {"ll": (-2.70, 0.01), "rmse": (4.09, 0.02)},
    },
    "wine-quality-red": {
        "mc_dropout": {"ll": (-0.93, 0.01), "rmse": (0.62, 0.01)},
        "deep_ensembles": {"ll": (-0.94, 0.12), "rmse": (0.64, 0.04)},
        "dvi": {"ll": (-0.90, 0.01)},
        "der": {"ll": (-0.89, 0.05), "rmse": (0.61, 0.02)},
        "ngboost": {"ll": (-0.91, 0.06), "rmse": (0.63, 0.04)},
        "wgboost": {"ll": (-0.95, 0.08), "rmse": (0.61, 0.05)},
    },
    "yacht": {
        "mc_dropout": {"ll": (-1.25, 0.01), "rmse": (0.67, 0.05)},
        "deep_ensembles": {"ll": (-1.18, 0.21), "rmse": (1.58, 0.48)},
        "dvi": {"ll": (-0.47, 0.03)},
        "der": {"ll": (-1.03, 0.19), "rmse": (1.57, 0.56)},
        "ngboost": {"ll": (-0.20, 0.26), "rmse": (0.50, 0.20)},
        "wgboost": {"ll": (-0.16, 0.24), "rmse": (0.48, 0.18)},
    },
}


def _read(path: Path, dtype=float) -> np.ndarray:
    if not path.is_file():
        raise UsageError(f"UCI folder '{path.parent}' has no {path.name}")
    try:
        values = np.loadtxt(path, dtype=dtype, ndmin=1)
    except ValueError as error:
        raise UsageError(f"cannot read '{path}': {error}") from None
    if values.size == 0:
        raise UsageError(f"'{path}' is empty")
    return values


#: What every split-format folder holds besides its per-split index files.
REQUIRED_FILES = ("data.txt", "index_features.txt", "index_target.txt")


class UCI(Dataset):
    """UCI regression benchmark folder (standard splits): test NLL and RMSE, original units."""

    name = "uci"
    params = (
        Param(
            "path",
            "str",
            None,
            "folder with data.txt, index_features.txt, index_target.txt and "
            "index_train_K/index_test_K.txt (n_splits.txt optional)",
            required=True,
        ),
        Param("split", "int", 0, "which of the published train/test splits", minimum=0),
        Param(
            "val_fraction",
            "float",
            0.1,
            "share of the training rows held out for early stopping",
            minimum=0.01,
            maximum=0.5,
        ),
    )

    @property
    def folder(self) -> Path:
        folder = Path(self.options["path"])
        if not folder.is_dir():
            raise UsageError(f"UCI folder '{folder}' does not exist")
        missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
        if missing:
            raise UsageError(
                f"UCI folder '{folder}' has no {', '.join(missing)} (the standard split format: "
                "data.txt, index_features.txt, index_target.txt, index_train_K.txt and "
                "index_test_K.txt)"
            )
        return folder

    def n_splits(self) -> int:
        """How many splits the folder has (``n_splits.txt``, else the ``index_train_K`` files)."""
        counted = self.folder / "n_splits.txt"
        if counted.is_file():
            return int(_read(counted, int)[0])
        return len(list(self.folder.glob("index_train_*.txt")))

    @classmethod
    def contract_specs(cls, folder: Path) -> tuple[str, ...]:
        """A tiny folder in the standard split format: 60 rows, 3 inputs, 2 splits."""
        rng = np.random.default_rng(0)
        table = rng.normal(size=(60, 4))
        np.savetxt(folder / "data.txt", table)
        np.savetxt(folder / "index_features.txt", [0, 1, 2], fmt="%d")
        np.savetxt(folder / "index_target.txt", [3], fmt="%d")
        np.savetxt(folder / "n_splits.txt", [2], fmt="%d")
        for split in range(2):
            order = np.random.default_rng(split).permutation(60)
            np.savetxt(folder / f"index_train_{split}.txt", order[:48], fmt="%d")
            np.savetxt(folder / f"index_test_{split}.txt", order[48:], fmt="%d")
        return (f"uci:path={folder},split=1",)

    def load(self, seed: int) -> Data:
        folder, split = self.folder, self.options["split"]
        if split >= self.n_splits():
            raise UsageError(
                f"UCI folder '{folder}' has {self.n_splits()} splits (0 to {self.n_splits() - 1}); "
                f"split={split} does not exist"
            )
        table = _read(folder / "data.txt")
        table = table.reshape(len(table), -1)
        if not np.all(np.isfinite(table)):
            raise UsageError(f"'{folder / 'data.txt'}' contains NaN or infinite values")
        features = _read(folder / "index_features.txt", int)
        target = _read(folder / "index_target.txt", int)
        train = _read(folder / f"index_train_{split}.txt", int)
        test = _read(folder / f"index_test_{split}.txt", int)
        for name, index, limit in (
            ("index_features", features, table.shape[1]),
            ("index_target", target, table.shape[1]),
            (f"index_train_{split}", train, len(table)),
            (f"index_test_{split}", test, len(table)),
        ):
            if index.min() < 0 or index.max() >= limit:
                raise UsageError(f"'{folder / (name + '.txt')}' points outside data.txt ({limit})")
        x, y = table[:, features], table[:, target].reshape(len(table), -1)
        fit, val = split_rows(len(train), np.random.default_rng(seed), self.options["val_fraction"])
        fit, val = train[fit], train[val]
        names = tuple(f"x{j}" for j in features)
        return Data(
            x[fit],
            y[fit],
            x[val],
            y[val],
            x[test],
            y[test],
            names,
            ("y",),
            notes=f"UCI {folder.name}, split {split}",
        )

    def reference(self) -> list[dict] | None:
        """Published results for this folder, for the compare report, or ``None``."""
        published = PUBLISHED.get(Path(self.options["path"]).name)
        if published is None:
            return None
        rows = []
        for method, scores in published.items():
            about = REFERENCES[method]
            ll, ll_error = scores.get("ll", (None, None))
            rmse, rmse_error = scores.get("rmse", (None, None))
            rows.append(
                {
                    "method": f"{about['label']}: {about['source']} ({about['splits']})",
                    "nll": None if ll is None else -ll,
                    "nll_se": ll_error,
                    "rmse": rmse,
                    "rmse_se": rmse_error,
                }
            )
        return rows


@hookimpl
def register_datasets(register):
    register(UCI)
