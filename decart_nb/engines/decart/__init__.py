"""engine="decart": Decart's cloud through its Python SDK. The engine (engine.py), the receive-only
viewer behind `decart_nb.watch` (viewer.py), the SDK bundle and the key guards (sdk.py), SDK errors
to DecartNBError (errors.py); with the SDK installed only: its 0.2.x internals (hooks.py) and the
aiortc <-> LiveKit frames (livekit.py). Its time limits are in decart_nb/timeouts.py."""

from __future__ import annotations

from .engine import CODECS, OPTIONS, RESOLUTIONS, SPEEDS, DecartEngine
from .errors import translate
from .sdk import INSTALL_HINT, DecartSDK, SecretKey, load_sdk, redact, resolve_key
from .viewer import DecartViewer, watch

__all__ = [
    "CODECS",
    "INSTALL_HINT",
    "OPTIONS",
    "RESOLUTIONS",
    "SPEEDS",
    "DecartEngine",
    "DecartSDK",
    "DecartViewer",
    "SecretKey",
    "load_sdk",
    "redact",
    "resolve_key",
    "translate",
    "watch",
]
