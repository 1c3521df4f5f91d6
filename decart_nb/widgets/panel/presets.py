"""Prompts for the prompt slider: the session's own list, else the engine's presets."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...session import Session

__all__ = ["preset_prompts"]


def preset_prompts(session: Session) -> list[str]:
    """The prompts the slider scrubs through (empty: no slider)."""
    return list(session.prompts or session.engine.prompt_presets)
