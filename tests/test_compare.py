"""compare(): arms on one shared input. The arms' checks and names, the fan-out (each arm its own
frame, one stamp, a slow arm drops its own frames), set() on all or one arm, the view, and the
three kinds of engine: local, a function, and Decart's (the real SDK against the fake server)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamTrack

from decart_nb import DecartNBError, ErrorCode, _loop
from decart_nb.arms import Arm, arms_from
from decart_nb.comparison import Comparison, compare
from decart_nb.fanout import Fanout, copy_frame, share_frame
from decart_nb.media.frames import FrameMeta, meta_of, plane_view
from decart_nb.media.relay import InputSlot
from decart_nb.media.sources import PatternTrack
from decart_nb.media.stats import StreamStats
from decart_nb.state import GenerationState
from tests.helpers import mean_abs_diff, wait_until
from tests.test_widget import comms

__all__ = ["comms"]  # the recording-comm fixture, shared with test_widget.py


# -- arms ---------------------------------------------------------------------------------------
def test_arms_are_named_from_what_they_run_and_made_unique() -> None:
    def my_model(frame: np.ndarray, state: GenerationState) -> np.ndarray:
        return frame

    arms = arms_from(
        [
            "lucy-latest",
            Arm(prompt="anime"),
            {"model": "lucy-2.5", "engine": "decart", "engine_options": {"speed": "fast"}},
            Arm(engine=my_model),
            Arm(name="mine", model="lucy-restyle-2"),
        ]
    )
    assert [a.name for a in arms] == [
        "lucy-latest",
        "lucy-latest #2",
        "lucy-2.5 fast decart",
        "lucy-latest my_model",
        "mine",
    ]
    assert arms_from("lucy-2.1")[0].name == "lucy-2.1"  # one arm alone


@pytest.mark.parametrize(
    ("arms", "code"),
    [
        ([], ErrorCode.INVALID_INPUT),
        (["lucy-latest"] * 9, ErrorCode.INVALID_INPUT),
        ([Arm(name="a"), Arm(name="a")], ErrorCode.INVALID_INPUT),
        (["lucy-nope"], ErrorCode.MODEL_NOT_FOUND),
        ([{"model": "lucy-latest", "speeed": "fast"}], ErrorCode.INVALID_INPUT),
        ([Arm(prompt="")], ErrorCode.INVALID_INPUT),
        ([Arm(enhance=1)], ErrorCode.INVALID_INPUT),  # type: ignore[arg-type]
        (42, ErrorCode.INVALID_INPUT),
    ],
)
def test_bad_arms_are_refused_with_their_code(arms: object, code: ErrorCode) -> None:
    with pytest.raises(DecartNBError) as info:
        compare(arms, source="pattern")
    assert info.value.code == code


def test_the_key_is_in_no_repr_and_no_params() -> None:
    arm = arms_from([Arm(engine="decart", api_key="sk-very-secret", engine_options={"speed": "fast"})])[0]
    assert "sk-very-secret" not in repr(arm)
    assert "sk-very-secret" not in repr(arm.params())
    assert arm.params()["engine_options"] == {"speed": "fast"}


# -- the fan-out --------------------------------------------------------------------------------
def _frame(n: int = 5) -> av.VideoFrame:
    frame = _loop.run(PatternTrack(320, 180, 30).recv(), timeout=10)
    frame.opaque = FrameMeta(t_in=123.0)
    frame.pts = n * 3000
    return frame


def test_arms_share_the_pixels_and_nothing_else_of_a_frame() -> None:
    _loop.acquire()
    try:
        fanout = Fanout()
        taps = [fanout.tap(), fanout.tap(), fanout.tap()]
        source = _frame()
        before = source.to_ndarray().copy()
        _loop.run(_deliver(fanout, source), timeout=10)
        got = [_loop.run(t.recv(), timeout=10) for t in taps]
        assert len({id(f) for f in got}) == 3 and len({id(f.opaque) for f in got}) == 3
        assert all(meta_of(f).t_in == 123.0 and f.pts == 5 * 3000 for f in got)  # one stamp for all
        # One buffer of pixels for all (no copy), which every arm reads as the source's.
        assert len({tuple(p.buffer_ptr for p in f.planes) for f in got}) == 1
        assert all(np.array_equal(f.to_ndarray(), before) for f in got)
        # What one arm does to its frame (its slot rebases pts, its engine writes metadata) the
        # others never see.
        first = got[0]
        first.pts = 1
        meta_of(first).version = 7
        for other in got[1:]:
            assert other.pts == 5 * 3000 and meta_of(other).version == -1
        for t in taps:
            t.stop()
        assert fanout.taps == 0
    finally:
        _loop.release()


def test_every_arm_starts_at_once_after_their_frames_are_made_and_no_slot_changes_another_arms_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from decart_nb import fanout as fanout_module

    copies: list[av.VideoFrame] = []
    monkeypatch.setattr(fanout_module, "share_frame", lambda f: copies.append(f) or share_frame(f))
    _loop.acquire()
    try:
        fanout = Fanout()
        taps = [fanout.tap(), fanout.tap(), fanout.tap()]
        seen: list[tuple[int, int]] = []

        def slot(frame: av.VideoFrame) -> None:  # as an arm's input slot does, in the same step
            seen.append((id(frame), len(copies)))
            frame.pts = 77  # its own timeline
            meta_of(frame).version = 3

        for tap in taps:
            tap.connect(slot, lambda: None)
        source = _frame()
        _loop.run(_deliver(fanout, source), timeout=10)
        # The two frames made first, then each arm in the same step: the first takes the frame itself.
        assert [n for _, n in seen] == [2, 2, 2] and seen[0][0] == id(source)
        assert len({i for i, _ in seen}) == 3
        for tap in taps:
            tap.stop()
    finally:
        _loop.release()


def test_the_echo_keeps_the_arrival_timing_after_an_arm_rebased_the_frame() -> None:
    _loop.acquire()
    try:
        fanout = Fanout(echo=True)
        echo = _loop.run(_start(fanout, InputSlot(StreamStats())), timeout=10)  # frames by hand below
        arm = fanout.tap()
        arm.connect(lambda frame: setattr(frame, "pts", 77), lambda: None)
        _loop.run(_deliver(fanout, _frame()), timeout=10)
        shown = _loop.run(echo.recv(), timeout=10)
        assert shown.pts == 5 * 3000 and meta_of(shown).t_in == 123.0
        arm.stop()
        echo.stop()
    finally:
        _loop.release()


async def _start(fanout: Fanout, source: InputSlot) -> MediaStreamTrack:
    return await fanout.start(source)


async def _deliver(fanout: Fanout, frame: av.VideoFrame) -> None:
    fanout.deliver(frame)


@pytest.mark.parametrize("make", [copy_frame, share_frame])
@pytest.mark.parametrize(("width", "height"), [(322, 270), (321, 271)])  # padded rows; odd: a copy
def test_another_frame_keeps_the_pixels_without_row_padding(make: Any, width: int, height: int) -> None:
    rgb = np.random.default_rng(1).integers(0, 255, (height, width, 3), np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, "rgb24").reformat(format="yuv420p")
    other = make(frame)
    assert other is not frame
    assert all(np.array_equal(a, b) for a, b in zip(_rows(other), _rows(frame), strict=True))


def _rows(frame: av.VideoFrame) -> list[np.ndarray]:
    """Each plane's pixels (to_ndarray refuses an odd-sized yuv420p frame)."""
    return [plane_view(p) for p in frame.planes]


