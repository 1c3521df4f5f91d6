"""`sweep(arms=...)` and `sweep(comparison=...)`: the arms checked up front, and each arm's part of
an item's identity (so a resumed run never takes another arm's row for its own)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..errors import DecartNBError, ErrorCode
from .provenance import safe_options

if TYPE_CHECKING:
    from ..arms import Arm

__all__ = ["ArmIdentity", "arm_identities", "check_arms", "check_plain_options", "enhance_for"]

ArmIdentity = tuple[str, Mapping[str, object]]  # the arm's name, what makes its rows its own


def check_arms(arms: object, comparison: object, session: object) -> list[Arm] | None:
    """The sweep's arms (None: a plain sweep); with `comparison`, its own arms."""
    if comparison is not None:
        from ..comparison import Comparison

        if not isinstance(comparison, Comparison):
            raise DecartNBError(
                ErrorCode.INVALID_INPUT, f"comparison must be a Comparison, not {type(comparison).__name__}"
            )
        if arms is not None or session is not None:
            raise DecartNBError(
                ErrorCode.INVALID_INPUT,
                "comparison= brings its own arms and input: not with arms= or session=",
            )
        return comparison.specs
    if arms is None:
        return None
    if session is not None:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            "arms= opens a comparison per source; to sweep one you hold, pass comparison=, not session=",
        )
    from ..arms import arms_from

    return arms_from(arms)


def check_plain_options(arms: Sequence[Arm] | None, given: Mapping[str, object]) -> None:
    """With arms each arm names its model, engine and options: the sweep-wide ones would be ignored."""
    if arms is None:
        return
    clash = sorted(name for name, value in given.items() if value)
    if clash:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"With arms=, each arm has its own model, engine and options: not sweep({', '.join(clash)}=...)",
        )


def arm_identities(arms: Sequence[Arm] | None) -> list[ArmIdentity] | None:
    """(name, identity) per arm: what it runs, never its API key."""
    if arms is None:
        return None
    out: list[ArmIdentity] = []
    for arm in arms:
        name = str(arm.name)
        ident: dict[str, object] = {
            "name": name,
            "model": arm.model,
            "engine": _engine_identity(arm.engine),
            "enhance": arm.enhance,
            "engine_options": safe_options(arm.engine_options or {}),
            "controls": {k: float(v) for k, v in sorted((arm.controls or {}).items())},
        }
        out.append((name, ident))
    return out


def enhance_for(sweep_enhance: bool, arm: Arm | None) -> bool:
    """An arm may turn prompt enhancement off for itself (an A/B on enhance); the sweep's
    enhance=False turns it off for all."""
    return sweep_enhance and (arm is None or arm.enhance)


def _engine_identity(engine: object) -> str:
    if isinstance(engine, str):
        return engine
    return "function:" + str(getattr(engine, "__qualname__", None) or type(engine).__qualname__)
