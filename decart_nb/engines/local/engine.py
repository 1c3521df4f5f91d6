"""The embedded local model: fast CPU looks picked by prompt words, steered by a reference image.

Prompt words pick one of the styles in styles.py (or a look hashed from the prompt), a reference
image pulls the colours toward its own, and `strength` blends the result with the input. The work
happens on the yuv420p planes with tables built once per state; docs/local_model.md lists the
styles and their trigger words.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import av
import numpy as np

from ...media.frames import carry, plane_view
from ...state import GenerationState
from ..base import Control, FrameEngine
from .colour import ColourTarget, colour_target, transfer_luts
from .render import Planes, Scratch, apply_luts, blend, render
from .styles import STYLES, Look, compile_look, enhance_prompt, match_style
from .tables import LookTables, Maps, look_maps, look_tables

__all__ = ["LocalEngine", "compile_look", "enhance_prompt", "match_style"]


@dataclass(frozen=True)
class _Plan:
    """What one state costs to prepare, kept until the state or the frame size changes."""

    state: GenerationState
    size: tuple[int, int]
    look: Look
    tables: LookTables
    maps: Maps
    target: ColourTarget | None
    weight: int  # strength in 1/256ths


class LocalEngine(FrameEngine):
    name = "local"
    controls = (Control("strength", "Strength", 0.0, 1.0, 0.05, 1.0, "0 returns the input, 1 the full look"),)
    prompt_presets = tuple(style.name for style in STYLES)

    def __init__(self) -> None:
        super().__init__()
        self._plan: _Plan | None = None
        self._scratch: Scratch | None = None
        self._size: tuple[int, int] | None = None  # (height, width) of the last frame

    async def apply(self, state: GenerationState) -> None:
        """Build the new look's tables and maps off the media loop (they take up to ~50 ms)
        before the state is acknowledged; frames keep flowing with the old look meanwhile."""
        self.validate(state)
        if self._size is not None and state.prompt is not None:
            await asyncio.get_running_loop().run_in_executor(None, _warm, state, self._size)
        await super().apply(state)

    def process(self, frame: av.VideoFrame, state: GenerationState) -> av.VideoFrame:
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        self._size = (frame.height, frame.width)
        plan = self._plan_for(state, frame.height, frame.width)
        if plan.weight <= 0 or (plan.look.is_identity and plan.target is None):
            return frame
        s = self._scratch_for(frame.height, frame.width)
        src = _planes(frame)
        styled = src if plan.look.is_identity else render(*src, plan.look, plan.tables, plan.maps, s)
        out = av.VideoFrame(frame.width, frame.height, "yuv420p")
        _finish(src, styled, _planes(out), plan, s)
        return carry(frame, out)

    def _plan_for(self, state: GenerationState, h: int, w: int) -> _Plan:
        plan = self._plan
        if plan is not None and plan.state is state and plan.size == (h, w):
            return plan
        look = compile_look(state.prompt, state.enhance)
        strength = float(state.controls.get("strength", 1.0))
        target = None if state.image is None else colour_target(state.image, state.prompt is not None)
        plan = _Plan(
            state=state,
            size=(h, w),
            look=look,
            tables=look_tables(look),
            maps=look_maps(look, h, w),
            target=target,
            weight=round(min(max(strength, 0.0), 1.0) * 256),
        )
        self._plan = plan
        return plan

    def _scratch_for(self, h: int, w: int) -> Scratch:
        if self._scratch is None or self._scratch.shape != (h, w):
            self._scratch = Scratch(h, w)
        return self._scratch


def _warm(state: GenerationState, size: tuple[int, int]) -> None:
    look = compile_look(state.prompt, state.enhance)
    look_tables(look)
    look_maps(look, *size)


def _finish(src: Planes, styled: Planes, dst: Planes, plan: _Plan, s: Scratch) -> None:
    """Image steering, then the strength blend with the input, written into the output planes."""
    full = plan.weight >= 256
    if plan.target is not None:
        steered = dst if full else s.steered
        apply_luts(styled, transfer_luts(*styled, plan.target), steered)
        styled = steered
    if full:
        if styled is not dst:
            for b, d in zip(styled, dst, strict=True):
                np.copyto(d, b)
        return
    for a, b, d, (acc1, acc2) in zip(src, styled, dst, s.blend_accs, strict=True):
        blend(a, b, plan.weight, d, acc1, acc2)


def _planes(frame: av.VideoFrame) -> Planes:
    """Views (no copy) of a yuv420p frame's three planes."""
    y, u, v = (plane_view(plane) for plane in frame.planes)
    return y, u, v
