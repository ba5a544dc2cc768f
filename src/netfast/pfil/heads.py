"""PFIL hook lists: heads per intercept point, hooks chained on them, readers without locks.

The paper ("Firewalling", Oppermann) describes FreeBSD's PFIL hooks as a TAILQ protected by "a
global, multi reader / single writer lock" taken for every packet, and its replacement by "a
lock-free but SMP safe function pointer list featuring atomic writes for changes making read
locks unnecessary.  Currently two implementations are proposed and performance tests will
determine which one will be used."  This module holds all three, behind one interface
(docs/ROUTER.md, "pfil"), and ``netfast bench pfil`` (:mod:`netfast.bench.pfil`) measures them.

Contract
--------
``PfilHeads(impl=...)`` has one head per :class:`~netfast.pfil.Direction` (IN, FORWARD, OUT).
``add_hook`` / ``remove_hook`` / ``reorder`` may be called while other threads run packets;
writers serialize on one lock.  ``run(direction, pkt)`` calls the head's hooks in order -- a hook
bound to an ifindex only for packets with that ``pkt.ifindex`` -- until one returns DROP or
CONSUMED, and returns that verdict (PASS if none does).  An empty head costs one check, and
``has_hooks`` lets a caller skip building the :class:`~netfast.pfil.PfilPacket` altogether.

Every run sees *one* list: the hooks it calls, in order, are a prefix (up to the first non-PASS
verdict) of the filtered list of some state the head had during the run -- never a mix of two.
A hook must not change the heads it runs on (the linked design detects it and raises).

The three designs
-----------------
``"tuple"``
    Each head is an immutable tuple of ``(hook, ifindex)`` pairs.  The writer builds the new
    tuple under the writer lock and publishes it with one reference store (a list item store,
    atomic in CPython).  A reader loads the reference once and iterates a frozen snapshot; old
    tuples are reclaimed by reference counting when the last reader drops them -- the runtime
    does the grace period.
``"linked"``
    Each head is a sentinel node of a singly linked list of hook nodes, changed in place with
    single stores in the right order: an insert writes the new node's ``next`` first and then
    the predecessor's ``next``; a removal points the predecessor's ``next`` past the node.  A
    reorder builds a fresh chain off-line and swaps it in with one store of the sentinel's
    ``next``.  Unlinked nodes go to a retire list and are reclaimed (references dropped; in
    debug mode the hook is replaced by a poison that counts calls) only after a grace period.
    Grace periods use epoch slots, one per reader thread, as :mod:`netfast.route.stride` does:
    a run stores the current epoch in its thread's slot before it loads the first pointer and
    clears it after its last load; each change is tagged with the epoch ``E`` current at its
    store, and the epoch is then incremented.  Every bytecode here runs under the GIL, so loads
    and stores are sequentially consistent, and a run that could have loaded a pointer before
    a change's store published a slot value ``<= E`` before it did so (it read the epoch
    earlier still).  A node retired at ``E`` is therefore reclaimed only once no slot holds a
    value in ``1..E``.  A reader that read the epoch but was preempted before publishing it
    does all its loads after publishing, hence after any store the writer made meanwhile: it
    never sees the retired node (and its stale slot value only delays reclamation).
    In-place changes alone would let a long run see the state after one change in the part of
    the list it has not walked yet and the state before another in the part it has (two inserts
    in different places make a list that never existed).  So a writer, before making a change,
    waits out the grace period of the *previous* change: no run then spans two change stores,
    and a run sees the list before or after the one change it overlaps.  Under normal churn
    that grace period has long elapsed and the wait costs one scan of the slots.
``"rwlock"``
    The old design: each head is a list changed in place under a fair readers-writer lock
    (:class:`RWLock`), which every run takes shared.

Choice of the default
---------------------
``DEFAULT_IMPL`` is the measured winner of ``netfast bench pfil`` (see :mod:`netfast.bench.pfil`
for what the measurement can and cannot show under CPython's GIL).

Measurement of 2026-11-25 (``netfast bench pfil``, CPython 3.11.7, 2 shared cores, 1.5 s per
figure as the best of 3 interleaved rounds; runs/s summed over the reader threads; churn: a hook
added or removed every 1000 us on the same head, 450-465 changes/s achieved with one reader,
85-175 with two):

=====  =======  =================================  ===============================
hooks  readers  no churn: tuple / linked / rwlock  churn: tuple / linked / rwlock
=====  =======  =================================  ===============================
    1        1  7.72M / 5.37M / 2.09M              6.19M / 4.32M / 1.93M
    1        2  7.60M / 5.45M / 2.16M              6.20M / 4.55M / 1.91M
    3        1  3.43M / 2.52M / 1.56M              3.01M / 2.17M / 1.43M
    3        2  3.51M / 2.54M / 1.56M              3.03M / 2.18M / 1.41M
   10        1  1.31M / 1.02M / 0.88M              1.22M / 0.99M / 0.82M
   10        2  1.28M / 1.03M / 0.91M              1.22M / 0.95M / 0.82M
=====  =======  =================================  ===============================

``"tuple"`` was fastest in all 12 configurations: geometric mean 2.22x the rwlock design, the
linked design 1.64x (score relative to the best per configuration: tuple 1.00, linked 0.74,
rwlock 0.45).  The linked design pays per run for its epoch slot (a thread-local lookup and two
stores) and per hook for attribute loads where the tuple design unpacks pairs; the rwlock design
pays two mutex round trips per run, which dominates with few hooks (tuple 3.5-3.7x faster at one
hook) and fades as hook work grows (1.4-1.5x at ten).  The tuple design's writers also never wait
for readers or grace periods.  Hence ``DEFAULT_IMPL = "tuple"``.  Under the GIL the figures
show per-packet synchronization cost, not the cache-line traffic the paper argues about (see
:mod:`netfast.bench.pfil`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, NewType

from netfast.pfil import BatchHook, Direction, PfilPacket, Verdict
from netfast.sync import ReaderSlots

__all__ = [
    "DEFAULT_IMPL",
    "IMPLS",
    "Hook",
    "HookId",
    "HookInfo",
    "LinkedHeads",
    "PfilHeads",
    "RWLock",
    "RwlockHeads",
    "TupleHeads",
]

Hook = Callable[[PfilPacket], Verdict]
HookId = NewType("HookId", int)

#: The implementations, in the order the benchmark reports them.
IMPLS = ("tuple", "linked", "rwlock")
#: The measured winner (see the module docstring).
DEFAULT_IMPL = "tuple"

_PASS = Verdict.PASS
_Chain = tuple[tuple[Hook, int | None], ...]


@dataclass(frozen=True, slots=True)
class HookInfo:
    """A hook as registered: what :meth:`PfilHeads.hooks` reports."""

    hook_id: HookId
    direction: Direction
    hook: Hook
    ifindex: int | None
    #: The hook's batch form when it is a :class:`~netfast.pfil.BatchHook`, else None.
    batch: BatchHook | None = None


class PfilHeads:
    """The pfil heads of one router: ``PfilHeads(impl=...)`` returns the chosen implementation.

    Parameters
    ----------
    impl
        ``"tuple"``, ``"linked"`` or ``"rwlock"`` (see the module docstring); ``None`` means
        :data:`DEFAULT_IMPL`, the measured winner.
    debug
        Linked design only: poison reclaimed nodes and count calls of poisoned hooks
        (``poisoned_calls``).  The other designs have nothing they reclaim themselves.
    """

    impl: ClassVar[str] = ""

    def __new__(cls, impl: str | None = None, *, debug: bool = False) -> PfilHeads:
        target: type[PfilHeads] = cls
        if cls is PfilHeads:
            name = DEFAULT_IMPL if impl is None else impl
            if name not in _REGISTRY:
                raise ValueError(f"unknown pfil implementation {name!r}; choose from {IMPLS}")
            target = _REGISTRY[name]
        return object.__new__(target)

    def __init__(self, impl: str | None = None, *, debug: bool = False) -> None:
        if impl is not None and impl != self.impl:
            raise ValueError(f"{type(self).__name__} is the {self.impl!r} implementation")
        self.debug = debug
        self._lock = threading.Lock()  # the one writer lock
        self._entries: list[list[HookInfo]] = [[] for _ in Direction]  # the writer's model
        self._direction_of: dict[HookId, Direction] = {}
        self._next_id = 1

    # -- the writer side, shared: validation and the writer's own model of each head --
    def add_hook(
        self,
        direction: Direction,
        hook: Hook,
        *,
        ifindex: int | None = None,
        first: bool = False,
    ) -> HookId:
        """Append ``hook`` to the head (or put it first); returns its id.

        ``ifindex`` binds the hook to packets with that ``pkt.ifindex``."""
        d = Direction(direction)
        if not callable(hook):
            raise TypeError(f"a pfil hook must be callable, got {hook!r}")
        with self._lock:
            self._writer_enter()
            hook_id = HookId(self._next_id)
            self._next_id += 1
            batch = hook if isinstance(hook, BatchHook) else None
            info = HookInfo(hook_id, d, hook, ifindex, batch)
            entries = self._entries[d]
            index = 0 if first else len(entries)
            entries.insert(index, info)
            self._direction_of[hook_id] = d
            self._insert(d, index, info)
        return hook_id

    def remove_hook(self, hook_id: HookId) -> None:
        """Remove a hook; runs already past it or holding the old list may still call it once."""
        with self._lock:
            if hook_id not in self._direction_of:
                raise KeyError(f"no pfil hook with id {hook_id}")
            self._writer_enter()
            d = self._direction_of.pop(hook_id)
            entries = self._entries[d]
            index = next(i for i, e in enumerate(entries) if e.hook_id == hook_id)
            info = entries.pop(index)
            self._remove(d, index, info)

    def reorder(self, direction: Direction, hook_ids: Sequence[HookId]) -> None:
        """Give the head's hooks a new order: ``hook_ids`` must be a permutation of them."""
        d = Direction(direction)
        with self._lock:
            entries = self._entries[d]
            by_id = {e.hook_id: e for e in entries}
            if len(hook_ids) != len(entries) or set(hook_ids) != set(by_id):
                have = [e.hook_id for e in entries]
                raise ValueError(
                    f"reorder of the {d.name} head needs a permutation of {have}, "
                    f"got {list(hook_ids)}"
                )
            self._writer_enter()
            entries[:] = [by_id[i] for i in hook_ids]
            self._replace(d)

    def hooks(self, direction: Direction) -> tuple[HookInfo, ...]:
        """The head's hooks in order, as the writer last set them."""
        with self._lock:
            return tuple(self._entries[Direction(direction)])

    def _chain(self, direction: Direction) -> _Chain:
        return tuple((e.hook, e.ifindex) for e in self._entries[direction])

    # -- what each design implements (the writer hooks are called with self._lock held) --
    def run(self, direction: Direction, pkt: PfilPacket) -> Verdict:
        """Run the head's hooks in order until one returns DROP or CONSUMED; that verdict or
        PASS."""
        raise NotImplementedError

    def has_hooks(self, direction: Direction) -> bool:
        """Whether the head has any hook (one check; a caller may skip the packet view)."""
        raise NotImplementedError

    def _writer_enter(self) -> None:
        """Called before a change is made: a design's chance to refuse it or to wait."""

    def _insert(self, d: Direction, index: int, info: HookInfo) -> None:
        raise NotImplementedError

    def _remove(self, d: Direction, index: int, info: HookInfo) -> None:
        raise NotImplementedError

    def _replace(self, d: Direction) -> None:
        raise NotImplementedError


