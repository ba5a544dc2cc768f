"""pfil heads: hook semantics for the three designs, and their behaviour under concurrent change.

The concurrency test runs reader threads through ``heads.run`` while a writer thread adds,
removes and reorders hooks.  The writer keeps its own model of the head and appends the state
after each change to ``history`` (state ``k`` = after ``k`` changes).  A run that started when
``len(history)`` was ``i0`` and ended when it was ``i1`` may have seen any state from ``i0 - 1``
(the last recorded one) to ``i1`` (a change already published but not yet recorded), and nothing
else: the hooks it called, in order, must be exactly what one of those states calls for that
packet -- the hooks bound to its ifindex or unbound, up to the first that drops.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pytest

from netfast.pfil import Direction, PfilPacket, Verdict
from netfast.pfil.heads import (
    DEFAULT_IMPL,
    IMPLS,
    HookId,
    LinkedHeads,
    PfilHeads,
    RWLock,
    RwlockHeads,
    TupleHeads,
)

IN, FORWARD, OUT = Direction.IN, Direction.FORWARD, Direction.OUT


def packet(ifindex: int = 1, direction: Direction = FORWARD) -> PfilPacket:
    return PfilPacket(ifindex, direction, 0xC6120001, 0xC6130001, 17, 64, 28)


def recorder(
    calls: list[str], name: str, verdict: Verdict = Verdict.PASS
) -> Callable[[PfilPacket], Verdict]:
    def hook(pkt: PfilPacket) -> Verdict:
        calls.append(name)
        return verdict

    return hook


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- construction --


def test_constructor_picks_the_design() -> None:
    assert DEFAULT_IMPL in IMPLS
    assert PfilHeads().impl == DEFAULT_IMPL
    for cls, name in ((TupleHeads, "tuple"), (LinkedHeads, "linked"), (RwlockHeads, "rwlock")):
        heads = PfilHeads(name)
        assert type(heads) is cls and isinstance(heads, PfilHeads) and heads.impl == name
        assert type(cls()) is cls
    with pytest.raises(ValueError, match="unknown pfil implementation 'tailq'"):
        PfilHeads("tailq")
    with pytest.raises(ValueError, match="'tuple' implementation"):
        TupleHeads("linked")


# -- semantics, every design --


def test_empty_head_passes(impl: str) -> None:
    heads = PfilHeads(impl)
    for d in Direction:
        assert not heads.has_hooks(d)
        assert heads.run(d, packet(direction=d)) is Verdict.PASS


def test_hooks_run_in_order_and_first_goes_first(impl: str) -> None:
    heads = PfilHeads(impl)
    calls: list[str] = []
    heads.add_hook(FORWARD, recorder(calls, "a"))
    heads.add_hook(FORWARD, recorder(calls, "b"))
    heads.add_hook(FORWARD, recorder(calls, "z"), first=True)
    assert heads.has_hooks(FORWARD) and not heads.has_hooks(IN) and not heads.has_hooks(OUT)
    assert heads.run(FORWARD, packet()) is Verdict.PASS
    assert calls == ["z", "a", "b"]
    calls.clear()
    assert heads.run(IN, packet()) is Verdict.PASS and heads.run(OUT, packet()) is Verdict.PASS
    assert calls == []  # heads are independent


@pytest.mark.parametrize("verdict", [Verdict.DROP, Verdict.CONSUMED])
def test_drop_or_consumed_stops_the_chain(impl: str, verdict: Verdict) -> None:
    heads = PfilHeads(impl)
    calls: list[str] = []
    heads.add_hook(IN, recorder(calls, "a"))
    heads.add_hook(IN, recorder(calls, "stop", verdict))
    heads.add_hook(IN, recorder(calls, "never"))
    assert heads.run(IN, packet(direction=IN)) is verdict
    assert calls == ["a", "stop"]


def test_ifindex_binding(impl: str) -> None:
    heads = PfilHeads(impl)
    calls: list[str] = []
    heads.add_hook(OUT, recorder(calls, "any"))
    heads.add_hook(OUT, recorder(calls, "if2-drop", Verdict.DROP), ifindex=2)
    heads.add_hook(OUT, recorder(calls, "if3"), ifindex=3)
    assert heads.run(OUT, packet(1, OUT)) is Verdict.PASS
    assert calls == ["any"]
    calls.clear()
    assert heads.run(OUT, packet(2, OUT)) is Verdict.DROP
    assert calls == ["any", "if2-drop"]
    calls.clear()
    assert heads.run(OUT, packet(3, OUT)) is Verdict.PASS
    assert calls == ["any", "if3"]
    assert [h.ifindex for h in heads.hooks(OUT)] == [None, 2, 3]


def test_remove_and_reorder(impl: str) -> None:
    heads = PfilHeads(impl)
    calls: list[str] = []
    a = heads.add_hook(FORWARD, recorder(calls, "a"))
    b = heads.add_hook(FORWARD, recorder(calls, "b"))
    c = heads.add_hook(FORWARD, recorder(calls, "c"))
    heads.reorder(FORWARD, [c, a, b])
    heads.run(FORWARD, packet())
    assert calls == ["c", "a", "b"]
    assert [h.hook_id for h in heads.hooks(FORWARD)] == [c, a, b]
    heads.remove_hook(a)
    calls.clear()
    heads.run(FORWARD, packet())
    assert calls == ["c", "b"]
    heads.remove_hook(c)
    heads.remove_hook(b)
    assert not heads.has_hooks(FORWARD)
    calls.clear()
    assert heads.run(FORWARD, packet()) is Verdict.PASS and calls == []
    d = heads.add_hook(FORWARD, recorder(calls, "d"))  # a head emptied is usable again
    assert d not in (a, b, c)
    heads.run(FORWARD, packet())
    assert calls == ["d"]


def test_misuse_raises(impl: str) -> None:
    heads = PfilHeads(impl)
    a = heads.add_hook(IN, recorder([], "a"))
    b = heads.add_hook(IN, recorder([], "b"))
    other = heads.add_hook(OUT, recorder([], "o"))
    with pytest.raises(ValueError, match="permutation"):
        heads.reorder(IN, [a])
    with pytest.raises(ValueError, match="permutation"):
        heads.reorder(IN, [a, other])
    with pytest.raises(ValueError, match="permutation"):
        heads.reorder(IN, [a, a])
    heads.remove_hook(b)
    with pytest.raises(KeyError):
        heads.remove_hook(b)
    with pytest.raises(TypeError):
        heads.add_hook(IN, "not a hook")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        heads.add_hook(7, recorder([], "x"))  # type: ignore[arg-type]
    assert [h.hook_id for h in heads.hooks(IN)] == [a]


def test_nested_run_of_the_same_heads(impl: str) -> None:
    heads = PfilHeads(impl, debug=True)
    calls: list[str] = []

    def outer(pkt: PfilPacket) -> Verdict:
        calls.append("outer")
        return heads.run(OUT, packet(direction=OUT))

    heads.add_hook(IN, outer)
    heads.add_hook(IN, recorder(calls, "after"))
    heads.add_hook(OUT, recorder(calls, "inner"))
    assert heads.run(IN, packet(direction=IN)) is Verdict.PASS
    assert calls == ["outer", "inner", "after"]


# -- the linked design's reclamation --


def test_linked_hook_changing_its_own_heads_is_refused() -> None:
    heads = LinkedHeads()
    errors: list[Exception] = []

    def meddler(pkt: PfilPacket) -> Verdict:
        try:
            heads.add_hook(OUT, recorder([], "x"))
        except RuntimeError as exc:
            errors.append(exc)
        return Verdict.PASS

    heads.add_hook(IN, meddler)
    heads.run(IN, packet(direction=IN))
    assert len(errors) == 1 and "must not change" in str(errors[0])
    assert not heads.has_hooks(OUT)


def test_linked_poison_detects_a_premature_reclamation() -> None:
    """The detector the concurrency test relies on: a reclaimed node's hook counts its calls."""
    heads = LinkedHeads(debug=True)
    calls: list[str] = []
    a = heads.add_hook(IN, recorder(calls, "a"))
    node = heads._heads[IN].next  # white box: what a run standing on the node holds
    assert node is not None
    heads.remove_hook(a)
    assert heads.retired_pending == 1 and heads.reclaimed == 0
    assert heads.reclaim() == 1 and heads.reclaimed == 1 and heads.retired_pending == 0
    assert node.hook is not None
    node.hook(packet(direction=IN))  # what a reader would do had it been reclaimed too early
    assert heads.poisoned_calls == 1 and calls == []


