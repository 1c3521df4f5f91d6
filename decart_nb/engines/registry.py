"""Engines by name: the `decart_nb.engines` entry-point group, read when a name is asked for.

A distribution registers an engine under a name with an entry point in that group. The entry names
an `EnginePlugin` (its factory and the engine_options it takes), or an Engine subclass that is
built with no arguments (no options, no key). decart_nb's own engines ("local", "decart") are
registered the same way, in its pyproject.toml.

Nothing is imported until a name is used: importing decart_nb reads no metadata and imports no
engine's module (a third party's, or Decart's SDK). A broken entry (an import error, an object of
the wrong type) fails when its own name is used, with its distribution named; the others work on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from ..checks import invalid
from ..errors import DecartNBError, ErrorCode
from ..secret_key import SecretKey
from .base import Engine

__all__ = [
    "BUILTINS",
    "GROUP",
    "EngineFactory",
    "EnginePlugin",
    "Registration",
    "build",
    "engine_names",
    "find",
    "listed",
    "registration",
    "registrations",
]

logger = logging.getLogger("decart_nb")
_warned: set[str] = set()  # registration problems already logged

GROUP = "decart_nb.engines"
OWN_DISTRIBUTION = "decart_nb"
#: decart_nb's own entries, as its pyproject.toml declares them. Used as they are when the installed
#: metadata lacks them (an editable install made before they were declared); a third party's entry
#: under one of these names is ignored (logged), so `engine="local"` always means the built-in.
BUILTINS = {
    "local": "decart_nb.engines.local:LocalEngine",
    "decart": "decart_nb.engines.decart.plugin:PLUGIN",
}

#: `make(api_key, options)`: the Session's key (None: none given) and its engine_options, only
#: names the plugin declares; values are unchecked (the factory checks them).
EngineFactory = Callable[[SecretKey | None, Mapping[str, object]], Engine]


@dataclass(frozen=True)
class EnginePlugin:
    """What an entry point in the `decart_nb.engines` group names: how to build the engine.

    `make(api_key, options)` returns a new Engine each call (a concurrent sweep makes one per
    session). `options` are the engine_options names it takes; any other name is refused before
    `make` runs, with INVALID_INPUT naming these. The key is the Session's `api_key` as a
    SecretKey (`.reveal()` it only where it is sent), or None: an engine that needs one resolves
    it further (an environment variable) or raises INVALID_API_KEY; others ignore it.
    """

    make: EngineFactory
    options: tuple[str, ...] = ()


def _no_argument_factory(engine_type: type[Engine]) -> EngineFactory:
    def make(api_key: SecretKey | None, options: Mapping[str, object]) -> Engine:
        return engine_type()

    return make


@dataclass(frozen=True)
class Registration:
    """One entry point of the group: a name, and where it comes from."""

    entry_point: EntryPoint
    #: "name version" of the distribution that declares it; None: decart_nb's own fallback.
    distribution: str | None

    @property
    def name(self) -> str:
        return self.entry_point.name

    @property
    def origin(self) -> str:
        """The entry as an error names it: the distribution and the entry point's line."""
        where = self.distribution or f"{OWN_DISTRIBUTION} (built in)"
        return f"{where}, entry point {self.name} = {self.entry_point.value!r} in group {GROUP!r}"

    def load(self) -> EnginePlugin:
        """The plugin, or ENGINE_ERROR naming this entry when it cannot be imported or is no plugin."""
        try:
            loaded: object = self.entry_point.load()
        except Exception as exc:  # any failure of a third party's import: re-raised with its name
            raise self.broken(f"could not be loaded ({type(exc).__name__}: {exc})", exc) from exc
        if isinstance(loaded, EnginePlugin):
            return loaded
        if isinstance(loaded, type) and issubclass(loaded, Engine):
            return EnginePlugin(_no_argument_factory(loaded))
        raise self.broken(
            f"names an object of type {type(loaded).__name__}, not an EnginePlugin or an Engine subclass",
            None,
        )

    def broken(self, what: str, cause: BaseException | None) -> DecartNBError:
        return DecartNBError(
            ErrorCode.ENGINE_ERROR,
            f"The engine {self.name!r} ({self.origin}) {what}: fix or uninstall that distribution",
            data={
                "engine": self.name,
                "distribution": self.distribution,
                "entry_point": self.entry_point.value,
            },
            cause=cause,
        )


