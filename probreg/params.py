"""Declared plugin parameters and the one spec syntax every plugin kind shares.

A spec names a plugin and sets some of its parameters: ``NAME`` or ``NAME:key=value,key=value``.
List values join their items with ``+`` (``hidden=256+256``, ``x=col_a+col_b``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from probreg.errors import UsageError, shorten

LIST_SEPARATOR = "+"
TYPES = ("int", "float", "str", "bool", "ints", "strs")
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter a plugin accepts: its name, type, default and a line of help.

    ``type`` is one of ``int``, ``float``, ``str``, ``bool``, ``ints`` (a ``+``-separated list of
    integers) and ``strs`` (a ``+``-separated list of strings). ``minimum``/``maximum`` bound
    numbers (and every item of ``ints``); ``choices`` limits strings. ``default=None`` means
    "not set"; ``required=True`` means the user must give it.
    """

    name: str
    type: str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    required: bool = False

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"Param {self.name!r}: type must be one of {TYPES}, not {self.type!r}")

    def describe_type(self) -> str:
        """The type as shown in ``probreg list``, e.g. ``int >= 1`` or ``one of a|b``."""
        text = {"ints": "int+int+...", "strs": "str+str+..."}.get(self.type, self.type)
        if self.choices:
            text = "one of " + "|".join(self.choices)
        if self.minimum is not None:
            text += f" >= {self.minimum:g}"
        if self.maximum is not None:
            text += f" <= {self.maximum:g}"
        return text

    def format(self, value: Any) -> str:
        """Write ``value`` back in spec syntax (the inverse of :meth:`parse`)."""
        if value is None:
            return ""
        if self.type in ("ints", "strs"):
            return LIST_SEPARATOR.join(str(v) for v in value)
        if self.type == "bool":
            return "true" if value else "false"
        if self.type == "float":
            return float_text(value)
        return str(value)

    def parse(self, raw: Any, owner: str) -> Any:
        """Turn a spec string (or a Python value from the API) into a checked value."""
        where = f"{owner} parameter '{self.name}'"
        value = self._coerce(raw, where)
        self._check(value, where)
        return value

    def _coerce(self, raw: Any, where: str) -> Any:
        text = raw.strip() if isinstance(raw, str) else None
        if self.type == "int":
            if isinstance(raw, bool) or not isinstance(raw, int | str):
                if isinstance(raw, float) and raw.is_integer():
                    return int(raw)
                raise UsageError(f"invalid {where}: {raw!r} is not an integer")
            if text is not None and not INTEGER_TEXT.fullmatch(text):
                raise UsageError(f"invalid {where}: '{raw}' is not an integer")
            return int(text) if text is not None else raw
        if self.type == "float":
            if isinstance(raw, bool):
                raise UsageError(f"invalid {where}: {raw!r} is not a number")
            try:
                value = float(text if text is not None else raw)
            except (TypeError, ValueError):
                raise UsageError(f"invalid {where}: '{raw}' is not a number") from None
            if not math.isfinite(value):
                raise UsageError(f"invalid {where}: '{raw}' is not a finite number")
            return value
        if self.type == "bool":
            if isinstance(raw, bool):
                return raw
            if text is not None and text.lower() in _TRUE | _FALSE:
                return text.lower() in _TRUE
            raise UsageError(f"invalid {where}: '{raw}' is not true or false")
        if self.type == "str":
            if text is None:
                raise UsageError(f"invalid {where}: {raw!r} is not a string")
            if not text:
                raise UsageError(f"invalid {where}: the value is empty")
            return text
        # Lists: a "+"-joined string from a spec, or any iterable from Python.
        items = text.split(LIST_SEPARATOR) if text is not None else list(raw)
        if not items or any(isinstance(i, str) and not i.strip() for i in items):
            raise UsageError(
                f"invalid {where}: '{raw}' is not a list of items joined with '{LIST_SEPARATOR}'"
            )
        item = Param(self.name, self.type[:-1], None, "", self.minimum, self.maximum, self.choices)
        return tuple(item._coerce(i, where) for i in items)

    def _check(self, value: Any, where: str) -> None:
        for item in value if isinstance(value, tuple) else (value,):
            if self.minimum is not None and item < self.minimum:
                raise UsageError(f"invalid {where}: {item} is below the minimum {self.minimum:g}")
            if self.maximum is not None and item > self.maximum:
                raise UsageError(f"invalid {where}: {item} is above the maximum {self.maximum:g}")
            if self.type.startswith("int") and self.maximum is None and abs(item) > MAX_INT:
                low = -MAX_INT if self.minimum is None else self.minimum
                raise UsageError(f"invalid {where}: {item} is outside {int(low)} to {MAX_INT}")
            if self.choices is not None and item not in self.choices:
                raise UsageError(
                    f"invalid {where}: '{item}' is not allowed; allowed: {', '.join(self.choices)}"
                )


