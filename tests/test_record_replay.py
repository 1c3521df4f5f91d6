"""Record and replay: record(what="input" | "output" | "both") keeps each frame's time, and a
recorded clip as `source=` replays the same frames at the same times (issue 23).

Every clip here is recorded by the test from a generated source whose frames carry their number
(media/stamp.py), so a frame can be told apart from its neighbours after H.264.
"""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from decart_nb import DecartNBError, ErrorCode, Session
from decart_nb.experiments import sweep
from decart_nb.media.frames import to_rgb
from decart_nb.media.stamp import read_stamp, write_stamp
from decart_nb.outputs import read_label
from decart_nb.widgets.panel import ControlPanel
from tests.helpers import wait_until

FPS = 30  # the models' rate: pattern and iterator sources run at it
BURST, PAUSE_S = 12, 0.6  # the irregular source: 12 frames at 30 fps, then a pause


def _decode(path: Path, index: int = 0) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=index))


def _times(frames: list[av.VideoFrame]) -> list[float]:
    return [float(f.pts * f.time_base) for f in frames]


def _stamp_of(frame: av.VideoFrame, flip: bool = False) -> int | None:
    y = frame.to_ndarray(format="gray")
    return read_stamp(y[:, ::-1] if flip else y)


def _black(frame: np.ndarray, state: Any) -> np.ndarray:
    return np.zeros_like(frame)


def _body(frame: av.VideoFrame) -> float:
    """The mean luma under the stamp rows (a model may copy the input's stamp: engines/base.py)."""
    return float(frame.to_ndarray(format="gray")[32:].mean())


# -- what is recorded -----------------------------------------------------------------------------
def test_both_is_one_mp4_with_the_input_as_the_model_sees_it_then_the_output(tmp_path: Path) -> None:
    with Session(source="pattern", engine=_black, mirror=True) as s:
        s.wait_until("generating")
        path = s.record(tmp_path / "both.mp4", 1.5, what="both")
    with av.open(str(path)) as container:
        streams = container.streams.video
        assert [st.metadata.get("handler_name") for st in streams] == ["input", "output"]
        assert "stream 0: input, stream 1: output" in container.metadata["description"]
        assert container.metadata["title"].startswith("Clip ")  # the label, as for the output alone
    inputs, outputs = _decode(path, 0), _decode(path, 1)
    assert len(inputs) >= 10 and len(outputs) >= 10
    # The input after mirroring (its stamp reads flipped back), the output blacked out by the model.
    stamps = [_stamp_of(f, flip=True) for f in inputs]
    assert None not in stamps[:-1] and stamps[:-1] == sorted(stamps[:-1])  # the tail repeats the last
    assert all(_body(f) > 60 for f in inputs) and all(_body(f) < 5 for f in outputs)
    # Each input frame's pts is when it arrived: the pattern makes frame n at n/30 s.
    times = _times(inputs)
    for stamp, at in zip(stamps[:-1], times[:-1], strict=True):
        assert stamp is not None and stamps[0] is not None
        assert abs((at - times[0]) - (stamp - stamps[0]) / FPS) < 0.15, (stamp, at)
    assert abs(times[-1] - 1.5) < 0.2 and abs(_times(outputs)[-1] - 1.5) < 0.2  # held to the end


def test_a_bad_what_is_refused_up_front_naming_the_choices(tmp_path: Path) -> None:
    with Session(source="pattern") as s:
        s.wait_until("generating")
        for bad in ("camera", None, 1):
            started = time.monotonic()
            with pytest.raises(DecartNBError) as info:
                s.record(tmp_path / "x.mp4", 5, what=bad)  # type: ignore[arg-type]
            assert info.value.code == ErrorCode.INVALID_INPUT
            assert "'output', 'input', 'both'" in str(info.value)
            assert time.monotonic() - started < 3  # before any frame is waited for
        assert s.state == "generating" and not (tmp_path / "x.mp4").exists()