def test_a_shared_frame_keeps_its_pixels_alive_after_its_source_is_gone() -> None:
    import gc

    rgb = np.random.default_rng(3).integers(0, 255, (180, 320, 3), np.uint8)
    source = av.VideoFrame.from_ndarray(rgb, "rgb24").reformat(format="yuv420p")
    expected = source.to_ndarray().copy()
    shared = share_frame(source)
    del source
    gc.collect()
    reused = [av.VideoFrame(320, 180, "yuv420p") for _ in range(64)]  # would take freed memory
    for frame in reused:
        for plane in frame.planes:
            np.frombuffer(memoryview(plane), np.uint8)[:] = 7
    assert np.array_equal(shared.to_ndarray(), expected)


def test_a_frame_of_another_format_is_converted_for_the_arms() -> None:
    rgb = np.random.default_rng(2).integers(0, 255, (180, 320, 3), np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, "rgb24")
    other = share_frame(frame)
    assert other.format.name == "yuv420p"
    assert np.array_equal(other.to_ndarray(), frame.reformat(format="yuv420p").to_ndarray())


def test_a_frame_of_another_format_is_converted_once_and_its_pixels_shared_by_every_arm() -> None:
    rgb = np.random.default_rng(4).integers(0, 255, (180, 320, 3), np.uint8)
    source = av.VideoFrame.from_ndarray(rgb, "rgb24")
    source.opaque, source.pts = FrameMeta(t_in=55.0), 9
    _loop.acquire()
    try:
        fanout = Fanout()
        taps = [fanout.tap(), fanout.tap(), fanout.tap()]
        _loop.run(_deliver(fanout, source), timeout=10)
        got = [_loop.run(t.recv(), timeout=10) for t in taps]
        assert all(f.format.name == "yuv420p" and f.pts == 9 and meta_of(f).t_in == 55.0 for f in got)
        assert len({tuple(p.buffer_ptr for p in f.planes) for f in got}) == 1  # one conversion
        expected = source.reformat(format="yuv420p").to_ndarray()
        assert all(np.array_equal(f.to_ndarray(), expected) for f in got)
        for t in taps:
            t.stop()
    finally:
        _loop.release()


