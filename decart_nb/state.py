"""The generation state: what a set() replaces as a whole."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import DecartNBError, ErrorCode

__all__ = ["GenerationState", "MAX_PROMPT_CHARS", "validate_prompt"]

# Decart documents no limit; a cap keeps a pasted novel from reaching a model. Chosen generously.
MAX_PROMPT_CHARS = 5000


@dataclass(frozen=True)
class GenerationState:
    """Prompt, reference image (RGB uint8, HxWx3), enhance flag and engine controls.

    `version` grows with every accepted set(); output frames carry the version they were made with.
    """

    prompt: str | None = None
    image: np.ndarray | None = field(default=None, repr=False, compare=False)
    enhance: bool = True
    controls: dict[str, float] = field(default_factory=dict)
    version: int = 0

    @property
    def is_passthrough(self) -> bool:
        return self.prompt is None and self.image is None

    def with_controls(self, **controls: float) -> GenerationState:
        return replace(self, controls={**self.controls, **controls})

    def summary(self) -> dict[str, Any]:
        """A JSON-safe description (for the page, the panel and results tables)."""
        return {
            "prompt": self.prompt,
            "image": None if self.image is None else list(self.image.shape),
            "enhance": self.enhance,
            "controls": dict(self.controls),
            "version": self.version,
        }


def validate_prompt(prompt: object) -> str:
    if not isinstance(prompt, str):
        raise DecartNBError(ErrorCode.INVALID_INPUT, f"Prompt must be a string, not {type(prompt).__name__}")
    if not prompt.strip():
        raise DecartNBError(ErrorCode.INVALID_INPUT, "Prompt cannot be empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"Prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}",
            data={"length": len(prompt), "limit": MAX_PROMPT_CHARS},
        )
    return prompt
