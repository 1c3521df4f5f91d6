"""What an engine reports to the Session that runs it, as it happens."""

from __future__ import annotations

from ..errors import DecartNBError

__all__ = ["EngineEvents"]


class EngineEvents:
    """The listener an engine reports to (`Engine.listen`); this base one reports nowhere.

    Called on the media loop, or on an engine's worker thread for `error`. Only an engine with
    `owns_connection_state` reports connection changes and generation ticks.
    """

    def error(self, error: DecartNBError) -> None:
        """An asynchronous failure (shown as an `error` event and in the panel)."""

    def connection_change(self, state: str) -> None:
        """The service's own connection state ("connecting", "connected", "generating", ...)."""

    def generation_tick(self, seconds: float) -> None:
        """Billed generation time so far."""

    def queue_position(self, position: int, size: int) -> None:
        """The place in a service's queue (shown on the panel's badge)."""

    def generation_ended(self, seconds: int, reason: str) -> None:
        """The service ended the session (a time limit, out of credits)."""