# -- frame times ----------------------------------------------------------------------------------
def _irregular_frames(stop: threading.Event) -> Iterator[np.ndarray]:
    """Stamped frames in bursts of BURST at the source's rate, a PAUSE_S pause before each burst."""
    n = 0
    while not stop.is_set():
        if n and n % BURST == 0:
            time.sleep(PAUSE_S)
        rgb = np.full((720, 1280, 3), 90, np.uint8)
        for channel in range(3):
            write_stamp(rgb[..., channel], n)
        yield rgb
        n += 1


def _gaps(stamps: list[int | None], times: list[float]) -> tuple[list[float], list[float]]:
    """The gaps between frames n - 1 and n seen one after the other: those that end a pause (n a
    burst's first frame), and those within a burst."""
    pauses, bursts = [], []
    for (sa, a), (sb, b) in itertools.pairwise(zip(stamps, times, strict=True)):
        if sa is not None and sb == sa + 1:
            (pauses if sb % BURST == 0 else bursts).append(b - a)
    return pauses, bursts


def test_a_recording_keeps_irregular_frame_times_and_a_replay_honours_them(tmp_path: Path) -> None:
    stop = threading.Event()
    try:
        with Session(source=_irregular_frames(stop)) as s:
            s.wait_until("generating")
            clip = s.record(tmp_path / "irregular.mp4", 2.6, what="input")
    finally:
        stop.set()
    frames = _decode(clip)
    stamps, times = [_stamp_of(f) for f in frames], _times(frames)
    recorded, bursts = _gaps(stamps, times)
    assert recorded and min(recorded) >= PAUSE_S - 0.05, recorded  # the pauses are in the clip
    assert np.median(bursts) < 0.15

    seen: list[tuple[int | None, float]] = []

    def watch(frame: np.ndarray, state: Any) -> np.ndarray:
        seen.append((read_stamp(frame[..., 1]), time.perf_counter()))
        return frame

    last = max(s for s in stamps if s is not None)
    with Session(source=clip, engine=watch):
        assert wait_until(lambda: any(s == last for s, _ in seen), timeout=20)
    got_stamps, got_times = [s for s, _ in seen], [t for _, t in seen]
    replayed, bursts = _gaps(got_stamps, got_times)
    assert replayed and min(replayed) >= PAUSE_S - 0.15, replayed  # not an average rate's gap
    assert np.median(bursts) < 0.15


# -- replay ---------------------------------------------------------------------------------------
def _digest(rgb: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(rgb), digest_size=16).hexdigest()


def _replay(clip: Path, frames: int) -> list[tuple[str, float]]:
    """What a model sees of one pass of `clip`: each frame's digest and when it came."""
    seen: list[tuple[str, float]] = []

    def hash_frames(frame: np.ndarray, state: Any) -> np.ndarray:
        seen.append((_digest(frame), time.perf_counter()))
        return frame

    with Session(source=clip, engine=hash_frames) as s:
        assert wait_until(lambda: len(seen) >= frames + 3, timeout=30), len(seen)
        assert s.state == "generating"
    return seen


def _first_pass(seen: list[tuple[str, float]], order: dict[str, int]) -> dict[int, float]:
    """Clip index -> time from the first frame, until the clip starts over."""
    times: dict[int, float] = {}
    last = -1
    for digest, at in seen:
        index = order[digest]  # KeyError: a frame that is not in the clip
        if index <= last:
            break
        times[index], last = at, index
    t0 = times[min(times)]
    return {i: at - t0 for i, at in times.items()}


def test_two_replays_of_a_recording_see_the_same_frames_at_the_same_times(tmp_path: Path) -> None:
    with Session(source="pattern") as s:
        s.wait_until("generating")
        clip = s.record(tmp_path / "camera.mp4", 1.2, what="input")
    frames = _decode(clip)
    digests = [_digest(to_rgb(f)) for f in frames]
    order = {d: i for i, d in reversed(list(enumerate(digests)))}  # the first index of a digest
    at = _times(frames)

    first, second = (_first_pass(_replay(clip, len(frames)), order) for _ in range(2))
    both = sorted(set(first) & set(second))
    # Exact content: every frame a replay gave the model is a frame of the clip (else KeyError
    # above), in the clip's order. A busy machine may make the model drop some (newest wins; on
    # an idle one both see every frame), never see another or see one at another time.
    assert len(both) >= 0.5 * len(set(order.values())), (len(both), len(frames))
    start = both[0]
    for i in both:
        clip_time = at[i] - at[start]
        assert abs(first[i] - first[start] - clip_time) < 0.15, (i, first[i], clip_time)
        assert abs(second[i] - second[start] - clip_time) < 0.15, (i, second[i], clip_time)


