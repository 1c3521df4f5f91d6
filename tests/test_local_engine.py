"""The embedded local model: styles by prompt words, fallback looks, enhance, image steering, strength."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

import decart_nb
from decart_nb.engines.local import LocalEngine, compile_look, enhance_prompt, match_style
from decart_nb.engines.local.styles import ENHANCE_MAX_WORDS, STYLES
from decart_nb.engines.local.tables import look_maps
from decart_nb.media.frames import from_planes, to_planes, to_rgb
from decart_nb.media.sources import _test_card
from decart_nb.media.stamp import read_stamp, write_stamp
from decart_nb.state import GenerationState
from tests.helpers import mean_abs_diff

FALLBACKS = ("a cat wearing a tiny hat", "purple dinosaur on a skateboard", "quantum breakfast")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "local_model.md"


def card_frame(width: int = 1280, height: int = 720, shift: int = 96) -> av.VideoFrame:
    y, u, v = _test_card(width, height)
    return from_planes(
        np.ascontiguousarray(y[:, shift : shift + width]),
        np.ascontiguousarray(u[:, shift // 2 : shift // 2 + width // 2]),
        np.ascontiguousarray(v[:, shift // 2 : shift // 2 + width // 2]),
    )


@pytest.fixture(scope="module")
def frame() -> av.VideoFrame:
    return card_frame()


def planes_diff(a: av.VideoFrame, b: av.VideoFrame) -> float:
    """Mean absolute difference over all three planes (what the eye sees, luma and colour)."""
    return float(np.mean([mean_abs_diff(p, q) for p, q in zip(to_planes(a), to_planes(b), strict=True)]))


def run(prompt: str | None, frame: av.VideoFrame, **kwargs: object) -> av.VideoFrame:
    return LocalEngine().process(frame, GenerationState(prompt=prompt, **kwargs))  # type: ignore[arg-type]


def same(a: av.VideoFrame, b: av.VideoFrame) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(to_planes(a), to_planes(b), strict=True))


@pytest.mark.parametrize("prompt", [s.triggers[0] for s in STYLES] + list(FALLBACKS))
def test_every_style_and_the_fallback_change_the_picture(frame: av.VideoFrame, prompt: str) -> None:
    for enhance in (False, True):
        out = run(prompt, frame, enhance=enhance)
        assert (out.width, out.height, out.format.name) == (1280, 720, "yuv420p")
        assert planes_diff(out, frame) > 6.0, (prompt, enhance)


def test_there_are_at_least_ten_styles_and_each_differs_from_the_others(frame: av.VideoFrame) -> None:
    assert len(STYLES) >= 10
    prompts = [s.triggers[0] for s in STYLES] + list(FALLBACKS)
    outs = {p: run(p, frame, enhance=False) for p in prompts}
    for a, b in itertools.combinations(prompts, 2):
        assert planes_diff(outs[a], outs[b]) > 2.0, (a, b)


def test_the_same_prompt_gives_identical_output_every_time(frame: av.VideoFrame) -> None:
    engine = LocalEngine()
    for prompt in ("watercolor", "comic", FALLBACKS[0]):
        first = engine.process(frame, GenerationState(prompt=prompt, version=1))
        other_state = engine.process(frame, GenerationState(prompt="noir", version=2))
        again = engine.process(frame, GenerationState(prompt=prompt, version=3))
        fresh = LocalEngine().process(frame, GenerationState(prompt=prompt))
        assert same(first, again) and same(first, fresh)
        assert not same(first, other_state)


def test_no_prompt_and_no_image_passes_frames_through(frame: av.VideoFrame) -> None:
    engine = LocalEngine()
    assert engine.run_one(frame, GenerationState()) is frame
    assert same(engine.process(frame, GenerationState()), frame)


def test_strength_zero_returns_the_input_and_half_lands_between(frame: av.VideoFrame) -> None:
    full = run("neon", frame)
    zero = run("neon", frame, controls={"strength": 0.0})
    half = run("neon", frame, controls={"strength": 0.5})
    assert same(zero, frame)
    to_input, to_full = planes_diff(half, frame), planes_diff(half, full)
    assert to_input > 5 and to_full > 5
    assert abs(to_input - to_full) < 0.35 * (to_input + to_full)
    assert LocalEngine().check_controls({"strength": 0.0}) == {"strength": 0.0}


def mean_rgb(frame: av.VideoFrame) -> np.ndarray:
    return to_rgb(frame).reshape(-1, 3).mean(axis=0)


@pytest.mark.parametrize("prompt", [None, "noir", "watercolor", FALLBACKS[1]])
@pytest.mark.parametrize("colour", [(230, 120, 30), (40, 90, 200)])
def test_a_reference_image_pulls_the_mean_colour_toward_its_own(
    frame: av.VideoFrame, prompt: str | None, colour: tuple[int, int, int]
) -> None:
    image = np.empty((96, 128, 3), np.uint8)
    image[:] = colour
    image[::7] = (np.array(colour) * 0.7).astype(np.uint8)  # some spread, as a real picture has
    plain = run(prompt, frame) if prompt else frame
    steered = run(prompt, frame, image=image)
    target = image.reshape(-1, 3).mean(axis=0)
    before = np.linalg.norm(mean_rgb(plain) - target)
    after = np.linalg.norm(mean_rgb(steered) - target)
    assert after < 0.6 * before, (before, after)


@pytest.mark.parametrize("prompt", [s.triggers[0] for s in STYLES] + [FALLBACKS[0]])
def test_no_look_writes_into_its_input_frame(prompt: str) -> None:
    """A comparison's arms read one input's pixels (decart_nb/fanout.py): a look that wrote into
    its input would change what the other arms see."""
    image = np.full((64, 96, 3), (200, 60, 30), np.uint8)
    for width, height in ((1280, 720), (328, 184)):  # 328: rows padded to the line size
        source = card_frame(width, height)
        before = [bytes(plane) for plane in source.planes]
        for kwargs in ({}, {"enhance": True, "controls": {"strength": 0.5}}, {"image": image}):
            run(prompt, source, **kwargs)
        assert [bytes(plane) for plane in source.planes] == before, (prompt, width)


def test_enhance_expands_a_short_prompt_and_changes_the_look(frame: av.VideoFrame) -> None:
    for prompt in [s.triggers[0] for s in STYLES] + list(FALLBACKS):
        rich = enhance_prompt(prompt)
        assert rich.startswith(prompt) and len(rich) > len(prompt) + 20
        assert enhance_prompt(prompt) == rich  # deterministic
        literal, enhanced = run(prompt, frame, enhance=False), run(prompt, frame, enhance=True)
        assert planes_diff(literal, enhanced) > 3, prompt
    long = " ".join(["word"] * ENHANCE_MAX_WORDS)
    assert enhance_prompt(long) == long


def test_enhance_false_takes_the_prompt_literally(frame: av.VideoFrame) -> None:
    # Words the renderer honours change the look only when the prompt itself carries them.
    assert compile_look("anime", enhance=False) != compile_look("anime, vignette", enhance=False)
    assert (
        planes_diff(run("anime", frame, enhance=False), run("anime, high contrast", frame, enhance=False)) > 1
    )


def test_trigger_words_match_case_insensitively_inside_longer_prompts(frame: av.VideoFrame) -> None:
    for style in STYLES:
        for trigger in style.triggers:
            found = match_style(f"A {trigger.upper()} picture of a cat")
            assert found is not None and found.name == style.name, trigger
    assert match_style("a watercolor painting of a cat").name == "watercolor"  # type: ignore[union-attr]
    assert match_style("soil samples") is None  # whole words only: "oil" is not inside "soil"
    longer = run("a Watercolor painting of a cat", frame, enhance=False)
    bare = run("watercolor", frame, enhance=False)
    assert same(longer, bare)


def test_fallback_looks_are_stable_across_processes_and_case() -> None:
    # sha256, not hash(): the look must not depend on PYTHONHASHSEED
    code = (
        "from decart_nb.engines.local.styles import compile_look;"
        f"print(repr(compile_look({FALLBACKS[0]!r}, True)))"
    )
    seen = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed},
            cwd=DOCS.parent.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(seen) == 1
    assert compile_look(FALLBACKS[0].upper()) == compile_look(FALLBACKS[0])


def test_other_frame_sizes_and_the_stamp_survive(frame: av.VideoFrame) -> None:
    odd = card_frame(1284, 724)  # not a multiple of the pixel-art block
    for style in STYLES:
        out = run(style.triggers[0], odd)
        assert (out.width, out.height) == (1284, 724)
    engine = LocalEngine()
    engine.preserve_stamp = True
    y, u, v = to_planes(frame)
    y = y.copy()
    write_stamp(y, 4242)
    stamped = from_planes(y, u, v)
    out = engine.run_one(stamped, GenerationState(prompt="negative"))
    assert read_stamp(to_planes(out)[0]) == 4242


def test_the_docs_list_every_style_and_trigger() -> None:
    text = DOCS.read_text(encoding="utf-8").lower()
    for style in STYLES:
        assert style.name in text
        for trigger in style.triggers:
            assert trigger in text, trigger


def test_a_pattern_session_shows_the_prompted_look() -> None:
    with decart_nb.Session(source="pattern") as session:
        assert session.engine.name == "local"
        before = session.snapshot(timeout=20)
        session.set_prompt("noir")
        noir = np.asarray(session.snapshot(timeout=20), np.int16)
        session.set_prompt("thermal")
        thermal = session.snapshot(timeout=20)
    assert mean_abs_diff(before, noir) > 10
    assert np.abs(noir[..., 0] - noir[..., 2]).mean() < 4  # black and white: no colour left
    assert mean_abs_diff(noir, thermal) > 10


def test_apply_builds_the_new_looks_tables_before_it_acknowledges(frame: av.VideoFrame) -> None:
    engine = LocalEngine()
    engine.process(frame, GenerationState(prompt="noir", version=1))  # the engine learns the size
    state = GenerationState(prompt="a lighthouse in a storm, grainy", version=2)
    asyncio.run(engine.apply(state))
    misses = look_maps.cache_info().misses
    engine.run_one(frame, state)
    assert look_maps.cache_info().misses == misses  # the worker found the maps ready