# -- (1) immutable tuples behind one reference --------------------------------------------


class TupleHeads(PfilHeads):
    """Copy-on-write tuples: one reference store per change, one reference load per run."""

    impl = "tuple"

    def __init__(self, impl: str | None = None, *, debug: bool = False) -> None:
        super().__init__(impl, debug=debug)
        self._chains: list[_Chain] = [() for _ in Direction]

    def run(self, direction: Direction, pkt: PfilPacket) -> Verdict:
        chain = self._chains[direction]  # the one load; the tuple never changes afterwards
        if not chain:
            return _PASS
        ifindex = pkt.ifindex
        for hook, bound in chain:
            if bound is None or bound == ifindex:
                verdict = hook(pkt)
                if verdict:  # PASS is 0
                    return verdict
        return _PASS

    def has_hooks(self, direction: Direction) -> bool:
        return bool(self._chains[direction])

    def _publish(self, d: Direction) -> None:
        self._chains[d] = self._chain(d)  # the one store readers can observe

    def _insert(self, d: Direction, index: int, info: HookInfo) -> None:
        self._publish(d)

    def _remove(self, d: Direction, index: int, info: HookInfo) -> None:
        self._publish(d)

    def _replace(self, d: Direction) -> None:
        self._publish(d)


# -- (2) a linked list changed by single stores, epochs for reclamation ---------------------


