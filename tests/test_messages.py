"""The page and the kernel name the same messages: camera.js's sends are what the kernel handles,
and what the kernel sends is what camera.js handles (schema: decart_nb/widgets/messages.py)."""

from __future__ import annotations

import re
from pathlib import Path

from decart_nb.widgets import messages
from decart_nb.widgets.camera import _HANDLERS

CAMERA_JS = (Path(messages.__file__).parent / "static" / "camera.js").read_text()


def page_sends() -> set[str]:
    # `send({ type: "offer", ...` and the multi-line `send({\n  type: "camera",`
    return set(re.findall(r"send\(\{\s*type: \"([a-z_]+)\"", CAMERA_JS))


def page_handles() -> set[str]:
    return set(re.findall(r"msg\.type === \"([a-z_]+)\"", CAMERA_JS))


def test_every_message_the_page_sends_is_in_the_schema_and_handled() -> None:
    assert page_sends() == set(messages.PAGE_TYPES)
    # "frame" (a camera frame over the comm) takes the hot path before the table.
    assert set(_HANDLERS) | {"frame"} == set(messages.PAGE_TYPES)


def test_every_message_the_kernel_sends_is_handled_by_the_page() -> None:
    assert page_handles() == set(messages.KERNEL_TYPES)
    built = [
        messages.answer(1, "sdp"),
        messages.answer_error(1, {"code": "X"}),
        messages.restart(),
        messages.stop(),
        messages.output_frame(1, 2, 3),
        messages.frame_ack(1),
    ]
    assert {m["type"] for m in built} == set(messages.KERNEL_TYPES)


def test_the_patterns_find_both_kinds_of_send() -> None:
    assert {"offer", "camera", "page_stats"} <= page_sends()  # one-line and multi-line sends
