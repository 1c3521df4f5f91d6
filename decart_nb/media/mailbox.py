"""A one-slot mailbox: the newest item wins, older unread items are dropped and counted."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

__all__ = ["Mailbox"]

T = TypeVar("T")


class Mailbox(Generic[T]):
    """Loop-thread only. `put` never blocks and never grows; `get` waits for the next item."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._ready = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def put(self, item: T) -> None:
        if self._item is not None:
            self.dropped += 1
        self._item = item
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def get(self) -> T:
        while self._item is None:
            if self.closed:
                raise EOFError("mailbox closed")
            self._ready.clear()
            await self._ready.wait()
        item, self._item = self._item, None
        return item