def test_a_slow_arm_drops_its_own_frames_and_never_holds_up_the_others() -> None:
    def slow(frame: np.ndarray, state: GenerationState) -> np.ndarray:
        time.sleep(0.25)
        return frame

    def quick(frame: np.ndarray, state: GenerationState) -> np.ndarray:
        return frame

    with compare([Arm(name="slow", engine=slow), Arm(name="quick", engine=quick)], "pattern") as cmp:
        assert wait_until(lambda: cmp.stats["slow"].get("frames_out", 0) >= 4, timeout=30)
        stats = cmp.stats
    slow_stats, quick_stats = stats["slow"], stats["quick"]
    # Both arms were offered the same frames; the slow one made few of them and dropped the rest.
    assert quick_stats["frames_out"] > 3 * slow_stats["frames_out"]
    assert slow_stats["frames_dropped"] > quick_stats["frames_dropped"]


# -- a comparison -------------------------------------------------------------------------------
def test_when_the_shared_source_ends_every_arm_ends_with_it() -> None:
    frames = (np.full((180, 320, 3), 40 * (n % 5), np.uint8) for n in range(20))
    cmp = compare([Arm(name="a"), Arm(name="b", prompt="anime")], frames).connect()
    try:
        assert wait_until(lambda: cmp.input.state == "disconnected", timeout=30)
        assert wait_until(lambda: set(cmp.state.values()) == {"disconnected"}, timeout=30)
    finally:
        cmp.disconnect()


def test_a_local_and_a_function_arm_transform_the_same_input(no_leaked_threads: None) -> None:
    def invert(frame: np.ndarray, state: GenerationState) -> np.ndarray:
        return 255 - frame

    cmp = compare([Arm(name="local"), Arm(name="fn", engine=invert)], "pattern", prompt="film noir")
    assert isinstance(cmp, Comparison) and list(cmp.arms) == ["local", "fn"]
    with cmp:
        assert wait_until(lambda: all(s == "generating" for s in cmp.state.values()), timeout=30)
        shots = cmp.snapshot(timeout=10)
        assert mean_abs_diff(shots["local"], shots["fn"]) > 20  # two engines, two outputs
        stats = cmp.stats
        assert set(stats) == {"local", "fn"}
        # Latency counts from the shared input's stamp: a figure for each arm.
        assert all(s["latency_ms_p50"] == s["latency_ms_p50"] for s in stats.values())
        # No view: the shared input sends nothing out (no copy a frame: a sweep pays none).
        assert cmp.input.state == "connected" and cmp.input.stats["fps_out"] == 0
    assert cmp.state == {"local": "disconnected", "fn": "disconnected"}
    assert cmp.input.state == "disconnected"


def test_set_reaches_every_arm_or_one_and_a_bad_value_none() -> None:
    cmp = compare(["lucy-latest", Arm(name="b", prompt="anime")], "pattern", prompt="sketch")
    assert [s.generation.prompt for s in cmp.arms.values()] == ["sketch", "anime"]
    with cmp:
        cmp.set(prompt="oil painting")
        assert [s.generation.prompt for s in cmp.arms.values()] == ["oil painting", "oil painting"]
        cmp.set(prompt="film noir", arm="b")
        assert cmp["b"].generation.prompt == "film noir"
        assert cmp["lucy-latest"].generation.prompt == "oil painting"
        versions = [s.generation.version for s in cmp.arms.values()]
        for bad in (
            {"prompt": ""},
            {"prompt": "x", "image": b"not an image"},
            {},
            {"prompt": "x", "enhance": 2},
        ):
            with pytest.raises(DecartNBError) as info:
                cmp.set(**bad)  # type: ignore[arg-type]
            assert info.value.code == ErrorCode.INVALID_INPUT
        with pytest.raises(DecartNBError) as info:
            cmp.set(prompt="x", arm="nope")
        assert info.value.code == ErrorCode.INVALID_INPUT and "'b'" in info.value.message
        assert [s.generation.version for s in cmp.arms.values()] == versions  # every arm untouched
        cmp["b"].set_prompt("anime")  # an arm is an ordinary Session
        assert cmp["b"].generation.prompt == "anime"