def test_a_replay_stopped_while_it_decodes_does_not_crash(tmp_path: Path) -> None:
    """Closing the file under a decode in flight crashed the process (a segfault, 2 runs in 2)."""
    with Session(source="pattern") as s:
        s.wait_until("generating")
        clip = s.record(tmp_path / "short.mp4", 0.5, what="input")
    script = f"""
import asyncio
from pathlib import Path
from decart_nb.media.sources import FileTrack

async def main() -> None:
    for i in range(150):
        track = FileTrack(Path({str(clip)!r}), 1280, 720, 30)
        pending = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0.003 * (i % 7))
        track.stop()
        await asyncio.gather(pending, return_exceptions=True)

asyncio.run(main())
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


def test_a_sweep_replays_a_recorded_clip(tmp_path: Path) -> None:
    with Session(source="pattern") as s:
        s.wait_until("generating")
        clip = s.record(tmp_path / "take.mp4", 1.0, what="input")
    recorded = {_stamp_of(f) for f in _decode(clip)} - {None}

    def stamp(snapshot: Image.Image, row: dict[str, Any]) -> dict[str, Any]:
        return {"stamp": read_stamp(np.asarray(snapshot.convert("L")))}

    result = sweep(
        ["plain"],
        sources=[clip],
        engine=lambda frame, state: frame,
        seconds=0,
        frames=2,
        metrics=stamp,
        out_dir=tmp_path / "sweep",
    )
    assert not result.failed and len(result.rows) == 1
    row = result.rows[0]
    assert row["source"] == clip.name and row["stamp"] in recorded


# -- the panel ------------------------------------------------------------------------------------
def test_the_panels_record_camera_saves_the_input_in_out_dir_without_blocking(tmp_path: Path) -> None:
    with Session(source="pattern", engine=_black, out_dir=tmp_path) as s:
        s.wait_until("generating")
        panel: ControlPanel = s.panel
        try:
            actions = panel.actions
            actions.record_seconds.value = 1
            started = time.monotonic()
            actions.record_camera_button.click()
            assert time.monotonic() - started < 0.5  # the click returns; the kernel is not blocked
            assert actions.record_camera_button.disabled
            assert wait_until(lambda: "saved" in actions.record_camera_status.value, timeout=30)
            clips = list(tmp_path.glob("*.input.mp4"))
            assert len(clips) == 1 and str(clips[0]) in actions.record_camera_status.value
            label = read_label(clips[0])
            assert label is not None and label.kind == "clip"
            frames = _decode(clips[0])
            assert _body(frames[0]) > 60  # the pattern itself, not the blacked-out output
            assert wait_until(lambda: actions.previews.newest("clip") is not None)
            assert wait_until(lambda: not actions.record_camera_button.disabled)
        finally:
            panel.close()


def test_the_panels_record_camera_shows_a_failure_with_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def nothing_came(*_: object) -> Path:
        raise DecartNBError(ErrorCode.FRAME_TIMEOUT, "No input frame arrived while recording")

    monkeypatch.setattr("decart_nb.session_outputs.record_clip", nothing_came)
    with Session(source="pattern", out_dir=tmp_path) as s:
        s.wait_until("generating")
        panel: ControlPanel = s.panel
        try:
            actions = panel.actions
            actions.record_camera_button.click()
            assert wait_until(lambda: "FRAME_TIMEOUT" in actions.record_camera_status.value, timeout=15)
            assert "No input frame" in actions.record_camera_status.value
            assert wait_until(lambda: "FRAME_TIMEOUT" in panel.errors_box.value)  # listed too
            assert wait_until(lambda: not actions.record_camera_button.disabled)
            assert not list(tmp_path.glob("*.mp4"))
        finally:
            panel.close()
