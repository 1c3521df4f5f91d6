"""Compressed responses: gzip for HTTP, permessage-deflate for kernel websockets (issue 24).

jupyter_server compresses neither. On a slow link (1 Mbit/s, a remote kernel) a notebook's first
display of the camera session then waits for about 1.1 MB of JupyterLab's lazily loaded chunks
(ipywidgets' controls, anywidget, fonts) and about 400 KB of widget state (comm_open messages:
the page script, the panel's ~120 widgets and their layouts) before the first frame can pass:
measured, 16-21 s (bench/first_visit.py). Both compress 3-10x.

- HTTP: tornado's GZipContentEncoding transform (text, JavaScript, JSON, SVG; what a browser
  accepts as gzip), added to the running application, for static files only (`StaticGZip`: a
  path with a `static/` or `extensions/` segment, where JupyterLab's chunks, styles and fonts
  are). A compressed answer that holds a secret and text an attacker chooses leaks the secret by
  its length (BREACH); the pages (the XSRF token), the API's answers (notebooks, files) can hold
  both, static files neither. Already compressed types (fonts, images) are left as they are.
- Kernel websockets: jupyter_server's handler returns `websocket_compression_options` from its
  settings (`ServerApp.websocket_compression_options`, None by default: no compression). We set
  it to deflate unless the user configured it. Jupyter's messages are JSON with repeated headers;
  the video's VP8 chunks do not shrink, but they mostly take the page socket (relay.py, never
  compressed) and, over the comm, are a few KB at a time.
"""

from __future__ import annotations

import re
from typing import Any

from tornado.httputil import HTTPServerRequest
from tornado.web import Application, GZipContentEncoding

__all__ = ["WEBSOCKET_DEFLATE", "StaticGZip", "compress_responses"]

_STATIC_PATH = re.compile(r"/(static|extensions)/")

# permessage-deflate with tornado's defaults: zlib's level 6, the whole window, context kept
# between messages (Jupyter's repeated headers then cost a few bytes each).
WEBSOCKET_DEFLATE: dict[str, Any] = {}
SETTING = "websocket_compression_options"


class StaticGZip(GZipContentEncoding):
    """gzip for static files only (see the module's docstring: no page or API answer)."""

    def __init__(self, request: HTTPServerRequest) -> None:
        super().__init__(request)
        if not _STATIC_PATH.search(request.path):
            self._gzipping = False  # the flag the base class's constructor sets from Accept-Encoding


def compress_responses(web_app: Application) -> list[str]:
    """Turn on gzip and kernel-websocket deflate on `web_app` where they are off; what was turned on
    (a user's own `websocket_compression_options` is kept)."""
    done = []
    if not any(issubclass(t, GZipContentEncoding) for t in web_app.transforms):
        web_app.add_transform(StaticGZip)
        done.append("gzip for static files")
    if web_app.settings.get(SETTING) is None:
        web_app.settings[SETTING] = dict(WEBSOCKET_DEFLATE)
        done.append("permessage-deflate on kernel websockets")
    return done
