"""The arms of a comparison: what each one runs (model, engine, options, initial state), checked
before anything is built, and named so that tables, views and cells can tell them apart."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .checks import check_bool, check_mapping, invalid
from .engines.base import Engine
from .errors import DecartNBError, ErrorCode
from .images import ImageInput
from .models import realtime
from .state import validate_prompt

__all__ = ["MAX_ARMS", "Arm", "arms_from"]

MAX_ARMS = 8  # side by side in one view; each arm is a whole session (a model, an engine)


@dataclass(frozen=True)
class Arm:
    """One arm of `compare()`: an engine and model with its own options and, optionally, its own
    initial state (prompt, image, enhance; otherwise the comparison's). The API key never shows
    in its repr or its `params()`."""

    name: str | None = None
    model: str = "lucy-latest"
    engine: str | Engine | Callable[..., object] = "local"
    prompt: str | None = None
    image: ImageInput | None = field(default=None, repr=False)
    enhance: bool = True
    engine_options: Mapping[str, object] | None = None
    controls: Mapping[str, float] | None = None
    api_key: str | None = field(default=None, repr=False)

    @property
    def engine_name(self) -> str:
        """The engine as a word: its registered name, a function's name, an Engine's `name`."""
        engine = self.engine
        if isinstance(engine, str):
            return engine
        if isinstance(engine, Engine):
            return engine.name
        return str(getattr(engine, "__name__", "callable"))

    @property
    def speed(self) -> str | None:
        """The speed tier asked for in `engine_options` ("fast"), or None."""
        speed = (self.engine_options or {}).get("speed")
        return speed if isinstance(speed, str) else None

    @property
    def sets_state(self) -> bool:
        """The arm has an initial state of its own (a prompt or an image)."""
        return self.prompt is not None or self.image is not None

    def default_name(self) -> str:
        """The model, " fast" for the fast tier, and the engine when it is not the local one."""
        name = self.model + (" fast" if self.speed == "fast" else "")
        return name if self.engine_name == "local" else f"{name} {self.engine_name}"

    def params(self) -> dict[str, object]:
        """What the arm is, JSON-safe, for tables and trackers: never the key, never pixels."""
        return {
            "name": self.name,
            "model": self.model,
            "engine": self.engine_name,
            "prompt": self.prompt,
            "image": None if self.image is None else _image_label(self.image),
            "enhance": self.enhance,
            "engine_options": {k: _json_safe(v) for k, v in (self.engine_options or {}).items()},
            "controls": dict(self.controls or {}),
        }


def arms_from(arms: object) -> list[Arm]:
    """The arms `compare()` takes, checked and named: a list of Arm, model names ("lucy-2.5") or
    mappings of Arm fields ({"model": ..., "engine_options": {"speed": "fast"}}); one of them
    alone is one arm. 1 to MAX_ARMS arms with distinct names (INVALID_INPUT) and known models
    (MODEL_NOT_FOUND). Unnamed arms get `default_name()`, made unique with " #2", " #3"."""
    items = [arms] if isinstance(arms, (Arm, str, Mapping)) else arms
    if not isinstance(items, Sequence):
        raise invalid(
            f"arms must be a list of Arm, model names or mappings of Arm fields, not {type(arms).__name__}",
            argument="arms",
        )
    if not 1 <= len(items) <= MAX_ARMS:
        raise invalid(f"compare() takes 1 to {MAX_ARMS} arms, got {len(items)}", argument="arms")
    checked = [_check(_arm(item, i), i) for i, item in enumerate(items)]
    return _named(checked)


def _arm(item: object, index: int) -> Arm:
    if isinstance(item, Arm):
        return item
    if isinstance(item, str):
        return Arm(model=item)
    if isinstance(item, Mapping):
        known = {f.name for f in dataclasses.fields(Arm)}
        unknown = [str(k) for k in item if k not in known]
        if unknown:
            raise invalid(
                f"arm {index + 1}: unknown field {', '.join(unknown)}; an arm has {', '.join(sorted(known))}",
                argument="arms",
            )
        return Arm(**{str(k): v for k, v in item.items()})
    raise invalid(
        f"arm {index + 1} must be an Arm, a model name or a mapping of Arm fields, not {type(item).__name__}",
        argument="arms",
    )


def _check(arm: Arm, index: int) -> Arm:
    """Each field's type and value; the model by name (MODEL_NOT_FOUND). The engine itself is
    built, and its options and controls checked, by the arm's Session."""
    where = f"arm {index + 1}"
    if arm.name is not None and (not isinstance(arm.name, str) or not arm.name.strip()):
        raise invalid(f"{where}: name must be a non-empty string, not {arm.name!r:.40}", argument="arms")
    if not isinstance(arm.model, str):
        raise invalid(f"{where}: model must be a model name, not {type(arm.model).__name__}", argument="arms")
    realtime(arm.model)  # MODEL_NOT_FOUND, naming the realtime models
    if not (isinstance(arm.engine, (str, Engine)) or callable(arm.engine)):
        raise invalid(
            f"{where}: engine must be a name, an Engine or a function, not {type(arm.engine).__name__}",
            argument="arms",
        )
    if arm.prompt is not None:
        validate_prompt(arm.prompt)
    check_bool(f"{where}: enhance", arm.enhance)
    check_mapping(f"{where}: engine_options", arm.engine_options)
    check_mapping(f"{where}: controls", arm.controls)
    if arm.api_key is not None and not isinstance(arm.api_key, str):
        raise DecartNBError(
            ErrorCode.INVALID_API_KEY, f"{where}: api_key must be a string, not {type(arm.api_key).__name__}"
        )
    return arm


def _named(arms: list[Arm]) -> list[Arm]:
    """Given names stay as they are (a repeat is an error); the others are derived and numbered."""
    given = [a.name for a in arms if a.name is not None]
    repeated = sorted({n for n in given if given.count(n) > 1})
    if repeated:
        raise invalid(f"arm names must differ: {', '.join(map(repr, repeated))} repeated", argument="arms")
    engines = [a.engine for a in arms if isinstance(a.engine, Engine)]
    if len({id(e) for e in engines}) < len(engines):
        raise invalid(
            "an Engine object runs one arm: give each arm its own (or an engine name or a function)",
            argument="arms",
        )
    taken: set[str] = set(given)
    named: list[Arm] = []
    for arm in arms:
        if arm.name is None:
            base = arm.default_name()
            name, n = base, 1
            while name in taken:
                n += 1
                name = f"{base} #{n}"
            taken.add(name)
            arm = dataclasses.replace(arm, name=name)
        named.append(arm)
    return named


def _image_label(image: object) -> str:
    from .session_core import image_name

    return image_name(image)


def _json_safe(value: object) -> object:
    return value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)
