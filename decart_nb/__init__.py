"""decart_nb: realtime video models (Decart's, a local one, or yours) from Jupyter notebooks."""

from __future__ import annotations

from . import models, tokens
from .engines.decart_viewer import watch
from .errors import DecartNBError, ErrorCode
from .events import GenerationEnded, GenerationTick, QueuePosition
from .reachability import diagnose
from .session import ConnectionState, Session
from .state import GenerationState

__version__ = "0.1.0"

__all__ = [
    "Session",
    "DecartNBError",
    "ErrorCode",
    "GenerationState",
    "GenerationTick",
    "QueuePosition",
    "GenerationEnded",
    "diagnose",
    "watch",
    "tokens",
    "ConnectionState",
    "models",
    "__version__",
]
