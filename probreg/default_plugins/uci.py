"""Dataset ``uci``: a UCI regression benchmark folder in the standard 20-split format.

The format of Hernandez-Lobato & Adams (2015) and Gal & Ghahramani (2016): ``data.txt``
(whitespace-separated numbers), ``index_features.txt`` and ``index_target.txt`` (0-based
columns), ``index_train_K.txt`` and ``index_test_K.txt`` (0-based rows of split K) and
``n_splits.txt``. Validation rows for early stopping are carved (seeded) from the training rows
only; probreg standardises on the remaining training rows and reports test scores in the
target's original units, as the published tables do.

``probreg compare --dataset uci:path=FOLDER --splits all`` runs every split and sets the result
beside the published MC dropout and Deep Ensembles figures (:data:`PUBLISHED`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from probreg.datasets import Data, Dataset, split_rows
from probreg.errors import UsageError
from probreg.hookspecs import hookimpl
from probreg.params import Param

#: Published test scores on the same splits, by folder name. MC dropout: the grid-search re-run
#: reported with Gal & Ghahramani's code (mean and standard error of the test log-likelihood and
#: RMSE). Deep Ensembles: Lakshminarayanan, Pritzel & Blundell (2017), Table 1 (NLL, with a
#: standard deviation). As listed in the shared folder's README.
PUBLISHED = {
    "bostonHousing": {"mc_dropout": (-2.40, 0.04, 2.90, 0.18), "deep_ensembles": (2.41, 0.25)},
    "concrete": {"mc_dropout": (-2.93, 0.02, 4.82, 0.16), "deep_ensembles": (3.06, 0.18)},
    "energy": {"mc_dropout": (-1.21, 0.01, 0.54, 0.06), "deep_ensembles": (1.38, 0.22)},
    "yacht": {"mc_dropout": (-1.25, 0.01, 0.67, 0.05), "deep_ensembles": (1.18, 0.21)},
    "wine-quality-red": {"mc_dropout": (-0.93, 0.01, 0.62, 0.01), "deep_ensembles": (0.94, 0.12)},
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


class UCI(Dataset):
    """UCI regression benchmark folder (standard splits): test NLL and RMSE, original units."""

    name = "uci"
    params = (
        Param(
            "path", "str", None, "folder with data.txt, index_*.txt and n_splits.txt", required=True
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
        """Published results on these splits, for the compare report, or ``None``."""
        published = PUBLISHED.get(Path(self.options["path"]).name)
        if published is None:
            return None
        ll, ll_se, rmse, rmse_se = published["mc_dropout"]
        nll, nll_sd = published["deep_ensembles"]
        return [
            {
                "method": "MC dropout (Gal & Ghahramani, 2016)",
                "nll": -ll,
                "nll_se": ll_se,
                "rmse": rmse,
                "rmse_se": rmse_se,
            },
            {
                "method": "Deep Ensembles (Lakshminarayanan et al., 2017); ± is a std. dev.",
                "nll": nll,
                "nll_se": nll_sd,
                "rmse": None,
                "rmse_se": None,
            },
        ]


@hookimpl
def register_datasets(register):
    register(UCI)
