"""One-slot mailboxes: the newest item wins, older unread items are dropped and counted."""

from __future__ import annotations

import asyncio
import threading
from typing import Generic, TypeVar

__all__ = ["Mailbox", "ThreadMailbox"]

T = TypeVar("T")


class Mailbox(Generic[T]):
    """Loop-thread only. `put` never blocks and never grows; `get` waits for the next item."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._ready = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def put(self, item: T) -> bool:
        """Store the newest item; True when it replaced one nobody had read (a drop)."""
        dropped = self._item is not None
        self.dropped += dropped
        self._item = item
        self._ready.set()
        return dropped

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    def take(self) -> T | None:
        """The unread item, if any, without waiting (it is then read)."""
        item, self._item = self._item, None
        return item

    async def get(self) -> T:
        while self._item is None:
            if self.closed:
                raise EOFError("mailbox closed")
            self._ready.clear()
            await self._ready.wait()
        item, self._item = self._item, None
        return item


class ThreadMailbox(Generic[T]):
    """The same, read by a worker thread: the loop puts, the thread blocks in `get`."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._cond = threading.Condition()
        self.dropped = 0
        self.closed = False

    def put(self, item: T) -> bool:
        with self._cond:
            dropped = self._item is not None
            self.dropped += dropped
            self._item = item
            self._cond.notify()
        return dropped

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def take(self) -> T | None:
        """The unread item, if any, without waiting (it is then read)."""
        with self._cond:
            item, self._item = self._item, None
            return item

    def get(self) -> T:
        with self._cond:
            while self._item is None:
                if self.closed:
                    raise EOFError("mailbox closed")
                self._cond.wait()
            item, self._item = self._item, None
            return item