# -- designs side by side: a run in progress while the writer changes the head --


@dataclass
class Parked:
    """A reader thread parked inside hook ``b`` of the chain a, b, c until ``go`` is set."""

    heads: PfilHeads
    calls: list[str]
    ids: dict[str, HookId]
    inside: threading.Event
    go: threading.Event
    thread: threading.Thread
    result: list[Verdict]


def park_reader(impl: str) -> Parked:
    heads = PfilHeads(impl, debug=True)
    calls: list[str] = []
    inside, go = threading.Event(), threading.Event()

    def b(pkt: PfilPacket) -> Verdict:
        calls.append("b")
        inside.set()
        assert go.wait(10)
        return Verdict.PASS

    ids = {
        "a": heads.add_hook(FORWARD, recorder(calls, "a")),
        "b": heads.add_hook(FORWARD, b),
        "c": heads.add_hook(FORWARD, recorder(calls, "c")),
    }
    result: list[Verdict] = []
    thread = threading.Thread(target=lambda: result.append(heads.run(FORWARD, packet())))
    thread.start()
    assert inside.wait(10)
    return Parked(heads, calls, dict(ids), inside, go, thread, result)


def in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def body() -> None:
        fn()
        done.set()

    t = threading.Thread(target=body)
    t.start()
    return t, done


