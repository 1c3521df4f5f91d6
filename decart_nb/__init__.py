"""decart_nb: realtime video models (Decart's, a local one, or yours) from Jupyter notebooks."""

from __future__ import annotations

import logging

from . import models, tokens, turn
from .arms import Arm
from .comparison import Comparison, compare
from .engines.decart import watch
from .errors import DecartNBError, ErrorCode
from .events import EventRecord, GenerationEnded, GenerationTick, QueuePosition
from .media.device import devices
from .reachability import diagnose
from .session import ConnectionState, Session
from .state import GenerationState

__version__ = "0.1.0"

__all__ = [
    "Arm",
    "Comparison",
    "ConnectionState",
    "DecartNBError",
    "ErrorCode",
    "EventRecord",
    "GenerationEnded",
    "GenerationState",
    "GenerationTick",
    "QueuePosition",
    "Session",
    "__version__",
    "compare",
    "devices",
    "diagnose",
    "models",
    "tokens",
    "turn",
    "watch",
]

# A library adds no handlers of its own: without logging configured, nothing is printed for it
# (Python's last-resort handler would otherwise print every warning to stderr).
logging.getLogger(__name__).addHandler(logging.NullHandler())
