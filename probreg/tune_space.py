"""The search space of :func:`probreg.tuning.tune`: derived from a head's declared parameters
(:class:`probreg.params.Param`) and narrowed by the ``--space`` syntax."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from probreg import plugins
from probreg.errors import UsageError
from probreg.params import LIST_SEPARATOR, Param, parse_spec

if TYPE_CHECKING:  # pragma: no cover - optuna is imported when a search starts
    import optuna

#: Parameters that set a training budget rather than a model; searched only if ``space`` names
#: them.
BUDGET = ("epochs", "patience", "members")
#: Floats that default to 0 but are searched on a log scale: this range.
ZERO_DEFAULT_LOG_RANGE = {"weight_decay": (1e-5, 1.0)}
#: How far the default search range reaches from a numeric default, down and up.
INT_REACH = (8, 4)
FLOAT_REACH = (10, 10)
SPACE_USAGE = "expected name=LOW..HIGH[:log], name=A|B|C or name=VALUE, joined with commas"


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One searched parameter: a numeric range (``int``/``float``, maybe log) or choices.

    Choices are spec strings (``64+64``, ``relu``), passed to the head as a spec would be.
    """

    name: str
    kind: str  # "int", "float" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[str, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        return value is not None and self.low <= value <= self.high

    def describe(self) -> str:
        """The dimension in ``--space`` syntax, e.g. ``2..30``, ``1e-04..0.01:log``, ``a|b``."""
        if self.kind == "choice":
            return "|".join(self.choices)
        low, high = (f"{v:g}" for v in (self.low, self.high))
        return f"{low}..{high}" + (":log" if self.log else "")


@dataclasses.dataclass
class Space:
    """What a search varies (``dimensions``) and what it holds fixed (``fixed``: option values)."""

    dimensions: dict[str, Dimension]
    fixed: dict[str, Any]

    def describe(self) -> str:
        return ",".join(f"{n}={d.describe()}" for n, d in self.dimensions.items())