# -- the view -----------------------------------------------------------------------------------
def test_the_view_labels_each_arm_and_its_prompt_box_sets_all(comms: list[Any]) -> None:
    from decart_nb.widgets.compare_view import compare_view

    cmp = compare([Arm(name="a", prompt="anime"), Arm(name="b", prompt="sketch")], "pattern")
    view = compare_view(cmp)
    try:
        assert set(view.cells) == {"a", "b"}
        assert all(s.state != "disconnected" for s in cmp.arms.values())  # displaying connects
        # The page has no preview of the pattern: displayed, the shared input shows it (a copy).
        assert wait_until(lambda: cmp.input.stats["fps_out"] > 0, timeout=30)
        assert wait_until(lambda: "fps" in view.cells["a"].label.value, timeout=30)  # live figures
        assert 'data-arm="a"' in view.cells["a"].label.value and "generating" in view.cells["a"].label.value
        assert view.cells["b"].prompt.value == "sketch"
        view.prompt_all.value = "oil painting"
        assert wait_until(lambda: all(s.generation.prompt == "oil painting" for s in cmp.arms.values()))
        assert wait_until(lambda: view.cells["a"].prompt.value == "oil painting")  # boxes follow
        view.cells["b"].prompt.value = "film noir"  # one arm's own box
        assert wait_until(lambda: cmp["b"].generation.prompt == "film noir")
        assert cmp["a"].generation.prompt == "oil painting"
        view.prompt_all.value = "\x00bad"
        assert wait_until(lambda: "INVALID_INPUT" in view.note.value)  # shown, not raised
        assert cmp["a"].generation.prompt == "oil painting"
    finally:
        view.close()
        cmp.disconnect()


# -- Decart's engine: the real SDK against the fake server ---------------------------------------
@pytest.fixture
def decart_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    pytest.importorskip("decart", reason='needs pip install "decart_nb[decart]"')
    from tests.fakes.decart_server import serving

    with serving(monkeypatch) as fake:
        yield fake


@pytest.mark.webrtc
def test_decart_arms_and_a_local_one_on_one_input(decart_server: Any) -> None:
    from tests.fakes.decart_server import VALID_KEY, state_colour

    decart = {"engine": "decart", "api_key": VALID_KEY}
    arms = [
        {"model": "lucy-2.1", **decart},
        {"model": "lucy-2.5", "engine_options": {"speed": "fast"}, "prompt": "anime", **decart},
        Arm(name="here"),
    ]
    with compare(arms, "pattern", prompt="film noir") as cmp:
        assert list(cmp.arms) == ["lucy-2.1 decart", "lucy-2.5 fast decart", "here"]
        assert VALID_KEY not in repr(cmp) and VALID_KEY not in repr(cmp.specs)
        assert len(decart_server.conns) == 2
        assert {c.query["model"] for c in decart_server.conns} == {"lucy-2.1", "lucy-2.5"}

        def shows(name: str, prompt: str) -> bool:
            shot = np.asarray(cmp[name].snapshot(timeout=10)).reshape(-1, 3).mean(axis=0)
            return bool(np.abs(shot - np.array(state_colour(prompt, None))).max() < 8)

        assert wait_until(lambda: shows("lucy-2.1 decart", "film noir"), timeout=20)
        assert wait_until(lambda: shows("lucy-2.5 fast decart", "anime"), timeout=20)
        cmp.set(prompt="oil painting")  # every arm: both Decart sessions and the local one
        assert wait_until(lambda: shows("lucy-2.1 decart", "oil painting"), timeout=20)
        assert wait_until(lambda: shows("lucy-2.5 fast decart", "oil painting"), timeout=20)
        assert cmp["here"].generation.prompt == "oil painting"


# -- tracker ------------------------------------------------------------------------------------
def test_a_comparisons_tracker_logs_its_runs_and_a_bad_one_fails_at_once(tmp_path: Any) -> None:
    with pytest.raises(DecartNBError) as info:
        compare(["lucy-latest"], source="pattern", tracker="mlfloww")
    assert info.value.code == ErrorCode.INVALID_INPUT
    calls: list[tuple[str, Any]] = []

    def track(kind: str, data: Any) -> None:
        calls.append((kind, data))

    arms = [Arm(name="a"), Arm(name="b", controls={"strength": 0.5})]
    with compare(arms, source="pattern", prompt="anime", tracker=track) as cmp:
        cmp.run(["anime"], out_dir=tmp_path / "one", seconds=0, frames=2)
        cmp.run(["anime"], out_dir=tmp_path / "two", seconds=0, frames=2, tracker=None)  # this run: none
    items = [data["row"]["arm"] for kind, data in calls if kind == "item"]
    assert sorted(items) == ["a", "b"]  # one child per arm, from the first run only
    assert [kind for kind, _ in calls if kind in ("start", "end")] == ["start", "end"]
