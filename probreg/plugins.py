"""The plugin manager: loads built-in and installed plugins and keeps the registry of names.

Built-ins (:data:`DEFAULT_PLUGINS`) and third-party packages (entry-point group ``probreg``) go
through the same :func:`register_plugin` path. ``PROBREG_LOAD_PLUGINS`` is an allow-list of
distribution names (comma-separated); set but empty, it loads no third-party plugin.
A package that fails to import, or whose hook raises, gets a one-line warning; everything else
keeps working and only a request for what it would have provided fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import re
import sys
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import pluggy

from probreg import hookspecs, interrupts
from probreg.errors import PluginError, UsageError, shorten
from probreg.params import parse_spec

ENTRY_POINT_GROUP = "probreg"
ALLOW_LIST_ENV = "PROBREG_LOAD_PLUGINS"
KINDS = ("dataset", "head", "sampler", "family")
_HOOKS = {
    "dataset": "register_datasets",
    "head": "register_heads",
    "sampler": "register_samplers",
    "family": "register_families",
}
_BASES = {
    "dataset": ("probreg.datasets", "Dataset"),
    "head": ("probreg.heads", "Head"),
    "sampler": ("probreg.samplers", "Sampler"),
    "family": ("probreg.families.base", "Family"),
}

DEFAULT_PLUGINS = (
    "probreg.default_plugins.spiral",
    "probreg.default_plugins.bishop",
    "probreg.default_plugins.robot_arm",
    "probreg.default_plugins.heavy_sine",
    "probreg.default_plugins.mcycle",
    "probreg.default_plugins.faithful",
    "probreg.default_plugins.counts",
    "probreg.default_plugins.csv_file",
    "probreg.default_plugins.uci",
    "probreg.default_plugins.mlp",
    "probreg.default_plugins.mdn",
    "probreg.default_plugins.ancestral",
    "probreg.default_plugins.mean",
    "probreg.default_plugins.mode",
    "probreg.default_plugins.families",
)


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a plugin came from: a distribution (package) name and version, or a built-in module."""

    name: str
    version: str
    builtin: bool = False


@dataclasses.dataclass(frozen=True)
class Entry:
    """One registered plugin: a dataset, head, sampler or family."""

    kind: str
    name: str
    cls: type
    source: Source


pm = pluggy.PluginManager("probreg")
pm.add_hookspecs(hookspecs)

_sources: dict[str, Source] = {}  # plugin name in pm -> where it came from
_broken: dict[str, str] = {}  # distribution or plugin name -> one-line reason
#: Installed plugin packages that ``PROBREG_LOAD_PLUGINS`` leaves out: name -> version.
left_out: dict[str, str] = {}
#: Installed packages that failed to import: name -> version.
broken_versions: dict[str, str] = {}
_loaded = False
_registry: dict[str, dict[str, Entry]] | None = None


def __getattr__(name: str) -> Any:
    """``plugins.user_signal_received``, the flag earlier versions' CLI set on a stop signal,
    now read from :mod:`probreg.interrupts` (which counts them) for code that still reads it."""
    if name == "user_signal_received":
        return bool(interrupts.received)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _reraise_user_signal(error: BaseException) -> None:
    # After the CLI's Ctrl-C, SIGTERM or SIGHUP a KeyboardInterrupt is the user's stop, not a
    # plugin's misbehaviour.
    if isinstance(error, KeyboardInterrupt) and interrupts.received:
        raise error


def _warn(source: str, error: BaseException | str) -> None:
    if isinstance(error, SystemExit):
        reason = f"it called sys.exit({shorten(error.code, 40)})"
    elif isinstance(error, str):
        reason = error
    else:
        reason = f"{type(error).__name__}: {error}"
    reason = shorten(reason, 200)
    source = shorten(source, 80)
    if _broken.get(source) != reason:
        _broken[source] = reason
        sys.stderr.write(f"Warning: plugin '{source}' is broken and was skipped: {reason}\n")