class _Node:
    __slots__ = ("hook", "ifindex", "next")

    hook: Hook | None  # None only in a sentinel (or a reclaimed node outside debug mode)
    ifindex: int | None
    next: _Node | None

    def __init__(self, hook: Hook | None, ifindex: int | None, nxt: _Node | None) -> None:
        self.hook = hook
        self.ifindex = ifindex
        self.next = nxt


class LinkedHeads(PfilHeads):
    """Singly linked hook nodes changed by ordered single stores; epoch-based reclamation.

    Attributes
    ----------
    reclaimed
        Nodes reclaimed after their grace period.
    poisoned_calls
        Debug mode: calls of a reclaimed node's hook (any is a reclamation bug).
    """

    impl = "linked"

    def __init__(self, impl: str | None = None, *, debug: bool = False) -> None:
        super().__init__(impl, debug=debug)
        # sentinels: an insert at the front is a store into the sentinel's next, like any other
        self._heads = [_Node(None, None, None) for _ in Direction]
        self._epoch = 1
        self._readers = ReaderSlots()
        # per reader thread: epoch of its run in progress, or 0 (stored directly on the hot path)
        self._slots = self._readers.values
        self._tls = self._readers.local
        self._retired: deque[tuple[int, _Node]] = deque()  # (epoch of the unlinking store, node)
        self._last_change = 0  # epoch of the last change store
        self.reclaimed = 0
        self.poisoned_calls = 0

    # -- readers --
    def run(self, direction: Direction, pkt: PfilPacket) -> Verdict:
        head = self._heads[direction]
        if head.next is None:  # the emptiness check; the pointer is not followed
            return _PASS
        try:
            slot = self._tls.slot
        except AttributeError:
            slot = self._new_slot()
        slots = self._slots
        outer = slots[slot]  # nonzero in a nested run: keep the older, safer epoch
        slots[slot] = outer or self._epoch
        try:
            node: _Node | None = head.next  # the first load after publication
            ifindex = pkt.ifindex
            while node is not None:
                bound = node.ifindex
                if bound is None or bound == ifindex:
                    verdict = node.hook(pkt)  # type: ignore[misc]  # only sentinels hold None
                    if verdict:
                        return verdict
                node = node.next
            return _PASS
        finally:
            slots[slot] = outer

    def has_hooks(self, direction: Direction) -> bool:
        return self._heads[direction].next is not None

    def _new_slot(self) -> int:
        """This thread's epoch slot (allocated on first use, released when the thread ends)."""
        return self._readers.slot()

    # -- writer (self._lock held) --
    def _writer_enter(self) -> None:
        slot = getattr(self._tls, "slot", None)
        if slot is not None and self._slots[slot]:
            raise RuntimeError("a pfil hook must not change the heads it runs on")
        # no run may span two change stores: wait out the previous change's grace period
        self._wait_for_readers(self._last_change)
        self._reclaim()

    def _changed(self, *unlinked: _Node) -> None:
        """Called right after a change store: retire what it unlinked, advance the epoch."""
        epoch = self._epoch
        for node in unlinked:
            self._retired.append((epoch, node))
        self._last_change = epoch
        self._epoch = epoch + 1

    def _readers_before(self, epoch: int) -> bool:
        return any(0 < s <= epoch for s in self._slots)

    def _wait_for_readers(self, epoch: int) -> None:
        """Wait until no run that published an epoch ``<= epoch`` is still in progress."""
        spins = 0
        while self._readers_before(epoch):
            # sleep releases the GIL so the readers can finish; back off if they are slow
            time.sleep(0 if spins < 16 else min(1e-3 * (spins - 15), 0.01))
            spins += 1

    def _reclaim(self) -> int:
        active = self._readers.active()
        horizon = min(active) if active else self._epoch
        n = 0
        while self._retired and self._retired[0][0] < horizon:
            _, node = self._retired.popleft()
            node.hook = self._poisoned if self.debug else None
            node.ifindex = None  # a poisoned hook must be called, whatever the packet
            node.next = None
            n += 1
        self.reclaimed += n
        return n

    def _poisoned(self, pkt: PfilPacket) -> Verdict:
        self.poisoned_calls += 1
        return _PASS

    def reclaim(self) -> int:
        """Wait for the readers that could still see retired nodes, reclaim them; how many."""
        with self._lock:
            self._wait_for_readers(self._epoch - 1)
            return self._reclaim()

    @property
    def retired_pending(self) -> int:
        return len(self._retired)

    def _node_before(self, d: Direction, index: int) -> _Node:
        """The node whose ``next`` is position ``index`` of the head (the sentinel for 0)."""
        pred = self._heads[d]
        for _ in range(index):
            nxt = pred.next
            assert nxt is not None
            pred = nxt
        return pred

    def _insert(self, d: Direction, index: int, info: HookInfo) -> None:
        pred = self._node_before(d, index)
        node = _Node(info.hook, info.ifindex, pred.next)  # the new node's next first ...
        pred.next = node  # ... then the one store that publishes it
        self._changed()

    def _remove(self, d: Direction, index: int, info: HookInfo) -> None:
        pred = self._node_before(d, index)
        node = pred.next
        assert node is not None and node.hook is info.hook
        pred.next = node.next  # the one store; node.next stays intact for runs standing on it
        self._changed(node)

    def _replace(self, d: Direction) -> None:
        head = self._heads[d]
        old: list[_Node] = []
        node = head.next
        while node is not None:
            old.append(node)
            node = node.next
        first: _Node | None = None
        for e in reversed(self._entries[d]):  # a fresh chain, unpublished until ...
            first = _Node(e.hook, e.ifindex, first)
        head.next = first  # ... this one store
        self._changed(*old)


