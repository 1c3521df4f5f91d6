"""The generation state: what a set() replaces as a whole."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .checks import check_bool
from .errors import DecartNBError, ErrorCode

__all__ = ["MAX_PROMPT_CHARS", "GenerationState", "validate_enhance", "validate_prompt", "validate_prompts"]

# Decart documents no limit; a cap keeps a pasted novel from reaching a model. Chosen generously.
MAX_PROMPT_CHARS = 5000
# C0 controls but tab, newline and carriage return; DEL; C1 controls; lone surrogates (which
# cannot even be encoded to send).
_BAD_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


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

    def summary(self) -> dict[str, object]:
        """A JSON-safe description (for the page, the panel and results tables)."""
        return {
            "prompt": self.prompt,
            "image": None if self.image is None else list(self.image.shape),
            "enhance": self.enhance,
            "controls": dict(self.controls),
            "version": self.version,
        }


def validate_prompt(prompt: object) -> str:
    """A prompt as given, or INVALID_INPUT: a non-empty string of at most MAX_PROMPT_CHARS,
    without control characters (rejected, not stripped: a NUL or an escape in a prompt is a
    copy-paste accident the user should see; tabs and newlines are text and stay)."""
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
    bad = _BAD_CHAR.search(prompt)
    if bad is not None:
        code = ord(bad.group())
        kind = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "the control character"
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"Prompt contains {kind} U+{code:04X} at position {bad.start()}: remove it",
            data={"position": bad.start(), "char": f"U+{code:04X}"},
        )
    return prompt


def validate_prompts(prompts: object) -> list[str]:
    """Session(prompts=...): None, or a list (or tuple) of valid prompts."""
    if prompts is None:
        return []
    if not isinstance(prompts, (list, tuple)):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"prompts must be a list of strings, not {type(prompts).__name__} (one prompt: prompt=...)",
        )
    checked = []
    for i, prompt in enumerate(prompts):
        try:
            checked.append(validate_prompt(prompt))
        except DecartNBError as exc:
            raise DecartNBError(exc.code, f"prompts[{i}]: {exc.message}", data=exc.data) from None
    return checked


def validate_enhance(enhance: object) -> bool:
    return check_bool("enhance", enhance)