def register_plugin(plugin: Any, name: str, source: Source) -> None:
    """Register a module (or object) with hook implementations; used for built-ins and packages."""
    global _registry
    pm.register(plugin, name=name)
    try:
        pm.check_pending()  # a misspelt hook name fails here, not silently
    except pluggy.PluginValidationError:
        pm.unregister(name=name)
        raise
    _sources[name] = source
    _registry = None


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered under ``name`` (tests use it to undo temporary plugins)."""
    global _registry
    pm.unregister(name=name)
    _sources.pop(name, None)
    _broken.pop(name, None)
    _registry = None


def plural(kind: str) -> str:
    """``datasets``, ``heads``, ``samplers``, ``families``."""
    return "families" if kind == "family" else f"{kind}s"


def _allowed_distributions() -> set[str] | None:
    raw = os.environ.get(ALLOW_LIST_ENV)
    if raw is None:
        return None
    return {_normalise(n) for n in raw.split(",") if n.strip()}


def _normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): ``Probreg_X.y`` is ``probreg-x-y``."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def load_plugins() -> None:
    """Register the built-ins and the allowed installed packages, once per process."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    version = _probreg_version()
    for module_name in DEFAULT_PLUGINS:
        register_plugin(
            importlib.import_module(module_name), module_name, Source(module_name, version, True)
        )
    allowed = _allowed_distributions()
    seen: set[str] = set()
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        dist_name = dist.metadata["Name"] if dist is not None else entry_point.value
        seen.add(_normalise(dist_name))
        if allowed is not None and _normalise(dist_name) not in allowed:
            left_out[dist_name] = dist.version if dist is not None else "unknown"
            continue
        try:
            module = entry_point.load()
            register_plugin(
                module,
                f"{dist_name}:{entry_point.name}",
                Source(dist_name, dist.version if dist is not None else "unknown"),
            )
        except BaseException as error:
            # plugin's import may take probreg down or turn a command into a silent success
            _reraise_user_signal(error)
            _warn(dist_name, error)
            broken_versions[dist_name] = dist.version if dist is not None else "unknown"
    for missing in sorted((allowed or set()) - seen):
        _warn(missing, f"{ALLOW_LIST_ENV} names it, but no such plugin package is installed")


def _probreg_version() -> str:
    from probreg import __version__

    return __version__


def _collect(impl: Any, kind: str, base: type) -> list[Entry]:
    """Call one plugin's registration hook and return what it registered."""
    source = _sources.get(impl.plugin_name, Source(impl.plugin_name, "unknown"))
    found: list[Entry] = []

    def register(cls: type) -> None:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise TypeError(f"register() wants a {base.__name__} subclass, got {cls!r}")
        if not cls.name:
            raise TypeError(f"{cls.__name__} has no name")
        found.append(Entry(kind, cls.name, cls, source))

    impl.function(register=register)
    return found


def _build_registry() -> dict[str, dict[str, Entry]]:
    registry: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
    for kind in KINDS:
        module_name, base_name = _BASES[kind]
        base = getattr(importlib.import_module(module_name), base_name)
        for impl in getattr(pm.hook, _HOOKS[kind]).get_hookimpls():
            try:
                found = _collect(impl, kind, base)
            except BaseException as error:
                _reraise_user_signal(error)
                _warn(_sources.get(impl.plugin_name, Source(impl.plugin_name, "")).name, error)
                continue
            for entry in found:
                other = registry[kind].get(entry.name)
                if other is not None:
                    added = [e.source.name for e in (other, entry) if not e.source.builtin]
                    remedy = (  # built-ins always load: only a package can be left out
                        f"uninstall '{added[0]}' or leave it out of {ALLOW_LIST_ENV}"
                        if len(added) == 1
                        else f"uninstall one or leave it out of {ALLOW_LIST_ENV}"
                    )
                    raise PluginError(
                        f"{kind} '{entry.name}' is registered by two plugins: "
                        f"'{other.source.name}' and '{entry.source.name}'; {remedy}"
                    )
                registry[kind][entry.name] = entry
    return registry


