"""Readiness reporting: what an object that can become readable or writable offers the event
queue (:mod:`netfast.stack.kqueue`).

It sits below the protocol cores' socket classes (the TCP layer's and UDP's) and the event queue
above them, so dependencies point down: a socket calls :meth:`Watchable._notify` when its
readiness may have changed; the event queue registers a watcher and asks
:meth:`Pollable.readiness` only of objects that notified.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

EV_EOF = 1
"""Readiness flag: the peer will send nothing more (or the object is closed)."""
EV_ERROR = 2
"""Readiness flag: the object has a pending error."""

__all__ = ["EV_EOF", "EV_ERROR", "Pollable", "Watchable"]


class Pollable(Protocol):
    """What the event queue needs of an object."""

    def readiness(self) -> tuple[int, int, int]:
        """``(readable, writable, flags)``: bytes (or connections) readable, bytes writable
        (0: not writable), and :data:`EV_EOF` / :data:`EV_ERROR` flags."""
        ...

    def add_watcher(self, cb: Callable[[Pollable], None]) -> None: ...

    def remove_watcher(self, cb: Callable[[Pollable], None]) -> None: ...


class Watchable:
    """Mixin keeping watcher callbacks; subclasses call :meth:`_notify` whenever their readiness
    may have changed (data in or out, state change, close).

    It needs no ``__init__`` call: the list is created on the first :meth:`add_watcher`.
    """

    _watchers: list[Callable[[Pollable], None]] | None = None

    def add_watcher(self, cb: Callable[[Pollable], None]) -> None:
        if self._watchers is None:
            self._watchers = []
        if cb not in self._watchers:
            self._watchers.append(cb)

    def remove_watcher(self, cb: Callable[[Pollable], None]) -> None:
        if self._watchers is not None and cb in self._watchers:
            self._watchers.remove(cb)

    def _notify(self) -> None:
        watchers = self._watchers
        if watchers:
            for cb in tuple(watchers):
                cb(self)  # type: ignore[arg-type]
