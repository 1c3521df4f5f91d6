"""The page and the kernel agree on their messages: camera.js's schema tables (PAGE_MESSAGES,
KERNEL_MESSAGES) name the same messages with the same fields as decart_nb/widgets/messages.py,
the kernel handles every page message, and every `send(` in camera.js uses a schema name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_type_hints

import pytest

from decart_nb.widgets import messages
from decart_nb.widgets.camera import _HANDLERS

CAMERA_JS = (Path(messages.__file__).parents[2] / "js" / "src" / "index.ts").read_text()


def js_schema(name: str, source: str = CAMERA_JS) -> dict[str, set[str]]:
    """A `const NAME = schema({ type: ["field", ...], ... });` table of camera.js, as a dict."""
    block = re.search(rf"^const {name} = schema\(\{{\n(.*?)\n\}}\);$", source, re.S | re.M)
    assert block, f"camera.js has no {name} table"
    rows = re.findall(r"^\s+(\w+): \[(.*)\],$", block.group(1), re.M)
    assert len(rows) == len(block.group(1).splitlines()), f"a row of {name} is not `type: [fields],`"
    return {kind: set(re.findall(r'"(\w+)"', fields)) for kind, fields in rows}


def py_schema(table: dict[str, type]) -> dict[str, set[str]]:
    """Each message's fields besides `type`, from its TypedDict; the TypedDict's type literal too."""
    schema = {}
    for kind, typed in table.items():
        hints = get_type_hints(typed)
        assert hints["type"].__args__ == (kind,), f"{typed.__name__} is filed under {kind!r}"
        schema[kind] = set(hints) - {"type"}
    return schema


def page_sends() -> list[str]:
    """The type of each `send(...)` / `sendMedia(...)` call in camera.js ("" for a call without a
    literal type); the media socket's own `ws.send` (the token, framed bytes) is not a message."""
    calls = re.finditer(r"(?<!ws\.)\b(?:send|sendMedia)\((.{0,40})", CAMERA_JS, re.S)
    kinds = []
    for call in calls:
        head = call.group(1)
        if head.startswith("msg"):  # the definition `send(msg, buffers)` and its model.send(msg...)
            continue
        literal = re.match(r"\{\s*type: \"(\w+)\"", head)
        kinds.append(literal.group(1) if literal else "")
    return kinds


def test_the_page_sends_the_messages_of_the_kernels_schema_with_the_same_fields() -> None:
    assert js_schema("PAGE_MESSAGES") == py_schema(messages.PAGE_MESSAGES)
    assert set(messages.PAGE_TYPES) == set(messages.PAGE_MESSAGES)


def test_the_page_handles_the_messages_the_kernel_sends_with_the_same_fields() -> None:
    assert js_schema("KERNEL_MESSAGES") == py_schema(messages.KERNEL_MESSAGES)
    built = [
        messages.answer(1, "sdp"),
        messages.answer_error(1, {"code": "X"}),
        messages.restart(),
        messages.stop(),
        messages.output_frame(1, 2, 3),
        messages.frame_ack(1),
        messages.output_chunk(1, True, 2, 3),
        messages.chunk_ack(1),
        messages.keyframe(),
        messages.media_socket(1, "t"),
        messages.ice_servers([{"urls": "stun:x.org"}]),
    ]
    assert {m["type"] for m in built} == set(messages.KERNEL_MESSAGES)
    for message in built:  # the builders fill exactly the schema's fields
        assert set(message) - {"type"} == py_schema(messages.KERNEL_MESSAGES)[message["type"]]


def test_the_kernel_handles_every_page_message() -> None:
    # "frame" and "chunk" (a camera frame over the comm) take the hot path before the table.
    assert set(_HANDLERS) | {"frame", "chunk"} == set(messages.PAGE_MESSAGES)


def test_every_send_in_camera_js_uses_a_schema_name() -> None:
    sends = page_sends()
    assert {"offer", "camera", "page_stats", "camera_ended"} <= set(sends)  # one- and multi-line
    unknown = [kind for kind in sends if kind not in messages.PAGE_MESSAGES]
    assert unknown == [], f"sends without a schema type: {unknown}"


def test_the_checks_catch_a_drift() -> None:
    drifted = CAMERA_JS.replace('  camera_ended: ["label"],', '  camera_ended: ["label", "when"],')
    assert drifted != CAMERA_JS
    assert js_schema("PAGE_MESSAGES", drifted) != py_schema(messages.PAGE_MESSAGES)
    with pytest.raises(AssertionError):
        js_schema("NO_SUCH_TABLE")


def test_the_transport_message_says_why_not_webrtc_and_the_socket_carries_the_bufferless_messages() -> None:
    assert "reason" in py_schema(messages.PAGE_MESSAGES)["transport"]
    assert "reason" in js_schema("PAGE_MESSAGES")["transport"]
    # Every page message but a frame with its buffer can take the page socket as JSON.
    assert messages.SOCKET_TYPES == set(messages.PAGE_MESSAGES) - {"frame", "chunk"}
    assert {"offer", "stopped", "transport", "page_stats", "chunk_ack", "keyframe"} <= messages.SOCKET_TYPES
