"""The event queue: level-triggered, persistent registrations, unregister, and the kqueue cost
property (events() looks only at objects whose readiness changed or is still ready)."""

from __future__ import annotations

import pytest

from netfast.stack.kqueue import EV_EOF, EV_ERROR, READ, WRITE, EventQueue, KEvent, Watchable


class Fake(Watchable):
    """A pollable whose readiness a test sets; counts readiness() calls."""

    def __init__(self, readable: int = 0, writable: int = 0, flags: int = 0) -> None:
        self.state = (readable, writable, flags)
        self.calls = 0

    def set(self, readable: int = 0, writable: int = 0, flags: int = 0) -> None:
        self.state = (readable, writable, flags)
        self._notify()

    def readiness(self) -> tuple[int, int, int]:
        self.calls += 1
        return self.state


def pairs(events: list[KEvent]) -> set[tuple[int, int]]:
    return {(id(e.ident), e.filter) for e in events}


def test_idle_object_reports_nothing() -> None:
    q = EventQueue()
    a = Fake()
    q.register(a, READ)
    assert q.events() == []


def test_level_triggered_until_drained() -> None:
    q = EventQueue()
    a = Fake()
    q.register(a, READ, udata="a")
    a.set(readable=10)
    for _ in range(3):  # reported on every call while the condition holds
        (ev,) = q.events()
        assert ev.ident is a and ev.filter == READ and ev.data == 10 and ev.udata == "a"
    a.set(readable=0)
    assert q.events() == []
    a.set(readable=5)  # registration persisted
    assert [e.data for e in q.events()] == [5]


def test_ready_at_registration_is_reported() -> None:
    q = EventQueue()
    a = Fake(readable=3, writable=7)
    q.register(a, READ)
    q.register(a, WRITE)
    evs = q.events()
    assert {(e.filter, e.data) for e in evs} == {(READ, 3), (WRITE, 7)}


def test_one_event_per_object_and_filter() -> None:
    q = EventQueue()
    a = Fake()
    q.register(a, READ)
    q.register(a, READ, udata="again")  # updates udata, no second registration
    a.set(readable=1)
    a.set(readable=2)  # notified twice
    evs = q.events()
    assert len(evs) == 1 and evs[0].udata == "again" and evs[0].data == 2


def test_filters_separate() -> None:
    q = EventQueue()
    a = Fake()
    q.register(a, WRITE)
    a.set(readable=9)
    assert q.events() == []  # READ not registered
    a.set(readable=9, writable=4)
    assert [(e.filter, e.data) for e in q.events()] == [(WRITE, 4)]


def test_eof_and_error_fire_both_filters() -> None:
    q = EventQueue()
    a = Fake()
    q.register(a, READ)
    q.register(a, WRITE)
    a.set(flags=EV_EOF)
    evs = q.events()
    assert {e.filter for e in evs} == {READ, WRITE}
    assert all(e.flags == EV_EOF for e in evs)
    a.set(flags=EV_ERROR)
    assert all(e.flags == EV_ERROR for e in q.events())


def test_unregister() -> None:
    q = EventQueue()
    a = Fake()
    q.register(a, READ)
    q.register(a, WRITE)
    a.set(readable=1, writable=1)
    q.unregister(a, READ)
    assert [e.filter for e in q.events()] == [WRITE]
    q.unregister(a, WRITE)
    assert q.events() == []
    assert a._watchers == []  # the queue's watcher went with the last filter
    with pytest.raises(ValueError):
        q.unregister(a, READ)
    with pytest.raises(ValueError):
        q.register(a, 99)


def test_max_events_serves_everyone_in_turn() -> None:
    q = EventQueue()
    objs = [Fake() for _ in range(5)]
    for o in objs:
        q.register(o, READ)
        o.set(readable=1)
    seen: set[int] = set()
    for _ in range(3):
        evs = q.events(max_events=2)
        assert len(evs) == 2
        seen |= {id(e.ident) for e in evs}
    assert seen == {id(o) for o in objs}


def test_cost_is_active_objects_not_registrations() -> None:
    q = EventQueue()
    idle = [Fake() for _ in range(10_000)]
    for o in idle:
        q.register(o, READ)
    q.events()  # registration makes each active once: this call finds them all idle
    for o in idle:
        o.calls = 0
    busy = [Fake() for _ in range(3)]
    for o in busy:
        q.register(o, READ)
    q.events()
    for o in busy:
        o.set(readable=1)
    before = q.checks
    evs = q.events()
    assert pairs(evs) == {(id(o), READ) for o in busy}
    assert q.checks - before == 3
    # Idle objects were never asked again.
    assert sum(o.calls for o in idle) == 0
    # One of them wakes: exactly it (and the still-ready busy ones) are examined.
    idle[1234].set(readable=2)
    before = q.checks
    evs = q.events()
    assert q.checks - before == 4
    assert sum(o.calls for o in idle) == 1
    assert (id(idle[1234]), READ) in pairs(evs)
