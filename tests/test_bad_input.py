"""A table of bad calls (issue 9): each one gets a DecartNBError with the right code, the stream
keeps running and the last good state stays, in the Session and in its engine.

Choices these tables pin down (the checks live in decart_nb/checks.py and state.py):
- Flags (enhance, frame_stamps, progress) take True or False, and numpy's bool; 1, "yes", "false"
  and None are refused, as pydantic's strict mode would (a truthiness guess hides mistakes).
- Numbers (control values, seconds, timeouts) take any finite real number, numpy's included; never
  a bool, a string, NaN or infinity.
- Control characters in a prompt are refused, not stripped (the user sees the accident); tab,
  newline and carriage return are text. A lone surrogate is refused too (it cannot be sent).
- URLs (http(s), data:, file:, ...) are never fetched or decoded, as images or as sources.
- record() writes H.264 in mp4: another suffix is refused up front, before any frame is awaited.
- Session(controls=...) and ice_servers must be a dict and a list: a str is not iterated.
- sweep() checks its prompts and arguments before connecting; a bad image fails its own row (the
  sweep goes on), as its docstring says.
"""

from __future__ import annotations

import base64
import html
import io
import math
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from decart_nb import DecartNBError, ErrorCode, Session, _loop
from decart_nb.engines import LocalEngine
from decart_nb.experiments import sweep
from decart_nb.images import MAX_ARRAY_PIXELS, MAX_JPEG_PIXELS
from decart_nb.state import GenerationState
from decart_nb.widgets.panel import ControlPanel
from tests.helpers import png_bytes, png_claiming, wait_until

II, NOT_FOUND, BAD_KEY = ErrorCode.INVALID_INPUT, ErrorCode.MODEL_NOT_FOUND, ErrorCode.INVALID_API_KEY
GOOD_PROMPT = "film noir"


# -- media: generated here, never committed --------------------------------------------------
def jpeg_bytes(size: tuple[int, int] = (320, 240)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (30, 90, 200)).save(buf, format="JPEG")
    return buf.getvalue()


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
TRUNCATED_PNG = png_bytes(size=(400, 300))[:120]
TRUNCATED_JPEG = jpeg_bytes()[:400]
DATA_URL = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
HUGE_VIEW = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (20_000, 20_000, 3))  # no memory used
TEN_KB = "x" * 10_000


@dataclass(frozen=True)
class Media:
    root: Path
    folder: Path  # a directory
    text: Path  # a file that is not an image
    blocker: Path  # a file where a directory is expected

    @property
    def missing(self) -> Path:
        return self.root / "missing.png"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    root = tmp_path_factory.mktemp("bad_media")
    (root / "folder").mkdir()
    (root / "notes.txt").write_text("not an image\n")
    (root / "blocker").write_text("a file, not a folder\n")
    return Media(root, root / "folder", root / "notes.txt", root / "blocker")