def registry() -> dict[str, dict[str, Entry]]:
    """Every registered plugin by kind and name, loading plugins first if needed."""
    global _registry
    load_plugins()
    if _registry is None:
        _registry = _build_registry()
    return _registry


def installed(include_builtins: bool = False) -> list[dict[str, Any]]:
    """Plugin packages with their version and what each registers (for ``probreg plugins``).

    A package that failed to load has an ``error``; one that ``PROBREG_LOAD_PLUGINS`` leaves out
    has ``left_out`` and registers nothing."""
    found: dict[str, dict[str, Any]] = {}

    def package(name: str, version: str = "") -> dict[str, Any]:
        empty = {"heads": [], "datasets": [], "samplers": [], "families": []}
        return found.setdefault(name, {"name": name, "version": version, **empty})

    for kind, entries in registry().items():
        for entry in entries.values():
            if include_builtins or not entry.source.builtin:
                package(entry.source.name, entry.source.version)[plural(kind)].append(entry.name)
    for name, reason in _broken.items():
        package(name, broken_versions.get(name, ""))["error"] = reason
    for name, version in left_out.items():
        package(name, version)["left_out"] = f"not in {ALLOW_LIST_ENV}"
    return [found[name] for name in sorted(found)]


def broken_reason(package: str) -> str | None:
    """Why the installed plugin package ``package`` failed to load, or ``None`` if it did not."""
    registry()
    wanted = _normalise(package)
    return next((why for name, why in _broken.items() if _normalise(name) == wanted), None)


def get(kind: str, name: str) -> Entry:
    """The registered plugin ``name`` of ``kind``, or a one-line error listing what exists."""
    entries = registry()[kind]
    if name in entries:
        return entries[name]
    available = ", ".join(sorted(entries)) or "none"
    message = f"unknown {kind} '{name}'; available {plural(kind)}: {available}"
    if _broken:
        message += f" (broken plugin packages were skipped: {', '.join(sorted(_broken))})"
    if left_out:
        message += f" ({ALLOW_LIST_ENV} leaves out installed {left_out_names()})"
    raise UsageError(message)


def left_out_names() -> str:
    """``plugin package(s) a, b``: the installed packages ``PROBREG_LOAD_PLUGINS`` leaves out."""
    return f"plugin package{'s' if len(left_out) > 1 else ''} {', '.join(sorted(left_out))}"


def create(kind: str, spec: Any, **overrides: Any) -> Any:
    """Build a plugin instance from a spec string (``NAME:key=value,...``) or pass one through.

    ``overrides`` set options on top of the spec (the CLI's ``--epochs`` does this).
    """
    if not isinstance(spec, str):
        base = _BASES[kind]
        if isinstance(spec, getattr(importlib.import_module(base[0]), base[1])):
            if overrides:
                return type(spec)(**{**spec.options, **overrides})
            return spec
        raise UsageError(f"a {kind} must be a spec string or a plugin instance, not {spec!r}")
    name, options = parse_spec(spec, kind)
    return get(kind, name).cls(**{**options, **overrides})


def source_of(instance: Any) -> Source:
    """The package that registered this plugin instance's class."""
    for entry in registry()[instance.kind].values():
        if entry.cls is type(instance):
            return entry.source
    return Source(type(instance).__module__, "unregistered")


@contextlib.contextmanager
def temporary_plugin(plugin: Any, name: str = "temporary-plugin") -> Iterator[None]:
    """Register ``plugin`` for the duration of a ``with`` block (tests and notebooks)."""
    load_plugins()
    register_plugin(plugin, name, Source(name, "0", False))
    try:
        yield
    finally:
        unregister_plugin(name)