def float_text(value: float) -> str:
    """The shortest text that reads back as the same float (no digit lost), with whole numbers
    as integers: ``3``, ``0.0123456789``, ``1e-05``. A spec or table that rounded a tuned value
    would describe another model."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


#: The largest integer parameter without a declared maximum: sizes and counts past it only
#: fail deep inside numpy or TensorFlow.
MAX_INT = 2**31 - 1

#: An integer as people type one: Python's ``int()`` also takes ``1_0`` and other scripts' digits.
INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")


def parse_spec(spec: str, kind: str = "plugin") -> tuple[str, dict[str, str]]:
    """Split ``NAME:key=value,...`` into the name and raw option strings.

    Only the syntax is checked here; names and values are checked against the plugin's
    declared parameters by :func:`resolve_options`.
    """
    usage = "expected NAME or NAME:key=value[,key=value...]"
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError(f"malformed {kind} spec {spec!r}: {usage}")
    name, sep, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise UsageError(f"malformed {kind} spec '{spec}': the name is missing; {usage}")
    options: dict[str, str] = {}
    if sep:
        if not rest.strip():
            raise UsageError(f"malformed {kind} spec '{spec}': nothing after ':'; {usage}")
        for item in _split_options(rest, spec, kind):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key:
                raise UsageError(
                    f"malformed option '{item.strip()}' in {kind} spec '{spec}': expected "
                    'key=value (quote a value that holds a comma: path="a,b.csv")'
                )
            if key in options:
                raise UsageError(f"malformed {kind} spec '{spec}': '{key}' is given twice")
            options[key] = _unquote(value, spec, kind)
    return name, options


_QUOTES = "\"'"


def _split_options(rest: str, spec: str, kind: str) -> list[str]:
    """Split ``key=value,...`` at commas outside a quoted value (``path="a,b.csv"``)."""
    items, current, quote, in_value = [], "", None, False  # in_value: a non-blank value began
    for char in rest:
        if quote is None and char == ",":
            items.append(current)
            current, in_value = "", False
            continue
        if quote is None and char in _QUOTES and "=" in current and not in_value:
            quote = char  # the value starts with a quote: commas are its own until it closes
        elif char == quote:
            quote = None
        if "=" in current and not char.isspace():
            in_value = True
        current += char
    if quote is not None:
        raise UsageError(f"malformed {kind} spec '{spec}': a value's {quote} quote is not closed")
    return [*items, current]


def _unquote(value: str, spec: str, kind: str) -> str:
    """A quoted value without its quotes; anything after the closing quote is an error."""
    text = value.strip()
    if not text or text[0] not in _QUOTES:
        return value
    end = text.find(text[0], 1)
    if end != len(text) - 1:
        raise UsageError(
            f"malformed {kind} spec '{spec}': text after the closing quote in {value.strip()}; "
            "quote the whole value"
        )
    return text[1:-1]


def quote_value(text: str) -> str:
    """``text`` as a spec value: quoted when it holds a comma or starts with a quote (after
    any spaces), in the quote it does not hold; there is no escape for holding both."""
    if "," not in text and text.strip()[:1] not in _QUOTES:
        return text
    quote = next((q for q in _QUOTES if q not in text), None)
    if quote is None:
        raise UsageError(
            f"the value {shorten(text, 60)} cannot be written in a spec: it needs quotes (a "
            "comma, or a quote first) but holds both kinds"
        )
    return f"{quote}{text}{quote}"


def resolve_options(
    params: Iterable[Param], given: Mapping[str, Any], owner: str
) -> dict[str, Any]:
    """Check ``given`` against ``params``; return every parameter's value, defaults filled in."""
    declared = {p.name: p for p in params}
    unknown = [k for k in given if k not in declared]
    if unknown:
        allowed = ", ".join(declared) or "none"
        raise UsageError(
            f"unknown parameter '{unknown[0]}' for {owner}; allowed parameters: {allowed}"
        )
    values: dict[str, Any] = {}
    for name, param in declared.items():
        if name in given:
            values[name] = param.parse(given[name], owner)
        elif param.required:
            raise UsageError(f"{owner} needs parameter '{name}': {param.help}")
        else:
            values[name] = param.default
    return values


def format_spec(name: str, params: Iterable[Param], options: Mapping[str, Any]) -> str:
    """The shortest spec that rebuilds ``options``: only values that differ from the defaults."""
    parts = [
        f"{p.name}={quote_value(p.format(options[p.name]))}"
        for p in params
        if p.name in options and options[p.name] != p.default
    ]
    return f"{name}:{','.join(parts)}" if parts else name


def is_integer(value: object) -> bool:
    """Whether ``value`` is an integer (numpy's too), and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_flat_list(value: object) -> bool:
    """Whether ``value`` is a list-like of items (a sequence or a 1-D array), not a string,
    a number or an array of another rank; for one-line errors about list arguments."""
    rank = getattr(value, "ndim", None)  # a numpy array (numpy is not imported here)
    if rank is not None:
        return rank == 1
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)