# -- nothing may reach the network -----------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def network_attempts() -> Iterator[list[str]]:
    """Every name lookup or connect attempt made during this module (there must be none)."""
    attempts: list[str] = []
    real_connect = socket.socket.connect

    def refuse(what: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{what}{args!r:.80}")
            raise OSError(f"test_bad_input: no network ({what})")

        return call

    def connect(sock: socket.socket, address: Any) -> None:
        if sock.family == socket.AF_UNIX:
            real_connect(sock, address)
            return
        attempts.append(f"connect {address!r}")
        raise OSError("test_bad_input: no network (connect)")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
        mp.setattr(socket, "create_connection", refuse("create_connection"))
        mp.setattr(socket.socket, "connect", connect)
        yield attempts


# == 1. the constructor: no running session needed ============================================
def _class_not_instance() -> Any:
    return LocalEngine


CONSTRUCTOR = [
    # model
    pytest.param({"model": "lucy-9000"}, NOT_FOUND, "lucy-9000 not found", id="model-unknown"),
    pytest.param({"model": None}, NOT_FOUND, "not found", id="model-None"),
    pytest.param({"model": 123}, NOT_FOUND, "not found", id="model-int"),
    pytest.param({"model": ""}, NOT_FOUND, "Realtime models", id="model-empty"),
    # engine
    pytest.param({"engine": "gpt"}, II, "Unknown engine", id="engine-unknown"),
    pytest.param({"engine": None}, II, "Unknown engine", id="engine-None"),
    pytest.param({"engine": 123}, II, "Unknown engine", id="engine-int"),
    pytest.param({"engine": "LOCAL"}, II, "Unknown engine", id="engine-wrong-case"),
    pytest.param({"engine": _class_not_instance()}, II, "LocalEngine()", id="engine-class-not-instance"),
    pytest.param({"engine": np.zeros(3)}, II, "Unknown engine", id="engine-array"),
    # source
    pytest.param({"source": "webcam"}, II, "'camera', 'pattern'", id="source-unknown-string"),
    pytest.param({"source": "https://example.com/cam.mp4"}, II, "never fetches", id="source-https-url"),
    pytest.param({"source": "http://10.0.0.1/live"}, II, "never fetches", id="source-http-url"),
    pytest.param({"source": "MISSING"}, II, "existing file", id="source-missing-file"),
    pytest.param({"source": "FOLDER"}, II, "directory", id="source-directory"),
    pytest.param({"source": 42}, II, "Unsupported source int", id="source-int"),
    pytest.param({"source": None}, II, "Unsupported source", id="source-None"),
    pytest.param({"source": b"\x89PNG..."}, II, "Unsupported source bytes", id="source-bytes"),
    pytest.param({"source": {"frames": []}}, II, "Unsupported source dict", id="source-dict"),
    pytest.param({"source": "device:"}, II, "names no device", id="source-device-no-path"),
    pytest.param({"source": "device:video0"}, II, "absolute path", id="source-device-relative"),
    pytest.param(
        {"source": "device:/etc/hostname"}, II, "not a device under /dev", id="source-device-not-dev"
    ),
    pytest.param(
        {"source": "device:/dev/video-absent"},
        ErrorCode.CAMERA_NOT_FOUND,
        "kernel's machine",
        id="source-device-absent",
    ),
    # mirror
    pytest.param({"mirror": "sometimes"}, II, "mirror must be", id="mirror-string"),
    pytest.param({"mirror": 1}, II, "mirror must be", id="mirror-int-1"),
    pytest.param({"mirror": None}, II, "mirror must be", id="mirror-None"),
    pytest.param({"mirror": "AUTO"}, II, "mirror must be", id="mirror-wrong-case"),
    # prompt and image
    pytest.param({"prompt": ""}, II, "empty", id="prompt-empty"),
    pytest.param({"prompt": " \t\n"}, II, "empty", id="prompt-whitespace"),
    pytest.param({"prompt": 123}, II, "string, not int", id="prompt-int"),
    pytest.param({"prompt": TEN_KB}, II, "10000 characters", id="prompt-10kB"),
    pytest.param({"prompt": "noir\x00"}, II, "U+0000", id="prompt-NUL"),
    pytest.param({"image": b"junk"}, II, "not a readable", id="image-junk"),
    pytest.param({"image": "https://example.com/a.png"}, II, "never fetches", id="image-url"),
    pytest.param({"image": 42}, II, "Unsupported image type int", id="image-int"),
    # enhance
    pytest.param(
        {"prompt": "anime", "enhance": "yes"}, II, "enhance must be True or False", id="enhance-yes"
    ),
    pytest.param({"prompt": "anime", "enhance": 1}, II, "enhance must be", id="enhance-1"),
    pytest.param({"prompt": "anime", "enhance": None}, II, "enhance must be", id="enhance-None"),
    # prompts
    pytest.param({"prompts": "anime"}, II, "list of strings", id="prompts-a-string"),
    pytest.param({"prompts": 5}, II, "list of strings", id="prompts-int"),
    pytest.param({"prompts": ["anime", ""]}, II, "prompts[1]", id="prompts-with-empty"),
    pytest.param({"prompts": ["anime", None]}, II, "prompts[1]", id="prompts-with-None"),
    # controls
    pytest.param({"controls": {"strength": 2}}, II, "within [0, 1]", id="controls-out-of-range"),
    pytest.param({"controls": {"strength": "0.5"}}, II, "must be a number", id="controls-str-value"),
    pytest.param({"controls": {"strength": float("nan")}}, II, "finite", id="controls-nan"),
    pytest.param({"controls": {"no_such_knob": 1}}, II, "no control 'no_such_knob'", id="controls-unknown"),
    pytest.param({"controls": "strength=1"}, II, "must be a dict", id="controls-str"),
    pytest.param({"controls": [("strength", 1.0)]}, II, "must be a dict", id="controls-pairs"),
    # ice_servers
    pytest.param({"ice_servers": "stun:stun.example.org"}, II, "must be a list", id="ice-a-string"),
    pytest.param({"ice_servers": 5}, II, "must be a list", id="ice-int"),
    pytest.param({"ice_servers": ["http://example.com"]}, II, "stun:", id="ice-http-url"),
    pytest.param({"ice_servers": [{"url": "stun:x.org"}]}, II, "needs 'urls'", id="ice-dict-no-urls"),
    pytest.param({"ice_servers": [{"urls": "turn:x.org", "username": 7}]}, II, "username", id="ice-username"),
    pytest.param({"ice_servers": [42]}, II, "Bad ICE server", id="ice-entry-int"),
    # codec, facing_mode, frame_stamps
    pytest.param({"codec": "h265"}, II, "codec must be one of", id="codec-unknown"),
    pytest.param({"codec": "VP8"}, II, "codec must be one of", id="codec-wrong-case"),
    pytest.param({"codec": ["vp8"]}, II, "codec must be one of", id="codec-list"),
    pytest.param({"facing_mode": "front"}, II, "facing_mode must be", id="facing-unknown"),
    pytest.param({"facing_mode": None}, II, "facing_mode must be", id="facing-None"),
    pytest.param({"frame_stamps": "yes"}, II, "frame_stamps must be", id="frame-stamps-str"),
    pytest.param({"frame_stamps": 1}, II, "frame_stamps must be", id="frame-stamps-int"),
    # api_key (never a network call: nothing connects)
    pytest.param({"api_key": 123}, BAD_KEY, "must be a string", id="api-key-int-local"),
    pytest.param({"engine": "decart", "api_key": 123}, BAD_KEY, "must be a string", id="api-key-int-decart"),
    pytest.param(
        {"engine": "decart", "api_key": "   "}, BAD_KEY, "DECART_API_KEY", id="api-key-blank-decart"
    ),
    # out_dir (where snapshots and recordings are saved)
    pytest.param({"out_dir": 123}, II, "local folder path", id="out-dir-int"),
    pytest.param({"out_dir": ""}, II, "local folder path", id="out-dir-empty"),
    pytest.param({"out_dir": "https://example.com/out"}, II, "local folder path", id="out-dir-url"),
    pytest.param({"out_dir": "TEXT"}, II, "is a file, not a folder", id="out-dir-a-file"),
]


def _resolve(kwargs: dict[str, Any], media: Media) -> dict[str, Any]:
    """Table values naming test media (which exists only at run time) become paths."""
    paths = {"MISSING": media.missing, "FOLDER": media.folder, "TEXT": media.text}
    return {k: paths.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}


@pytest.mark.parametrize(("kwargs", "code", "says"), CONSTRUCTOR)
def test_bad_constructor_arguments(
    kwargs: dict[str, Any], code: str, says: str, media: Media, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DECART_API_KEY", raising=False)
    users = _loop._users
    with pytest.raises(DecartNBError) as info:
        Session(**({"source": "pattern"} | _resolve(kwargs, media)))
    assert info.value.code == code, info.value
    assert says in info.value.message, info.value.message
    assert _loop._users == users  # nothing was started


def test_good_variants_of_the_strict_arguments_are_accepted() -> None:
    """The other side of the choices: numpy bools and numbers, tab/newline in prompts."""
    s = Session(
        source="pattern",
        prompt="film noir,\n\tdusk",
        enhance=np.bool_(False),
        prompts=("anime", "noir"),
        controls={"strength": np.float32(0.5)},
        ice_servers=["stun:stun.example.org:3478", {"urls": ["turn:t.example.org"], "username": "u"}],
        mirror="auto",
        frame_stamps=False,
    )
    assert s.generation.enhance is False and s.controls == {"strength": 0.5}
    assert s.prompts == ["anime", "noir"]


# == 2. calls on one running session ==========================================================
@dataclass
class Live:
    session: Session
    good: GenerationState  # the last good state: every bad call must leave it in place
    styled: Image.Image  # a snapshot with the good state's look
    plain: Image.Image  # a snapshot without it (strength 0 returns the input)


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    s = Session(source="pattern", prompt=GOOD_PROMPT, image=png_bytes((20, 160, 220)), enhance=False)
    s.connect()
    try:
        assert wait_until(lambda: s.state == "generating", timeout=20)
        s.set_controls(strength=0.0)
        plain = s.snapshot(timeout=15)
        s.set_controls(strength=0.8)
        yield Live(s, s.generation, s.snapshot(timeout=15), plain)
    finally:
        s.disconnect()


def frames_out(s: Session) -> int:
    return int(s.stats.get("frames_out", 0))


def assert_untouched(live: Live, attempts: list[str]) -> None:
    try:
        _assert_untouched(live, attempts)
    except AssertionError:
        _restore(live)  # so that one accepted bad call does not fail every later row too
        raise


def _restore(live: Live) -> None:
    s, good = live.session, live.good
    if s.model.name != "lucy-latest":
        s.switch_model("lucy-latest")
    s.set(prompt=good.prompt, image=good.image, enhance=good.enhance)
    s.set_controls(**good.controls)
    live.good = s.generation


def _assert_untouched(live: Live, attempts: list[str]) -> None:
    """(b) state unchanged, (c) frames still flowing, (d) the engine still has the good state."""
    s, good = live.session, live.good
    assert s.generation is good  # not even replaced by an equal copy: no version was spent
    assert (s.generation.prompt, s.generation.enhance, s.generation.version) == (
        GOOD_PROMPT,
        False,
        good.version,
    )
    assert s.generation.controls == {"strength": 0.8} and s.generation.image is not None
    assert s.engine._state is good  # type: ignore[attr-defined]  # what the local engine applies
    assert s.model.name == "lucy-latest"
    count = frames_out(s)
    assert wait_until(lambda: frames_out(s) >= count + 3, timeout=15), "the stream stopped"
    assert s.state == "generating"
    assert attempts == []


Call = Callable[[Session, Media], object]

# Each row: the call, its code, words the message must hold (so a person can act on it).
SET_CALLS = [
    pytest.param(lambda s, m: s.set(), II, "At least one", id="set-nothing"),
    pytest.param(lambda s, m: s.set(prompt=123), II, "string, not int", id="set-prompt-int"),
    pytest.param(lambda s, m: s.set(prompt=["anime"]), II, "string, not list", id="set-prompt-list"),
    pytest.param(lambda s, m: s.set(prompt=b"anime"), II, "string, not bytes", id="set-prompt-bytes"),
    pytest.param(lambda s, m: s.set(prompt=""), II, "empty", id="set-prompt-empty"),
    pytest.param(lambda s, m: s.set(prompt=" \n\t "), II, "empty", id="set-prompt-whitespace"),
    pytest.param(lambda s, m: s.set(prompt=TEN_KB), II, "limit is 5000", id="set-prompt-10kB"),
    pytest.param(lambda s, m: s.set(prompt="noir\x00"), II, "U+0000 at position 4", id="set-prompt-NUL"),
    pytest.param(lambda s, m: s.set(prompt="\x1b[31mred"), II, "U+001B", id="set-prompt-escape"),
    pytest.param(lambda s, m: s.set(prompt="bell\x07"), II, "U+0007", id="set-prompt-bell"),
    pytest.param(lambda s, m: s.set(prompt="a\ud800b"), II, "lone surrogate", id="set-prompt-surrogate"),
    pytest.param(lambda s, m: s.set(prompt="anime", enhance="yes"), II, "enhance", id="set-enhance-yes"),
    pytest.param(
        lambda s, m: s.set(prompt="anime", enhance="false"), II, "enhance", id="set-enhance-false-str"
    ),
    pytest.param(lambda s, m: s.set(prompt="anime", enhance=1), II, "enhance", id="set-enhance-1"),
    pytest.param(lambda s, m: s.set(prompt="anime", enhance=None), II, "enhance", id="set-enhance-None"),
    pytest.param(lambda s, m: s.set_prompt(123), II, "string", id="set_prompt-int"),
    pytest.param(lambda s, m: s.set_prompt(""), II, "empty", id="set_prompt-empty"),
    pytest.param(lambda s, m: s.set_prompt(TEN_KB), II, "10000 characters", id="set_prompt-10kB"),
    pytest.param(lambda s, m: s.set_prompt("a\x00b"), II, "U+0000", id="set_prompt-NUL"),
    pytest.param(
        lambda s, m: s.set_prompt("anime", enhance="yes"), II, "enhance", id="set_prompt-enhance-yes"
    ),
    pytest.param(
        lambda s, m: s.set_prompt("anime", enhance=np.int64(1)), II, "enhance", id="set_prompt-enhance-npint"
    ),
]

# Images: set(image=...) and set_image(...). URLs are refused without a lookup (see network_attempts).
IMAGE_CALLS = [
    pytest.param(lambda s, m: s.set(image=b""), II, "empty", id="image-empty-bytes"),
    pytest.param(lambda s, m: s.set(image=b"not an image"), II, "not a readable", id="image-corrupt"),
    pytest.param(lambda s, m: s.set_image(TRUNCATED_PNG), II, "not a readable", id="image-truncated-png"),
    pytest.param(lambda s, m: s.set_image(TRUNCATED_JPEG), II, "not a readable", id="image-truncated-jpeg"),
    pytest.param(
        lambda s, m: s.set_image(png_claiming(100_000, 100_000)),
        II,
        f"over {MAX_JPEG_PIXELS} pixels",
        id="image-png-bomb",
    ),
    pytest.param(
        lambda s, m: s.set_image(png_claiming(20_000, 20_000)),
        II,
        f"over {MAX_JPEG_PIXELS} pixels",
        id="image-20000-png",
    ),
    pytest.param(
        lambda s, m: s.set_image(HUGE_VIEW), II, f"over {MAX_ARRAY_PIXELS} pixels", id="image-20000-array"
    ),
    pytest.param(
        lambda s, m: s.set_image(b"\x89PNG" + bytes(11 << 20)), II, "limit is 10 MB", id="image-11MB"
    ),
    pytest.param(lambda s, m: s.set_image(SVG), II, "SVG", id="image-svg"),
    pytest.param(lambda s, m: s.set_image(PDF), II, "a PDF", id="image-pdf"),
    pytest.param(
        lambda s, m: s.set_image("http://example.com/ref.png"), II, "never fetches", id="image-http-url"
    ),
    pytest.param(
        lambda s, m: s.set_image("https://example.com/ref.png"), II, "never fetches", id="image-https-url"
    ),
    pytest.param(lambda s, m: s.set_image(DATA_URL), II, "never fetches (or decodes)", id="image-data-url"),
    pytest.param(lambda s, m: s.set_image("file:///etc/hostname"), II, "URL", id="image-file-url"),
    pytest.param(lambda s, m: s.set_image(m.folder), II, "is a directory", id="image-directory"),
    pytest.param(lambda s, m: s.set_image(m.missing), II, "No image file", id="image-missing-path"),
    pytest.param(lambda s, m: s.set_image(m.text), II, "not a readable", id="image-text-file"),
    pytest.param(lambda s, m: s.set_image("x" * 5000 + ".png"), II, "image", id="image-path-too-long"),
    pytest.param(lambda s, m: s.set_image(42), II, "Unsupported image type", id="image-int"),
    pytest.param(
        lambda s, m: s.set_image(np.zeros((0, 5, 3), np.uint8)), II, "shape", id="image-empty-array"
    ),
    pytest.param(lambda s, m: s.set_image(np.zeros((4, 4, 5), np.uint8)), II, "shape", id="image-5-channels"),
    # A good image with a bad companion argument: nothing of it may be applied either.
    pytest.param(
        lambda s, m: s.set_image(png_bytes(), enhance="yes"), II, "enhance", id="set_image-enhance-yes"
    ),
    pytest.param(lambda s, m: s.set_image(png_bytes(), prompt=""), II, "empty", id="set_image-prompt-empty"),
    pytest.param(
        lambda s, m: s.set(prompt="anime", image=b"junk"),
        II,
        "not a readable",
        id="set-good-prompt-bad-image",
    ),
]

CONTROL_CALLS = [
    pytest.param(lambda s, m: s.set_controls(strength=2), II, "within [0, 1]", id="controls-above-max"),
    pytest.param(lambda s, m: s.set_controls(strength=-0.1), II, "within [0, 1]", id="controls-below-min"),
    pytest.param(lambda s, m: s.set_controls(strength=math.nan), II, "finite", id="controls-nan"),
    pytest.param(lambda s, m: s.set_controls(strength=np.nan), II, "finite", id="controls-np-nan"),
    pytest.param(lambda s, m: s.set_controls(strength=math.inf), II, "finite", id="controls-inf"),
    pytest.param(lambda s, m: s.set_controls(strength="0.5"), II, "must be a number", id="controls-str"),
    pytest.param(lambda s, m: s.set_controls(strength=True), II, "must be a number", id="controls-bool"),
    pytest.param(lambda s, m: s.set_controls(strength=None), II, "must be a number", id="controls-None"),
    pytest.param(lambda s, m: s.set_controls(no_such_knob=1), II, "no control", id="controls-unknown"),
    pytest.param(
        lambda s, m: s.set_controls(strength=0.2, no_such_knob=1),
        II,
        "no control",
        id="controls-good-and-unknown",
    ),
]

RECORD_CALLS = [
    pytest.param(lambda s, m: s.record(m.root / "c.mp4", -1), II, "seconds", id="record-negative"),
    pytest.param(lambda s, m: s.record(m.root / "c.mp4", 0), II, "seconds", id="record-zero"),
    pytest.param(lambda s, m: s.record(m.root / "c.mp4", math.nan), II, "finite", id="record-nan"),
    pytest.param(lambda s, m: s.record(m.root / "c.mp4", math.inf), II, "finite", id="record-inf"),
    pytest.param(lambda s, m: s.record(m.root / "c.mp4", "2"), II, "number", id="record-str-seconds"),
    pytest.param(lambda s, m: s.record(m.root / "c.mp4", True), II, "number", id="record-bool-seconds"),
    pytest.param(lambda s, m: s.record(m.root / "c.mp4", None), II, "number", id="record-None-seconds"),
    pytest.param(lambda s, m: s.record(m.root / "c.mp4", 1e9), II, "within", id="record-too-long"),
    pytest.param(lambda s, m: s.record(m.blocker / "c.mp4", 5), II, "Cannot write", id="record-under-a-file"),
    pytest.param(lambda s, m: s.record(m.folder, 5), II, "must end in .mp4", id="record-to-directory"),
    pytest.param(
        lambda s, m: s.record(m.root / "dir.mp4", 5), II, "is a directory", id="record-to-mp4-directory"
    ),
    pytest.param(lambda s, m: s.record(m.root / "c.avi", 5), II, "must end in .mp4", id="record-avi-suffix"),
    pytest.param(lambda s, m: s.record(m.root / "clip", 5), II, "must end in .mp4", id="record-no-suffix"),
    pytest.param(lambda s, m: s.record(123, 5), II, "local file path", id="record-int-path"),
    pytest.param(lambda s, m: s.record(5), II, "record(seconds=5)", id="record-seconds-as-path"),
    pytest.param(lambda s, m: s.record(seconds=-1), II, "seconds", id="record-to-out-dir-negative"),
    pytest.param(lambda s, m: s.record(b"c.mp4", 5), II, "local file path", id="record-bytes-path"),
    pytest.param(
        lambda s, m: s.record("https://example.com/c.mp4", 5), II, "local file path", id="record-url"
    ),
    pytest.param(
        lambda s, m: s.record("/proc/decart_nb/c.mp4", 5), II, "Cannot write", id="record-unwritable"
    ),
]

SNAPSHOT_CALLS = [
    pytest.param(lambda s, m: s.snapshot(timeout=-1), II, "timeout", id="snapshot-negative"),
    pytest.param(lambda s, m: s.snapshot(timeout=0), II, "timeout", id="snapshot-zero"),
    pytest.param(lambda s, m: s.snapshot(timeout=math.nan), II, "finite", id="snapshot-nan"),
    pytest.param(lambda s, m: s.snapshot(timeout=math.inf), II, "finite", id="snapshot-inf"),
    pytest.param(lambda s, m: s.snapshot(timeout="5"), II, "number", id="snapshot-str"),
    pytest.param(lambda s, m: s.snapshot(timeout=None), II, "number", id="snapshot-None"),
]

SWITCH_CALLS = [
    pytest.param(lambda s, m: s.switch_model("lucy-9000"), NOT_FOUND, "Realtime models", id="switch-unknown"),
    pytest.param(lambda s, m: s.switch_model(None), NOT_FOUND, "not found", id="switch-None"),
    pytest.param(lambda s, m: s.switch_model(123), NOT_FOUND, "not found", id="switch-int"),
    pytest.param(lambda s, m: s.switch_model(["lucy-2.1"]), NOT_FOUND, "not found", id="switch-list"),
]


@pytest.mark.parametrize(
    ("call", "code", "says"),
    SET_CALLS + IMAGE_CALLS + CONTROL_CALLS + RECORD_CALLS + SNAPSHOT_CALLS + SWITCH_CALLS,
)
def test_bad_calls_on_a_running_session(
    live: Live, media: Media, network_attempts: list[str], call: Call, code: str, says: str
) -> None:
    (media.root / "dir.mp4").mkdir(exist_ok=True)
    files_before = sorted(media.root.rglob("*"))
    start = time.monotonic()
    try:
        with pytest.raises(DecartNBError) as info:
            call(live.session, media)
        assert info.value.code == code, info.value
        assert says in info.value.message, info.value.message
        assert time.monotonic() - start < 10  # refused up front, not after waiting for anything
        assert sorted(media.root.rglob("*")) == files_before  # no clip or folder was left behind
    finally:
        assert_untouched(live, network_attempts)


def test_the_look_survived_the_bad_calls(live: Live) -> None:
    """After the table above, output frames still have the good state's look."""
    now = live.session.snapshot(timeout=15)
    assert _diff(live.styled, live.plain) > 10  # the look is visible in this measure at all
    assert _diff(now, live.styled) < _diff(live.styled, live.plain) / 4


def _diff(a: Image.Image, b: Image.Image) -> float:
    """Mean colour difference of the top band (colour bars: the same mean at any scroll)."""
    top = (0, 40, a.width, a.height // 3)
    ma = np.asarray(a.crop(top), np.float32).reshape(-1, 3).mean(axis=0)
    mb = np.asarray(b.crop(top), np.float32).reshape(-1, 3).mean(axis=0)
    return float(np.abs(ma - mb).sum())


# == 3. the control panel: the page's widgets fed bad values ===================================
@pytest.fixture(scope="module")
def panel(live: Live) -> Iterator[ControlPanel]:
    p = live.session.panel
    yield p
    p.close()


def _type_and_enter(panel: ControlPanel, text: str) -> None:
    panel.prompt_box.value = text
    panel.prompt_box._handle_custom_msg({"event": "submit"}, [])  # what Enter sends from the page


def _upload(panel: ControlPanel, data: bytes, name: str) -> None:
    item = {"name": name, "type": "", "size": len(data), "content": memoryview(data), "last_modified": 0}
    panel.upload.set_state({"value": [item]})  # the path a message from the page takes


PANEL_PROMPTS = [
    pytest.param(TEN_KB, "10000 characters", id="panel-prompt-10kB"),
    pytest.param("noir\x00", "U+0000", id="panel-prompt-NUL"),
    pytest.param("\x1b[2Jnoir", "U+001B", id="panel-prompt-escape"),
]


@pytest.mark.parametrize(("text", "says"), PANEL_PROMPTS)
def test_a_bad_prompt_in_the_panel_is_logged_with_its_code(
    live: Live, panel: ControlPanel, network_attempts: list[str], text: str, says: str
) -> None:
    _type_and_enter(panel, text)
    newest = f"<li><code>{II}</code> Prompt"
    assert wait_until(lambda: newest in panel.errors_box.value and says in _newest_error(panel), timeout=15)
    panel._sync(lambda: setattr(panel.prompt_box, "value", GOOD_PROMPT))  # as if typed back, unsent
    assert_untouched(live, network_attempts)


def _newest_error(panel: ControlPanel) -> str:
    value = panel.errors_box.value
    return value.split("</li>")[0] if value else ""


# Each message names the file and lists exactly the formats the picker offers (upload.ACCEPT).
PICKED = "PNG, JPEG or WebP image"
PANEL_UPLOADS = [
    pytest.param(
        b"this is not an image", "ref.png", f"ref.png is not a {PICKED} (it could not", id="upload-corrupt"
    ),
    pytest.param(b"", "empty.png", f"empty.png is not a {PICKED} (it is empty)", id="upload-empty"),
    pytest.param(
        TRUNCATED_PNG, "cut.png", f"cut.png is not a readable {PICKED} (", id="upload-truncated-png"
    ),
    pytest.param(
        TRUNCATED_JPEG, "cut.jpg", f"cut.jpg is not a {PICKED} (it could not", id="upload-header-jpeg"
    ),
    pytest.param(
        jpeg_bytes((400, 300))[:-200],
        "holiday.jpg",
        f"holiday.jpg is not a readable {PICKED}",
        id="upload-cut-jpeg",
    ),
    pytest.param(
        png_claiming(20_000, 20_000),
        "bomb.png",
        "bomb.png claims a canvas too large to decode",
        id="upload-png-bomb",
    ),
    pytest.param(SVG, "logo.svg", f"logo.svg is not a {PICKED} (it is XML (an SVG?))", id="upload-svg"),
    pytest.param(PDF, "doc.pdf", f"doc.pdf is not a {PICKED} (it is a PDF)", id="upload-pdf"),
]


@pytest.mark.parametrize(("data", "name", "says"), PANEL_UPLOADS)
def test_a_bad_upload_in_the_panel_is_explained_and_changes_nothing(
    live: Live, panel: ControlPanel, network_attempts: list[str], data: bytes, name: str, says: str
) -> None:
    thumb = panel.thumbnail.value
    _upload(panel, data, name)
    assert wait_until(lambda: II in panel.upload_message.value, timeout=10)
    assert says in html.unescape(panel.upload_message.value), panel.upload_message.value
    assert "GIF" not in panel.upload_message.value and "BMP" not in panel.upload_message.value
    assert panel.thumbnail.value == thumb  # the panel still shows (and would send) the good image
    panel.upload_message.value = ""
    assert_untouched(live, network_attempts)


def test_a_nan_control_slider_value_is_never_applied(
    live: Live, panel: ControlPanel, network_attempts: list[str]
) -> None:
    slider = panel.control_sliders["strength"]
    before = panel.errors_box.value
    slider.value = math.nan  # ipywidgets' slider takes NaN (it clamps only numbers it can compare)
    assert wait_until(lambda: panel.errors_box.value != before, timeout=10)
    assert f"<code>{II}</code> strength must be a finite number" in _newest_error(panel)
    panel._sync(lambda: setattr(slider, "value", 0.8))
    assert_untouched(live, network_attempts)


# == 4. sweep(): checked before anything connects ==============================================
SWEEP = [
    pytest.param({"prompts": []}, II, "at least one prompt", id="sweep-no-prompts"),
    pytest.param({"prompts": None}, II, "list of strings", id="sweep-prompts-None"),
    pytest.param({"prompts": 123}, II, "list of strings", id="sweep-prompts-int"),
    pytest.param({"prompts": ["anime", ""]}, II, "prompts[1]", id="sweep-empty-prompt"),
    pytest.param({"prompts": ["anime", 5]}, II, "prompts[1]", id="sweep-int-prompt"),
    pytest.param({"prompts": [TEN_KB]}, II, "10000 characters", id="sweep-10kB-prompt"),
    pytest.param({"prompts": ["noir\x00"]}, II, "U+0000", id="sweep-NUL-prompt"),
    pytest.param({"images": []}, II, "one image", id="sweep-no-images"),
    pytest.param({"enhance": "yes"}, II, "enhance", id="sweep-enhance-yes"),
    pytest.param({"seconds": "2"}, II, "seconds must be a number", id="sweep-seconds-str"),
    pytest.param({"seconds": -1}, II, "seconds must be within", id="sweep-seconds-negative"),
    pytest.param({"seconds": math.nan}, II, "finite", id="sweep-seconds-nan"),
    pytest.param({"frames": 0}, II, "frames must be within", id="sweep-frames-zero"),
    pytest.param({"frames": 1.5}, II, "whole number", id="sweep-frames-float"),
    pytest.param({"frames": True}, II, "whole number", id="sweep-frames-bool"),
    pytest.param({"record_seconds": -1}, II, "record_seconds", id="sweep-record-negative"),
    pytest.param({"record_seconds": math.inf}, II, "finite", id="sweep-record-inf"),
    pytest.param({"source": "https://example.com/v.mp4"}, II, "never fetches", id="sweep-source-url"),
    pytest.param({"source": "MISSING"}, II, "existing file", id="sweep-source-missing"),
    pytest.param({"source": "webcam"}, II, "'camera', 'pattern'", id="sweep-source-unknown"),
    pytest.param({"source": 42}, II, "Unsupported source", id="sweep-source-int"),
    pytest.param({"model": "lucy-9000"}, NOT_FOUND, "not found", id="sweep-model-unknown"),
    pytest.param({"engine": "gpt"}, II, "Unknown engine", id="sweep-engine-unknown"),
    pytest.param({"controls": {"strength": 5}}, II, "within", id="sweep-controls"),
    pytest.param({"session": "mine"}, II, "session must be a Session", id="sweep-session-str"),
    pytest.param({"progress": "yes"}, II, "progress", id="sweep-progress-str"),
    pytest.param({"out_dir": "BLOCKER"}, II, "Cannot use", id="sweep-out-dir-is-a-file"),
    pytest.param({"out_dir": "UNDER_BLOCKER"}, II, "Cannot use", id="sweep-out-dir-under-a-file"),
    pytest.param({"out_dir": None}, II, "folder path", id="sweep-out-dir-None"),
]


@pytest.mark.parametrize(("kwargs", "code", "says"), SWEEP)
def test_bad_sweep_arguments_fail_before_connecting(
    kwargs: dict[str, Any], code: str, says: str, media: Media, tmp_path: Path, network_attempts: list[str]
) -> None:
    out = tmp_path / "out"
    named = {"MISSING": media.missing, "BLOCKER": media.blocker, "UNDER_BLOCKER": media.blocker / "out"}
    args = {"prompts": ["anime"], "source": "pattern", "seconds": 0, "out_dir": out}
    args |= {k: named.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}
    users = _loop._users
    with pytest.raises(DecartNBError) as info:
        sweep(args.pop("prompts"), **args)
    assert info.value.code == code, info.value
    assert says in info.value.message, info.value.message
    assert not out.exists()  # nothing written
    assert _loop._users == users  # nothing connected
    assert media.blocker.read_text() == "a file, not a folder\n"
    assert network_attempts == []


def test_bad_images_in_a_sweep_fail_their_own_rows_and_the_rest_runs(
    tmp_path: Path, network_attempts: list[str]
) -> None:
    images = [
        png_bytes(),
        b"junk",
        "https://example.com/ref.png",
        DATA_URL,
        SVG,
        png_claiming(20_000, 20_000),
    ]
    result = sweep(["anime"], images=images, source="pattern", seconds=0, frames=2, out_dir=tmp_path)
    assert [r["error_code"] for r in result.rows] == [None] + [II] * 5
    assert result.rows[0]["frames_out"] >= 2 and Path(result.rows[0]["snapshot"]).exists()
    assert "never fetches" in result.rows[2]["error"] and "SVG" in result.rows[4]["error"]
    assert network_attempts == []