# -- (3) the old design: a list under a readers-writer lock --------------------------------


class RWLock:
    """A fair (phase-fair) readers-writer lock built from a mutex and a condition variable.

    Readers share the lock; a writer has it alone.  A waiting writer stops new readers from
    entering (no writer starvation), and the readers that queued behind a writer are all let in
    when it releases, before any further writer (no reader starvation).
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0  # holding the lock shared (including those admitted by a writer)
        self._writer = False
        self._writers_waiting = 0
        self._readers_waiting = 0
        self._phase = 0  # incremented by every write release

    def acquire_read(self) -> None:
        with self._mutex:
            if not self._writer and not self._writers_waiting:
                self._readers += 1
                return
            self._readers_waiting += 1
            phase = self._phase
            while self._phase == phase:
                self._cond.wait()
            # the releasing writer counted this reader in self._readers

    def release_read(self) -> None:
        with self._mutex:
            self._readers -= 1
            if not self._readers and self._writers_waiting:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        with self._mutex:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True

    def release_write(self) -> None:
        with self._mutex:
            self._writer = False
            self._phase += 1
            self._readers += self._readers_waiting  # hand the lock to the queued readers
            self._readers_waiting = 0
            self._cond.notify_all()

    @contextmanager
    def read(self) -> Iterator[None]:
        self.acquire_read()
        try:
            yield
        finally:
            self.release_read()

    @contextmanager
    def write(self) -> Iterator[None]:
        self.acquire_write()
        try:
            yield
        finally:
            self.release_write()


class RwlockHeads(PfilHeads):
    """The old design: lists changed in place, every run holding the lock shared."""

    impl = "rwlock"

    def __init__(self, impl: str | None = None, *, debug: bool = False) -> None:
        super().__init__(impl, debug=debug)
        self._rw = RWLock()
        self._chains: list[list[tuple[Hook, int | None]]] = [[] for _ in Direction]

    def run(self, direction: Direction, pkt: PfilPacket) -> Verdict:
        chain = self._chains[direction]
        if not chain:  # unlocked emptiness check, as FreeBSD's PFIL_HOOKED()
            return _PASS
        rw = self._rw
        rw.acquire_read()
        try:
            ifindex = pkt.ifindex
            for hook, bound in chain:
                if bound is None or bound == ifindex:
                    verdict = hook(pkt)
                    if verdict:
                        return verdict
            return _PASS
        finally:
            rw.release_read()

    def has_hooks(self, direction: Direction) -> bool:
        return bool(self._chains[direction])

    def _insert(self, d: Direction, index: int, info: HookInfo) -> None:
        with self._rw.write():
            self._chains[d].insert(index, (info.hook, info.ifindex))

    def _remove(self, d: Direction, index: int, info: HookInfo) -> None:
        with self._rw.write():
            del self._chains[d][index]

    def _replace(self, d: Direction) -> None:
        with self._rw.write():
            self._chains[d][:] = self._chain(d)


_REGISTRY: dict[str, type[PfilHeads]] = {
    cls.impl: cls for cls in (TupleHeads, LinkedHeads, RwlockHeads)
}
