"""One vocabulary (issue 22): the transport is webrtc|codec|jpeg and the pipe comm|socket, in the
user's option, the page's messages, `stats` and the figures; the older spellings still work for
one release ("comm" as the user's option means "codec", with a FutureWarning; "comm" from an
older page means "jpeg")."""

from __future__ import annotations

import importlib
import warnings

import pytest

from decart_nb import Session
from decart_nb.figures import figures
from decart_nb.widgets.camera import TRANSPORTS
from decart_nb.widgets.codec_link import CodecLink
from decart_nb.widgets.frame_link import FrameLink
from decart_nb.widgets.jpeg_link import JpegLink
from tests.helpers import wait_until
from tests.test_widget import RecordingComm, comm_of, comms

__all__ = ["comms"]  # the recording-comm fixture, shared with test_widget.py


def test_the_links_are_named_for_their_transport() -> None:
    assert TRANSPORTS == ("auto", "webrtc", "codec", "jpeg")
    assert (JpegLink.name, CodecLink.name) == ("jpeg", "codec")
    assert issubclass(JpegLink, FrameLink) and issubclass(CodecLink, FrameLink)
    for old in ("comm_transport", "codec_transport"):  # no shims left behind
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"decart_nb.widgets.{old}")


def test_the_old_option_comm_means_codec_with_a_warning_at_the_users_line(
    comms: list[RecordingComm],
) -> None:
    s = Session(source="pattern")
    try:
        widget = s.widget
        rec = comm_of(widget, comms)
        with pytest.warns(FutureWarning, match='transport="codec"') as caught:
            widget.transport = "comm"
        assert caught[0].filename == __file__  # attributed to the user's line, not traitlets'
        assert widget.transport == "codec"
        assert rec.updates("transport")[-1] == "codec"  # the page reads the new spelling
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            widget.transport = "jpeg"  # the new names warn about nothing
            widget.transport = "codec"
        with pytest.raises(Exception, match="transport"):
            widget.transport = "vp8"
    finally:
        s.widget.close()
        s.disconnect()


def test_an_older_pages_comm_is_the_jpeg_link(comms: list[RecordingComm]) -> None:
    with Session(source="pattern") as s:
        rec = comm_of(s.widget, comms)
        rec.from_page({"type": "transport", "transport": "comm"})
        assert s.widget.active_transport == "jpeg"
        assert wait_until(lambda: any(c.get("type") == "frame" for c, _ in list(rec.binary)), timeout=10)
        assert isinstance(s.widget._comm, JpegLink)
        assert s.stats["transport"] == "jpeg"
        assert "pipe" not in s.stats  # the JPEG link reports no pipe, as before
        s.widget.close()


def test_the_codec_links_pipe_is_in_stats_under_its_new_name_and_the_old(
    comms: list[RecordingComm],
) -> None:
    with Session(source="pattern") as s:
        rec = comm_of(s.widget, comms)
        rec.from_page({"type": "transport", "transport": "codec", "codec": "vp8"})
        assert s.widget.active_transport == "codec"
        assert wait_until(lambda: s.stats.get("pipe") == "comm", timeout=10), s.stats
        assert s.stats["transport_pipe"] == "comm"  # deprecated, for one release
        s.widget.close()


@pytest.mark.parametrize(
    ("transport", "pipe", "label"),
    [
        ("webrtc", None, "WebRTC"),
        ("codec", "comm", "comm (VP8)"),
        ("codec", "socket", "media socket (VP8)"),
        ("jpeg", None, "comm (JPEG)"),  # the label users read stays as it was
    ],
)
def test_the_link_figure_keeps_the_labels_users_read(transport: str, pipe: str | None, label: str) -> None:
    stats: dict[str, object] = {"state": "generating", "transport": transport}
    if pipe is not None:
        stats["pipe"] = pipe
    link = next(f for f in figures(stats) if f.name == "link")
    assert link.value == label
