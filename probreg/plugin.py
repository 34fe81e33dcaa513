"""The base every dataset, head and sampler plugin shares: a name, declared parameters, options."""

from __future__ import annotations

from typing import Any, ClassVar

from probreg.params import Param, format_spec, resolve_options


class Plugin:
    """A named, configurable piece. Subclasses set ``name``, ``params`` and a docstring.

    The first docstring line is the summary ``probreg list`` shows. Instances hold checked
    option values in ``self.options`` (every declared parameter, defaults filled in).
    """

    kind: ClassVar[str] = "plugin"
    name: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, **options: Any) -> None:
        self.options: dict[str, Any] = resolve_options(
            self.params, options, f"{self.kind} '{self.name}'"
        )

    @property
    def spec(self) -> str:
        """The spec string that rebuilds this instance, e.g. ``mdn:components=5``."""
        return format_spec(self.name, self.params, self.options)

    @classmethod
    def summary(cls) -> str:
        """One line saying what the plugin is."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def __repr__(self) -> str:
        return f"<{self.kind} {self.spec}>"
