"""decart_nb_server compresses what jupyter_server sends uncompressed (issue 24's first visit): gzip on
HTTP responses (JupyterLab's lazily loaded chunks) and permessage-deflate on kernel websockets
(widget state). The same checks against a server with the extension off show what is cut.

A real JupyterLab server (harness/lab.py); the websocket is opened with tornado's client, which
offers permessage-deflate as a browser does, and the server's answer says whether it took it.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import urllib.request
from collections.abc import Iterator

import pytest
from tornado.web import Application, GZipContentEncoding
from tornado.websocket import websocket_connect

from decart_nb_server import compress_responses
from decart_nb_server.compression import StaticGZip
from harness.lab import JupyterLab

WAIT_S = 60.0  # generous: the machine is small and shared


# -- the function, on a bare tornado Application -------------------------------------------------
def test_compress_responses_turns_both_on_once() -> None:
    app = Application()
    assert GZipContentEncoding not in app.transforms
    assert compress_responses(app) == ["gzip for static files", "permessage-deflate on kernel websockets"]
    assert app.transforms.count(StaticGZip) == 1
    assert app.settings["websocket_compression_options"] == {}
    assert compress_responses(app) == []  # loaded twice: nothing added twice
    assert app.transforms.count(StaticGZip) == 1


def test_a_users_own_choices_are_kept() -> None:
    mine = {"compression_level": 1}
    app = Application(compress_response=True, websocket_compression_options=mine)
    assert compress_responses(app) == []
    assert app.settings["websocket_compression_options"] is mine
    assert app.transforms.count(GZipContentEncoding) == 1


# -- a real server -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    with JupyterLab.start(tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture(scope="module")
def plain_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    with JupyterLab.start(tmp_path_factory.mktemp("lab-plain"), server_extension=False) as server:
        yield server


def _get(lab: JupyterLab, path: str) -> tuple[str, bytes]:
    """(Content-Encoding, body as sent) of a GET that accepts gzip, as a browser's does."""
    request = urllib.request.Request(lab.url(path), headers={"Accept-Encoding": "gzip, deflate"})
    with urllib.request.urlopen(request, timeout=WAIT_S) as response:
        return str(response.headers.get("Content-Encoding") or ""), response.read()


def _lab_script(lab: JupyterLab) -> str:
    """The path of a script JupyterLab's page loads (its main bundle, under static/)."""
    encoding, body = _get(lab, "lab")
    page = gzip.decompress(body) if encoding == "gzip" else body
    found = re.search(rb'src="[^"]*?(static/[^"?]+\.js)', page)
    assert found, page[:2000]
    return found.group(1).decode()


def _deflate_offered(lab: JupyterLab) -> str:
    """The Sec-WebSocket-Extensions the server answers a kernel websocket that offers deflate with."""
    kernel = lab.api("POST", "kernels", {"name": "python3"})

    async def connect() -> str:
        ws_url = lab.url(f"api/kernels/{kernel['id']}/channels").replace("http://", "ws://")
        conn = await asyncio.wait_for(websocket_connect(ws_url, compression_options={}), WAIT_S)
        try:
            return str(conn.headers.get("Sec-WebSocket-Extensions") or "")
        finally:
            conn.close()

    try:
        return asyncio.run(connect())
    finally:
        lab.api("DELETE", f"kernels/{kernel['id']}")


def test_lab_chunks_are_gzipped(lab: JupyterLab, plain_lab: JupyterLab) -> None:
    script = _lab_script(lab)
    encoding, body = _get(lab, script)
    assert encoding == "gzip", f"{script} was sent as is"
    plain_encoding, plain = _get(plain_lab, _lab_script(plain_lab))
    assert plain_encoding == ""  # what jupyter_server does alone
    assert len(gzip.decompress(body)) > 2 * len(body), "gzip did not shrink JupyterLab's script"
    assert len(plain) > 2 * len(body)


def test_pages_and_api_answers_are_not_gzipped(lab: JupyterLab) -> None:
    """BREACH: a compressed answer holding a secret (the page's XSRF token, a notebook) and text an
    attacker chooses leaks the secret by its length; only static files are compressed."""
    encoding, page = _get(lab, "lab?reflected=" + "x" * 2000)
    assert encoding == "", "the Lab page (it holds the XSRF token) was compressed"
    assert b"<html" in page.lower()
    lab.api("PUT", "contents/secret.txt", {"type": "file", "format": "text", "content": "s3cret " * 300})
    encoding, _ = _get(lab, "api/contents/secret.txt")
    assert encoding == "", "an API answer (a user's file) was compressed"


def test_kernel_websockets_take_permessage_deflate(lab: JupyterLab, plain_lab: JupyterLab) -> None:
    assert "permessage-deflate" in _deflate_offered(lab)
    assert "permessage-deflate" not in _deflate_offered(plain_lab)


def test_the_extension_logs_what_it_compresses(lab: JupyterLab) -> None:
    log = lab.log_tail(200_000)
    assert "decart_nb_server: gzip for static files" in log
    assert "decart_nb_server: permessage-deflate on kernel websockets" in log