def default_dimension(param: Param) -> Dimension | None:
    """The default search range of one declared parameter, or ``None`` to leave it alone.

    Numbers: from the default divided by :data:`INT_REACH`/:data:`FLOAT_REACH` to the default
    times it, within the declared bounds; floats (and ints spanning 10x or more) on a log
    scale. Choices and booleans: every value. Integer lists (layer sizes): depths 1 to the
    default's, widths a quarter, half and all of the default's widest layer.
    """
    default = param.default
    if param.required or param.name in BUDGET:
        return None
    if param.choices:
        return Dimension(param.name, "choice", choices=tuple(param.choices))
    if param.type == "bool":
        return Dimension(param.name, "choice", choices=("true", "false"))
    if param.type == "int" and isinstance(default, int) and default > 0:
        low = max(1, math.ceil(default / INT_REACH[0]), _bound(param.minimum, 1))
        high = default * INT_REACH[1]
        if param.maximum is not None:
            high = min(high, int(param.maximum))
        if low >= high:
            return None
        return Dimension(param.name, "int", low, high, log=high >= 10 * low)
    if param.type == "float":
        if not default:
            if param.name not in ZERO_DEFAULT_LOG_RANGE:
                return None
            low, high = ZERO_DEFAULT_LOG_RANGE[param.name]
        else:
            if default < 0:
                return None
            low, high = default / FLOAT_REACH[0], default * FLOAT_REACH[1]
        if param.minimum is not None:
            low = max(low, param.minimum)
        if param.maximum is not None:
            high = min(high, param.maximum)
        if not 0 < low < high:
            return None
        return Dimension(param.name, "float", low, high, log=True)
    if param.type == "ints" and default:
        widest, depth = max(default), len(default)
        widths = sorted({max(1, widest // 4), max(1, widest // 2), widest})
        widths = [w for w in widths if w >= _bound(param.minimum, 1)]
        choices = [
            LIST_SEPARATOR.join([str(width)] * layers)
            for layers in range(1, depth + 1)
            for width in widths
        ]
        return Dimension(param.name, "choice", choices=tuple(choices)) if choices else None
    return None


def _bound(value: float | None, fallback: int) -> int:
    return fallback if value is None else math.ceil(value)


def parse_space(text: str | None, params: Sequence[Param], owner: str) -> dict[str, Any]:
    """Parse ``--space``: each item is a :class:`Dimension` (range or choices) or a fixed value.

    ``components=2..30,learning_rate=1e-4..1e-2:log,hidden=64+64|256+256+256,scale=exp``.
    Every value is checked against the parameter's declaration; bad syntax, unknown names and
    empty ranges are one-line :class:`UsageError` s.
    """
    if text is None:
        return {}
    declared = {p.name: p for p in params}
    if not text.strip():
        raise UsageError(f"--space is empty; {SPACE_USAGE}")
    entries: dict[str, Any] = {}
    for raw_item in text.split(","):
        item = raw_item.strip()
        name, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not name or not value:
            raise UsageError(f"malformed --space item '{item}': {SPACE_USAGE}")
        if name not in declared:
            raise UsageError(
                f"unknown parameter '{name}' in --space for {owner}; allowed parameters: "
                + ", ".join(declared)
            )
        if name in entries:
            raise UsageError(f"--space gives '{name}' twice")
        entries[name] = _parse_entry(declared[name], value, owner)
    return entries


def _parse_entry(param: Param, value: str, owner: str) -> Any:
    where = f"--space {param.name}={value}"
    log = value.endswith(":log")
    if log:
        value = value[: -len(":log")].strip()
    if ".." in value:
        if param.type not in ("int", "float") or param.choices:
            raise UsageError(
                f"{where}: a LOW..HIGH range needs a number parameter; '{param.name}' is "
                f"{param.describe_type()}, so list choices with |"
            )
        if ":" in value.partition("..")[2]:  # e.g. 1e-3..1e-2:lin
            raise UsageError(f"{where}: a range takes only the suffix ':log' (LOW..HIGH[:log])")
        low_text, _, high_text = value.partition("..")
        if not low_text.strip() or not high_text.strip():
            raise UsageError(f"{where}: a range needs both ends, LOW..HIGH")
        low, high = param.parse(low_text, owner), param.parse(high_text, owner)
        if low > high:
            raise UsageError(
                f"{where}: empty range, the low end {low:g} is above the high end {high:g}"
            )
        if log and low <= 0:
            raise UsageError(f"{where}: a :log range must be above 0")
        if low == high:
            return low
        return Dimension(param.name, param.type, low, high, log=log)
    if log:
        raise UsageError(f"{where}: ':log' only applies to a LOW..HIGH range")
    if "|" in value:
        parts = [part.strip() for part in value.split("|")]
        if any(not part for part in parts):
            raise UsageError(f"{where}: empty choice; list choices as A|B|C")
        choices = [param.format(param.parse(part, owner)) for part in parts]
        if len(set(choices)) != len(choices):
            raise UsageError(f"{where}: a choice is listed twice")
        return Dimension(param.name, "choice", choices=tuple(choices))
    return param.parse(value, owner)


def build_space(head: str, space: str | None, epochs: int | None = None) -> Space:
    """The search space for a head spec: defaults from its declared parameters, minus the
    options the spec sets (those stay fixed), overridden by ``space`` (which may also search or
    change an option the spec sets: the spec's value is then the baseline).

    The parameters are the head instance's, so a head spec that picks a family
    (``mdn:family=student_t``) searches that family's parameters, around its defaults."""
    base = plugins.create("head", head)
    params = base.params
    given = set(parse_spec(head, "head")[1]) if isinstance(head, str) else set()
    if epochs is not None:
        given.add("epochs")
    entries = parse_space(space, params, f"head '{base.name}'")
    if epochs is not None and "epochs" in entries:
        raise UsageError(
            "--epochs (epochs=) and --space epochs=... both set the epochs; give one of them"
        )
    if "family" in entries:
        raise UsageError(
            "--space cannot set 'family': each family has its own parameters; choose it in "
            f"--head (e.g. --head {base.name}:family=student_t) and tune each family in its "
            "own run"
        )
    dimensions: dict[str, Dimension] = {}
    fixed: dict[str, Any] = {}
    for param in params:
        entry = entries.get(param.name)
        if isinstance(entry, Dimension):
            dimensions[param.name] = entry
        elif param.name in entries:
            fixed[param.name] = entry
        elif param.name not in given:
            found = default_dimension(param)
            if found is not None:
                dimensions[param.name] = found
    if not dimensions:
        raise UsageError(
            f"nothing to search: every parameter of head '{base.name}' is fixed; "
            "name a range in --space"
        )
    return Space(dimensions, fixed)