def test_tuple_writer_never_waits_and_the_run_keeps_its_snapshot() -> None:
    p = park_reader("tuple")
    late: list[str] = []
    p.heads.add_hook(FORWARD, recorder(late, "d"))
    p.heads.remove_hook(p.ids["c"])  # both return at once, with a reader mid-run
    p.go.set()
    p.thread.join(10)
    assert p.calls == ["a", "b", "c"] and late == []  # the old tuple, whole


def test_rwlock_writer_waits_for_the_reader() -> None:
    p = park_reader("rwlock")
    late: list[str] = []
    t, done = in_thread(lambda: p.heads.add_hook(FORWARD, recorder(late, "d")))
    assert not done.wait(0.2)  # the reader holds the lock shared
    p.go.set()
    p.thread.join(10)
    t.join(10)
    assert done.is_set() and p.calls == ["a", "b", "c"] and late == []


def test_linked_run_spans_at_most_one_change_and_reclamation_waits() -> None:
    p = park_reader("linked")
    heads = p.heads
    assert isinstance(heads, LinkedHeads)
    late: list[str] = []
    heads.remove_hook(p.ids["b"])  # the node the reader stands on: unlinked, not reclaimed
    assert heads.retired_pending == 1
    t, done = in_thread(lambda: heads.add_hook(FORWARD, recorder(late, "d")))
    assert not done.wait(0.2)  # a second change must wait for the run that saw the first
    assert heads.reclaimed == 0
    p.go.set()
    p.thread.join(10)
    t.join(10)
    assert done.is_set()
    assert p.calls == ["a", "b", "c"] and late == []  # the state before the removal
    assert heads.reclaimed == 1 and heads.poisoned_calls == 0
    p.calls.clear()
    heads.run(FORWARD, packet())
    assert p.calls == ["a", "c"] and late == ["d"]


# -- the RW lock --


def test_rwlock_readers_share_and_writers_exclude() -> None:
    lock = RWLock()
    lock.acquire_read()
    lock.acquire_read()  # a second reader gets in at once

    def write_once() -> None:
        with lock.write():
            pass

    t, done = in_thread(write_once)
    assert not done.wait(0.1)
    lock.release_read()
    assert not done.wait(0.1)
    lock.release_read()
    t.join(10)
    assert done.is_set()


def test_rwlock_is_phase_fair() -> None:
    """A waiting writer holds back new readers; readers queued behind a writer go before the
    next writer (the writers among themselves are in no particular order)."""
    lock = RWLock()
    order: list[str] = []
    lock.acquire_read()

    def writer(name: str) -> None:
        lock.acquire_write()
        order.append(name)
        lock.release_write()

    def reader(name: str) -> None:
        lock.acquire_read()
        order.append(name)

    w1, w1_done = in_thread(lambda: writer("w1"))
    time.sleep(0.05)  # w1 waits for the reader
    r2, r2_in = in_thread(lambda: reader("r2"))
    assert not r2_in.wait(0.1)  # held back by the waiting writer
    w2, w2_done = in_thread(lambda: writer("w2"))
    time.sleep(0.05)
    lock.release_read()  # one writer goes, then r2 (queued behind it), then the other writer
    assert r2_in.wait(10)
    time.sleep(0.1)
    assert w1_done.is_set() != w2_done.is_set()  # the second writer waits for r2
    lock.release_read()  # r2's
    for t in (w1, r2, w2):
        t.join(10)
    assert order[1] == "r2" and sorted(order[::2]) == ["w1", "w2"]


# -- concurrency: runs see one list state, every design --

Label = int
State = tuple[Label, ...]


def expected_trace(state: State, ifindex: int, bound: dict[Label, int | None]) -> State:
    """The hooks a run over ``state`` calls for a packet from ``ifindex``: bound hooks match
    their interface, and odd labels drop (the chain stops after them)."""
    out: list[Label] = []
    for label in state:
        if bound[label] in (None, ifindex):
            out.append(label)
            if label % 2:
                break
    return tuple(out)


@dataclass(frozen=True)
class Run:
    i0: int
    i1: int
    ifindex: int
    trace: State
    verdict: Verdict