def _distribution(entry_point: EntryPoint) -> tuple[str, str]:
    """The declaring distribution's normalized name, and "name version" to show."""
    dist = entry_point.dist
    if dist is None:
        return "", "an unknown distribution"
    name = dist.metadata["Name"] or dist.name
    return name.lower().replace("-", "_").replace(".", "_"), f"{name} {dist.version}"


def registrations(found: Iterable[EntryPoint] | None = None) -> dict[str, list[Registration]]:
    """Every registered name and its entries (more than one: a clash between third parties)."""
    found = entry_points(group=GROUP) if found is None else found
    named: dict[str, list[Registration]] = {
        name: [Registration(EntryPoint(name, value, GROUP), None)] for name, value in BUILTINS.items()
    }
    for entry_point in found:
        dist, shown = _distribution(entry_point)
        if dist == OWN_DISTRIBUTION:  # decart_nb's own metadata: it replaces the fallback
            named[entry_point.name] = [Registration(entry_point, shown)]
        elif entry_point.name in BUILTINS:
            _warn_once(
                f"decart_nb: {shown} registers an engine named {entry_point.name!r}, a built-in name: ignored"
            )
        else:
            named.setdefault(entry_point.name, []).append(Registration(entry_point, shown))
    return named


def _warn_once(message: str) -> None:
    """Log a registration problem once per process (the group is read at every engine by name)."""
    if message not in _warned:
        _warned.add(message)
        logger.warning("%s", message)


def engine_names(named: Mapping[str, object] | None = None) -> tuple[str, ...]:
    """The registered names: the built-ins first, then the rest in order."""
    named = registrations() if named is None else named
    return (*BUILTINS, *sorted(name for name in named if name not in BUILTINS))


def listed(names: Iterable[str]) -> str:
    """Names as a message lists them: 'local', 'decart', ..."""
    return ", ".join(repr(name) for name in names)


def find(name: str) -> EnginePlugin:
    """The plugin registered as `name`; INVALID_INPUT (listing the names) for an unknown one."""
    return registration(name).load()


def registration(name: str) -> Registration:
    """The one entry registered as `name`; INVALID_INPUT for an unknown or a doubly registered one."""
    named = registrations()
    entries = named.get(name, [])
    if not entries:
        raise invalid(
            f"Unknown engine {name!r:.60}: use a registered name ({listed(engine_names(named))}), an "
            "Engine or a function fn(frame, state)"
        )
    if len(entries) > 1:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"engine={name!r} is registered more than once: "
            + "; ".join(entry.origin for entry in entries)
            + ". Uninstall all but one.",
        )
    return entries[0]


def build(name: str, api_key: SecretKey | None, options: Mapping[str, object]) -> Engine:
    """A new engine of the registered `name`, given the Session's key and engine_options."""
    entry = registration(name)
    plugin = entry.load()
    unknown = [option for option in options if option not in plugin.options]
    if unknown:
        raise _unknown_options(name, plugin.options, unknown)
    try:
        engine = plugin.make(api_key, options)
    except DecartNBError:
        raise  # the engine's own word (a missing key, a bad option value)
    except Exception as exc:  # a bug in a third party's factory: named, with its distribution
        raise entry.broken(f"failed to build ({type(exc).__name__}: {exc})", exc) from exc
    if not isinstance(engine, Engine):
        raise entry.broken(f"returned a {type(engine).__name__} from its factory, not an Engine", None)
    return engine


def _unknown_options(name: str, takes: tuple[str, ...], unknown: list[str]) -> DecartNBError:
    what = f"engine_options ({', '.join(takes)}) are for engine={name!r}" if takes else ""
    message = what or f"engine={name!r} takes no engine_options"
    return invalid(
        f"{message}; got {', '.join(unknown)}{_who_takes(name, unknown)}", argument="engine_options"
    )


def _who_takes(name: str, unknown: list[str]) -> str:
    """A hint for options meant for another built-in engine (engine='decart' forgotten)."""
    for other in BUILTINS:
        if other != name and set(unknown) <= set(find(other).options):
            return f": those are for engine={other!r}"
    return ""
