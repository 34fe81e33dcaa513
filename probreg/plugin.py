"""The base every plugin (dataset, head, sampler, family) shares: name, parameters, options."""

from __future__ import annotations

from pathlib import Path
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
    #: Specs that ``probreg.testing`` checks this plugin with (small and fast); empty means
    #: the bare name. The registry-wide contract test runs every one.
    test_specs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **options: Any) -> None:
        self.options: dict[str, Any] = resolve_options(
            self.params, options, f"{self.kind} '{self.name}'"
        )
        self.check_options()

    def check_options(self) -> None:
        """Check the options together (``low < high``), before any data is loaded.

        Each value is already checked on its own against its :class:`Param`. Override this to
        raise :class:`probreg.errors.UsageError` with a one-line reason; the default accepts
        everything.
        """

    @classmethod
    def contract_specs(cls, folder: Path) -> tuple[str, ...]:
        """The specs the contract checks use: :attr:`test_specs`, else the bare name.

        ``folder`` is an empty scratch folder, for plugins whose specs need files (a CSV).
        """
        return cls.test_specs or (cls.name,)

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
