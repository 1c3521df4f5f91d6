"""The page and the kernel agree on their messages: the page's schema tables (PAGE_MESSAGES,
KERNEL_MESSAGES in js/src/schema.ts) name the same messages with the same fields as
decart_nb/widgets/messages.py, the kernel handles every page message, and every `send(` in the
page's modules uses a schema name (TypeScript checks the fields of each: js/src/schema.ts's
PageMessage)."""

from __future__ import annotations

import re
from typing import get_type_hints

import pytest

from decart_nb.widgets import messages
from decart_nb.widgets.camera import _HANDLERS
from tests import page_bundle

PAGE_TS = page_bundle.sources()


def js_schema(name: str, source: str = PAGE_TS) -> dict[str, set[str]]:
    """An `export const NAME = schema({ type: ["field", ...], ... });` table of the page, as a dict."""
    block = re.search(rf"^export const {name} = schema\(\{{\n(.*?)\n\}}\);$", source, re.S | re.M)
    assert block, f"the page has no {name} table"
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
    """The type of each `send(...)` / `sendMedia(...)` call in the page ("" for a call without a
    literal type); the media socket's own `ws.send` (the token, framed bytes) is not a message."""
    calls = re.finditer(r"(?<!ws\.)\b(?:send|sendMedia)\((.{0,40})", PAGE_TS, re.S)
    kinds = []
    for call in calls:
        head = call.group(1)
        # A definition (`send(msg: PageMessage, ...)`, the model's `send(content: object, ...)`) or
        # a call passing a message on (`model.send(msg...)`).
        if head.startswith("msg") or re.match(r"\w+\??: ", head):
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


def test_every_send_in_the_page_uses_a_schema_name() -> None:
    sends = page_sends()
    assert {"offer", "camera", "page_stats", "camera_ended"} <= set(sends)  # one- and multi-line
    unknown = [kind for kind in sends if kind not in messages.PAGE_MESSAGES]
    assert unknown == [], f"sends without a schema type: {unknown}"


def test_the_checks_catch_a_drift() -> None:
    drifted = PAGE_TS.replace('  camera_ended: ["label"],', '  camera_ended: ["label", "when"],')
    assert drifted != PAGE_TS
    assert js_schema("PAGE_MESSAGES", drifted) != py_schema(messages.PAGE_MESSAGES)
    with pytest.raises(AssertionError):
        js_schema("NO_SUCH_TABLE")


def test_the_transport_message_says_why_not_webrtc_and_the_socket_carries_the_bufferless_messages() -> None:
    assert "reason" in py_schema(messages.PAGE_MESSAGES)["transport"]
    assert "reason" in js_schema("PAGE_MESSAGES")["transport"]
    # Every page message but a frame with its buffer can take the page socket as JSON.
    assert messages.SOCKET_TYPES == set(messages.PAGE_MESSAGES) - {"frame", "chunk"}
    assert {"offer", "stopped", "transport", "page_stats", "chunk_ack", "keyframe"} <= messages.SOCKET_TYPES
