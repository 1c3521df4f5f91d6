"""Compressed responses: gzip for HTTP, permessage-deflate for kernel websockets (issue 24).

jupyter_server compresses neither. On a slow link (1 Mbit/s, a remote kernel) a notebook's first
display of the camera session then waits for about 1.1 MB of JupyterLab's lazily loaded chunks
(ipywidgets' controls, anywidget, fonts) and about 400 KB of widget state (comm_open messages:
the page script, the panel's ~120 widgets and their layouts) before the first frame can pass:
measured, 16-21 s (bench/first_visit.py). Both compress 3-10x.

- HTTP: tornado's GZipContentEncoding transform (text, JavaScript, JSON, SVG; what a browser
  accepts as gzip), the same as tornado's own `compress_response` setting, added to the running
  application. Already compressed types (fonts, images) are left as they are.
- Kernel websockets: jupyter_server's handler returns `websocket_compression_options` from its
  settings (`ServerApp.websocket_compression_options`, None by default: no compression). We set
  it to deflate unless the user configured it. Jupyter's messages are JSON with repeated headers;
  the video's VP8 chunks do not shrink, but they mostly take the page socket (relay.py, never
  compressed) and, over the comm, are a few KB at a time.
"""

from __future__ import annotations

from typing import Any

from tornado.web import Application, GZipContentEncoding

__all__ = ["WEBSOCKET_DEFLATE", "compress_responses"]

# permessage-deflate with tornado's defaults: zlib's level 6, the whole window, context kept
# between messages (Jupyter's repeated headers then cost a few bytes each).
WEBSOCKET_DEFLATE: dict[str, Any] = {}
SETTING = "websocket_compression_options"


def compress_responses(web_app: Application) -> list[str]:
    """Turn on gzip and kernel-websocket deflate on `web_app` where they are off; what was turned on
    (a user's own `websocket_compression_options` is kept)."""
    done = []
    if GZipContentEncoding not in web_app.transforms:
        web_app.add_transform(GZipContentEncoding)
        done.append("gzip for HTTP responses")
    if web_app.settings.get(SETTING) is None:
        web_app.settings[SETTING] = dict(WEBSOCKET_DEFLATE)
        done.append("permessage-deflate on kernel websockets")
    return done