def inconsistent_runs(
    history: Sequence[State], runs: Sequence[Run], bound: dict[Label, int | None]
) -> list[Run]:
    """The runs whose trace (and verdict) is not that of any state they could have seen."""
    bad = []
    for run in runs:
        lo, hi = max(run.i0 - 1, 0), min(run.i1, len(history) - 1)
        candidates = {expected_trace(history[k], run.ifindex, bound) for k in range(lo, hi + 1)}
        dropped = bool(run.trace) and run.trace[-1] % 2 == 1
        if run.trace not in candidates or (run.verdict is Verdict.DROP) != dropped:
            bad.append(run)
    return bad


def test_the_consistency_check_can_fail() -> None:
    bound: dict[Label, int | None] = {2: None, 4: 1, 6: None, 3: None}
    history: list[State] = [(), (2,), (2, 4), (4, 2), (4, 2, 3, 6)]
    ok = Run(1, 3, 1, (2, 4), Verdict.PASS)
    mixed = Run(1, 3, 1, (4,), Verdict.PASS)  # 4 without 2: no state ever
    stale = Run(4, 5, 1, (2, 4), Verdict.PASS)  # gone before the run started
    unbound = Run(2, 2, 2, (2, 4), Verdict.PASS)  # 4 is bound to ifindex 1
    wrong_verdict = Run(4, 5, 1, (4, 2, 3), Verdict.PASS)
    dropped = Run(4, 5, 1, (4, 2, 3), Verdict.DROP)
    runs = [ok, mixed, stale, unbound, wrong_verdict, dropped]
    assert inconsistent_runs(history, runs, bound) == [mixed, stale, unbound, wrong_verdict]


READERS = 2
WRITER_SECONDS = 1.0


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Hand the GIL over every 50 us instead of 5 ms: the writer gets to change the head often,
    and runs are preempted mid-list far more often than by default."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(5e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("fast_switching")
def test_concurrent_change_every_run_sees_one_state(impl: str) -> None:
    heads = PfilHeads(impl, debug=True)
    rng = random.Random(20261125)
    tls = threading.local()
    bound: dict[Label, int | None] = {}
    hook_ids: dict[Label, HookId] = {}
    model: list[Label] = []
    history: list[State] = [()]
    stop = threading.Event()
    runs: list[list[Run]] = [[] for _ in range(READERS)]
    errors: list[BaseException] = []

    def make_hook(label: Label) -> Callable[[PfilPacket], Verdict]:
        verdict = Verdict.DROP if label % 2 else Verdict.PASS

        def hook(pkt: PfilPacket) -> Verdict:
            tls.trace.append(label)
            return verdict

        return hook

    def writer() -> None:
        try:
            next_label = 2
            deadline = time.monotonic() + WRITER_SECONDS
            while time.monotonic() < deadline:
                op = rng.random()
                if len(model) < 2 or (op < 0.45 and len(model) < 8):
                    # mostly passing hooks (even labels), so runs walk long chains
                    label = next_label + (rng.random() < 0.2)
                    next_label += 2
                    bound[label] = rng.choice([None, None, 1, 2])
                    first = rng.random() < 0.3
                    hook_ids[label] = heads.add_hook(
                        FORWARD, make_hook(label), ifindex=bound[label], first=first
                    )
                    model.insert(0 if first else len(model), label)
                elif op < 0.85:
                    label = rng.choice(model)
                    heads.remove_hook(hook_ids[label])
                    model.remove(label)
                else:
                    rng.shuffle(model)
                    heads.reorder(FORWARD, [hook_ids[x] for x in model])
                history.append(tuple(model))
                time.sleep(rng.random() * 2e-4)
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    def reader(i: int) -> None:
        try:
            out = runs[i]
            n = 0
            while not stop.is_set():
                ifindex = 1 + (n & 1)
                n += 1
                tls.trace = []
                i0 = len(history)
                verdict = heads.run(FORWARD, packet(ifindex))
                out.append(Run(i0, len(history), ifindex, tuple(tls.trace), verdict))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(READERS)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    assert [h.hook_id for h in heads.hooks(FORWARD)] == [hook_ids[x] for x in model]
    all_runs = [r for rs in runs for r in rs]
    assert len(history) > 100 and len(all_runs) > 1000
    # the runs overlapped changes and saw a variety of lists, not only the empty one
    assert sum(r.i1 > r.i0 for r in all_runs) > 10
    assert len({r.trace for r in all_runs}) > 20
    bad = inconsistent_runs(history, all_runs, bound)
    assert not bad, bad[:5]
    if isinstance(heads, LinkedHeads):
        heads.reclaim()
        assert heads.poisoned_calls == 0
        assert heads.reclaimed > 0 and heads.retired_pending == 0
