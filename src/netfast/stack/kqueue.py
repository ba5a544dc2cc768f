"""An aggregated event queue in the spirit of FreeBSD's kqueue(2) (the paper's "kqueue" section).

Contract
--------
Objects that can become readable or writable -- UDP sockets, TCP connections and listeners --
implement :class:`Pollable`: :meth:`~Pollable.readiness` reports their state *now*, and
registered watcher callbacks are called whenever that state may have changed (the
:class:`Watchable` mixin keeps the callback list).  An :class:`EventQueue` registers interest in
``(object, filter)`` pairs, which persist until :meth:`EventQueue.unregister` (kqueue's ``EV_ADD``
without ``EV_ONESHOT``).

:meth:`EventQueue.events` is level-triggered: a pair is reported on every call while its
condition holds, once per call.  Its cost is proportional to the number of *active* objects --
those whose watcher fired since they were last found idle, plus those still ready -- never to
the number of registrations.  That is the difference kqueue makes against poll(2)/select(2),
which re-examine every descriptor on every call: a watcher moves its object into the active
set, ``events`` re-checks only the active set and drops the objects no longer ready.

A filter's condition:

- :data:`READ`: ``readable > 0`` (bytes queued; for a listening TCP socket, connections ready
  to be accepted -- with an accept filter, only fully received requests) or EOF/ERROR;
- :data:`WRITE`: ``writable > 0`` (send-buffer space) or EOF/ERROR.

A returned :class:`KEvent` carries the readable or writable amount as ``data`` and the object's
:data:`EV_EOF` / :data:`EV_ERROR` flags, as ``struct kevent`` does.  Nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

# Readiness and its flags live below every protocol core that reports them (netfast.watch).
from netfast.watch import EV_EOF, EV_ERROR, Pollable, Watchable

__all__ = ["EV_EOF", "EV_ERROR", "READ", "WRITE", "EventQueue", "KEvent", "Pollable", "Watchable"]

READ = 1
WRITE = 2

_FILTERS = (READ, WRITE)


@dataclass(frozen=True, slots=True)
class KEvent:
    """One reported event (``struct kevent``): the object, the filter that fired, the readable or
    writable amount, :data:`EV_EOF` / :data:`EV_ERROR` flags and the registration's ``udata``."""

    ident: Pollable
    filter: int
    data: int
    flags: int
    udata: object


class EventQueue:
    """Registrations and the active set (see the module docstring).

    Attributes
    ----------
    checks:
        How many times :meth:`events` called an object's ``readiness()`` (what the cost
        argument is about; tests read it).
    """

    def __init__(self) -> None:
        # id(obj) -> (obj, {filter: udata}); the object is kept so its id stays unique.
        self._regs: dict[int, tuple[Pollable, dict[int, object]]] = {}
        # Insertion-ordered set of id(obj) to re-check; reported objects move to its end so a
        # small max_events still serves everyone in turn.
        self._active: dict[int, None] = {}
        self.checks = 0

    def __len__(self) -> int:
        return sum(len(f) for _, f in self._regs.values())

    def _wake(self, obj: Pollable) -> None:
        key = id(obj)
        if key in self._regs:
            self._active[key] = None

    def register(self, obj: Pollable, filter: int, udata: object = None) -> None:
        """Add (or update the ``udata`` of) interest in ``filter`` on ``obj``; it persists until
        :meth:`unregister`.  An object already ready is reported by the next :meth:`events`."""
        if filter not in _FILTERS:
            raise ValueError(f"unknown filter {filter}")
        key = id(obj)
        entry = self._regs.get(key)
        if entry is None:
            entry = (obj, {})
            self._regs[key] = entry
            obj.add_watcher(self._wake)
        entry[1][filter] = udata
        self._active[key] = None

    def unregister(self, obj: Pollable, filter: int) -> None:
        """Remove interest in ``filter`` on ``obj`` (ValueError when not registered)."""
        key = id(obj)
        entry = self._regs.get(key)
        if entry is None or filter not in entry[1]:
            raise ValueError(f"filter {filter} is not registered for {obj!r}")
        del entry[1][filter]
        if not entry[1]:
            del self._regs[key]
            self._active.pop(key, None)
            obj.remove_watcher(self._wake)

    def unregister_all(self, obj: Pollable) -> None:
        """Remove every filter of ``obj`` (no error when there is none)."""
        entry = self._regs.pop(id(obj), None)
        if entry is not None:
            self._active.pop(id(obj), None)
            obj.remove_watcher(self._wake)

    def events(self, max_events: int = 1024) -> list[KEvent]:
        """The ready ``(object, filter)`` pairs, at most ``max_events``, one event per pair.

        Only active objects are examined; an active object found not ready on any of its
        filters leaves the active set until its watcher fires again."""
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        out: list[KEvent] = []
        active = self._active
        for key in list(active):
            if len(out) >= max_events:
                break
            entry = self._regs.get(key)
            if entry is None:
                del active[key]
                continue
            obj, filters = entry
            self.checks += 1
            readable, writable, flags = obj.readiness()
            flags &= EV_EOF | EV_ERROR
            fired = False
            for filt, udata in filters.items():
                amount = readable if filt == READ else writable
                if amount > 0 or flags:
                    if len(out) >= max_events:
                        # The rest of this object's filters wait for the next call.
                        fired = True
                        break
                    out.append(KEvent(obj, filt, amount, flags, udata))
                    fired = True
            del active[key]
            if fired:
                active[key] = None  # still ready (level-triggered): re-check next time, last
        return out
