"""Protocol control block lookup and the per-connection input queue (the paper's "Protocol Control
Block Lookup" section; FreeBSD ``in_pcb.c``; RFC 6056 for ephemeral ports).

Contract
--------
:class:`PcbTable` answers tcp_input's question "whose segment is this?":

- *Connections* live in a hash table on the exact 4-tuple ``(laddr, lport, faddr, fport)``: a fixed
  power-of-two array of buckets, each a short Python list of ``(key, conn)`` pairs, indexed by
  ``hash((seed, laddr, lport, faddr, fport)) & mask``. CPython's tuple hash is an xxHash-style
  multiply-rotate mix over the elements, run in C, cheaper than any mix written with Python
  ints. Ints hash to themselves, so
  the index is deterministic across processes. FreeBSD's ``INP_PCBHASH`` (an XOR fold) would be
  cheaper still but lets anyone who can pick ports fill one bucket. The table is deliberately
  explicit rather than a ``dict`` so that bucket occupancy -- the cost the paper talks about -- can
  be inspected (:meth:`PcbTable.stats`). Like FreeBSD's ``tcbhashsize`` the bucket count is fixed at
  creation. ``hash_key`` seeds the mix; a stack passes a random one so that an off-path host cannot
  aim many 4-tuples at one bucket without knowing it (a mixer, not a cryptographic PRF).
- *Listeners* live in a wildcard table on ``(laddr, lport)`` where ``laddr == 0`` is INADDR_ANY.
  :meth:`PcbTable.lookup_listener` prefers a listener bound to the exact local address, then the
  wildcard one (FreeBSD's ``in_pcblookup_hash`` with ``INPLOOKUP_WILDCARD``).  A specific and a
  wildcard listener may share a port (as with SO_REUSEADDR); the same ``(laddr, lport)`` twice
  is EADDRINUSE.
- :meth:`PcbTable.demux` is tcp_input's order: an exact connection first, then a listener.
- :meth:`PcbTable.ephemeral_port` is RFC 6056 section 3.3.1 ("simple port randomization") over
  49152..65535 (RFC 6335): start at an offset drawn by the caller, walk up, and take the first
  port whose 4-tuple is free and that no listener holds.  As in RFC 6056's algorithm 3, a port
  may serve several connections to different destinations.

:class:`InputQueue` is the paper's answer to the global TCP lock: segments that arrive while their
connection is being processed are attached to a queue on the connection instead of waiting for
its lock; the processor drains them before letting go.  To avoid livelock it processes at most
``per_pass`` items per :meth:`InputQueue.drain` and leaves the rest for a later pass
(``pending``).  The queue holds at most ``limit`` items; more are dropped and counted
``tcp.in.queue_full``.  The "being processed" mark is a non-blocking lock, so the queue works both
for re-entrant pushes (a handler that causes a segment for its own connection) and for producer
threads; a drain that finds another drain running returns at once, leaving the item to it.

Nothing here reads the clock or draws randomness: the hash seed and the port offset are
arguments.  API misuse (duplicate insert, out-of-range fields) raises ``ValueError``; lookups of
anything never raise.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

__all__ = [
    "EPHEMERAL_HIGH",
    "EPHEMERAL_LOW",
    "InputQueue",
    "Key",
    "PcbStats",
    "PcbTable",
]

Key: TypeAlias = tuple[int, int, int, int]
"""A connection's 4-tuple ``(laddr, lport, faddr, fport)``; addresses are 32-bit ints."""

C = TypeVar("C")
L = TypeVar("L")
S = TypeVar("S")

EPHEMERAL_LOW = 49152
"""First port of the dynamic range (RFC 6335 section 6)."""
EPHEMERAL_HIGH = 65535
"""Last port of the dynamic range."""
_EPHEMERAL_COUNT = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1

QUEUE_FULL = "tcp.in.queue_full"
QUEUE_YIELD = "tcp.in.queue_yield"


def _check_addr(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{name} = {value}: not a 32-bit IPv4 address")


def _check_port(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name} = {value}: not a 16-bit port")


@dataclass(frozen=True, slots=True)
class PcbStats:
    """Occupancy of a :class:`PcbTable`.

    Attributes
    ----------
    connections, listeners
        Entries in the connection and listener tables.
    buckets
        Buckets of the connection hash table.
    used_buckets
        Buckets holding at least one connection.
    max_bucket_len
        The longest chain a lookup may have to walk.
    """

    connections: int
    listeners: int
    buckets: int
    used_buckets: int
    max_bucket_len: int


class PcbTable(Generic[C, L]):
    """Connections by exact 4-tuple and listeners by (possibly wildcard) local address.

    Parameters
    ----------
    buckets
        Number of hash buckets for connections, a power of two.
    hash_key
        Seed of the bucket hash (any non-negative int; reduced modulo 2**61 - 1).

    Raises
    ------
    ValueError
        If ``buckets`` is not a power of two or ``hash_key`` is negative.
    """

    __slots__ = ("_bound", "_buckets", "_count", "_listeners", "_mask", "_seed")

    def __init__(self, *, buckets: int = 4096, hash_key: int = 0) -> None:
        if buckets < 1 or buckets & (buckets - 1):
            raise ValueError(f"buckets = {buckets}: must be a power of two")
        if hash_key < 0:
            raise ValueError(f"hash_key = {hash_key}: must be non-negative")
        self._buckets: list[list[tuple[Key, C]]] = [[] for _ in range(buckets)]
        self._mask = buckets - 1
        # Python hashes an int below 2**61 - 1 to itself, so this is just the key reduced.
        self._seed = hash(hash_key)
        self._count = 0
        self._listeners: dict[int, dict[int, L]] = {}  # lport -> laddr -> listener
        # lport -> laddr -> number of connections and listeners bound there (for port_in_use).
        self._bound: dict[int, Counter[int]] = {}

    # -- hashing ---------------------------------------------------------------------------

    def bucket_of(self, laddr: int, lport: int, faddr: int, fport: int) -> int:
        """Index of the bucket that holds the 4-tuple."""
        return hash((self._seed, laddr, lport, faddr, fport)) & self._mask

    # -- connections -----------------------------------------------------------------------

    def insert(self, key: Key, conn: C) -> None:
        """Add a connection under its 4-tuple.

        Raises
        ------
        ValueError
            If the 4-tuple is already in the table or a field is out of range.
        """
        laddr, lport, faddr, fport = key
        _check_addr("laddr", laddr)
        _check_port("lport", lport)
        _check_addr("faddr", faddr)
        _check_port("fport", fport)
        key = (laddr, lport, faddr, fport)
        bucket = self._buckets[self.bucket_of(laddr, lport, faddr, fport)]
        for k, _ in bucket:
            if k == key:
                raise ValueError(f"pcb {key} already in the table")
        bucket.append((key, conn))
        self._count += 1
        self._bind(laddr, lport)

    def remove(self, key: Key) -> None:
        """Remove the connection with this 4-tuple.

        Raises
        ------
        KeyError
            If there is none.
        """
        laddr, lport, faddr, fport = key
        bucket = self._buckets[self.bucket_of(laddr, lport, faddr, fport)]
        for i, (k, _) in enumerate(bucket):
            if k == key:
                # Order within a bucket carries no meaning: swap with the last to avoid a shift.
                bucket[i] = bucket[-1]
                bucket.pop()
                self._count -= 1
                self._unbind(laddr, lport)
                return
        raise KeyError(key)

    def lookup(self, laddr: int, lport: int, faddr: int, fport: int) -> C | None:
        """The connection with exactly this 4-tuple, or ``None``."""
        # bucket_of inlined: on this, the hottest path, the call costs as much as the hash.
        bucket = self._buckets[hash((self._seed, laddr, lport, faddr, fport)) & self._mask]
        if bucket:
            key = (laddr, lport, faddr, fport)
            for k, conn in bucket:
                if k == key:
                    return conn
        return None

    def __len__(self) -> int:
        """Number of connections (listeners not included)."""
        return self._count

    def __iter__(self) -> Iterator[Key]:
        """The 4-tuples of the connections, in bucket order."""
        for bucket in self._buckets:
            for k, _ in bucket:
                yield k

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 4:
            return False
        return self.lookup(*key) is not None

    def items(self) -> Iterator[tuple[Key, C]]:
        """``(4-tuple, connection)`` pairs, in bucket order."""
        for bucket in self._buckets:
            yield from bucket

    def connections(self) -> Iterator[C]:
        """The connections, in bucket order."""
        for bucket in self._buckets:
            for _, conn in bucket:
                yield conn

    # -- listeners -------------------------------------------------------------------------

    def listen(self, laddr: int, lport: int, listener: L) -> None:
        """Register a listener on ``(laddr, lport)``; ``laddr == 0`` listens on every address.

        Raises
        ------
        ValueError
            EADDRINUSE: a listener is already bound to exactly ``(laddr, lport)``; or a field is
            out of range.
        """
        _check_addr("laddr", laddr)
        _check_port("lport", lport)
        by_addr = self._listeners.setdefault(lport, {})
        if laddr in by_addr:
            raise ValueError(f"EADDRINUSE: a listener is bound to ({laddr}, {lport})")
        by_addr[laddr] = listener
        self._bind(laddr, lport)

    def unlisten(self, laddr: int, lport: int) -> None:
        """Remove the listener on exactly ``(laddr, lport)``.

        Raises
        ------
        KeyError
            If there is none.
        """
        by_addr = self._listeners.get(lport)
        if by_addr is None or laddr not in by_addr:
            raise KeyError((laddr, lport))
        del by_addr[laddr]
        if not by_addr:
            del self._listeners[lport]
        self._unbind(laddr, lport)

    def lookup_listener(self, laddr: int, lport: int) -> L | None:
        """The listener for a SYN to ``(laddr, lport)``: exact address first, then wildcard."""
        by_addr = self._listeners.get(lport)
        if by_addr is None:
            return None
        listener = by_addr.get(laddr)
        if listener is None:
            listener = by_addr.get(0)
        return listener

    def listeners(self) -> Iterator[tuple[tuple[int, int], L]]:
        """``((laddr, lport), listener)`` pairs."""
        for lport, by_addr in self._listeners.items():
            for laddr, listener in by_addr.items():
                yield (laddr, lport), listener

    # -- demultiplexing and ports ----------------------------------------------------------

    def demux(self, laddr: int, lport: int, faddr: int, fport: int) -> C | L | None:
        """tcp_input's lookup: the connection with this 4-tuple, else the listener, else None."""
        conn = self.lookup(laddr, lport, faddr, fport)
        if conn is not None:
            return conn
        return self.lookup_listener(laddr, lport)

    def port_in_use(self, laddr: int, lport: int) -> bool:
        """Whether a connection or listener is bound to ``lport`` on an overlapping address.

        Addresses overlap when equal or when either is the wildcard 0.
        """
        users = self._bound.get(lport)
        if not users:
            return False
        if laddr == 0:
            return True
        return users[laddr] > 0 or users[0] > 0

    def ephemeral_port(self, laddr: int, faddr: int, fport: int, rng_value: int) -> int:
        """A local port for a new connection from ``laddr`` to ``(faddr, fport)``.

        Parameters
        ----------
        laddr, faddr, fport
            The connection's addresses and foreign port.
        rng_value
            A random (or RFC 6056 keyed-hash) value from the caller; the search starts at
            ``49152 + rng_value mod 16384``.

        Returns
        -------
        int
            The first port at or after the start (wrapping within 49152..65535) whose 4-tuple
            is free and on which no listener overlaps ``laddr``.

        Raises
        ------
        ValueError
            When every port of the range is taken.
        """
        start = rng_value % _EPHEMERAL_COUNT
        for i in range(_EPHEMERAL_COUNT):
            port = EPHEMERAL_LOW + (start + i) % _EPHEMERAL_COUNT
            if self.lookup(laddr, port, faddr, fport) is None and not self._listening(laddr, port):
                return port
        raise ValueError(f"no ephemeral port free from {laddr} to ({faddr}, {fport})")

    def stats(self) -> PcbStats:
        """Table occupancy: the chain lengths a lookup walks."""
        lengths = [len(b) for b in self._buckets]
        return PcbStats(
            connections=self._count,
            listeners=sum(len(d) for d in self._listeners.values()),
            buckets=len(self._buckets),
            used_buckets=sum(1 for n in lengths if n),
            max_bucket_len=max(lengths),
        )

    def _listening(self, laddr: int, lport: int) -> bool:
        by_addr = self._listeners.get(lport)
        if not by_addr:
            return False
        return laddr == 0 or laddr in by_addr or 0 in by_addr

    def _bind(self, laddr: int, lport: int) -> None:
        self._bound.setdefault(lport, Counter())[laddr] += 1

    def _unbind(self, laddr: int, lport: int) -> None:
        users = self._bound[lport]
        users[laddr] -= 1
        if users[laddr] <= 0:
            del users[laddr]
            if not users:
                del self._bound[lport]


class InputQueue(Generic[S]):
    """Segments that arrive while their connection is being processed are queued on it and
    drained by the owner.

    Parameters
    ----------
    limit
        Most items held; a push beyond is dropped and counted ``tcp.in.queue_full``.
    per_pass
        Most items one :meth:`drain` handles (the livelock guard); when it stops with items
        left it counts ``tcp.in.queue_yield``.

    Raises
    ------
    ValueError
        If ``limit`` or ``per_pass`` is below 1.
    """

    __slots__ = ("_items", "_limit", "_lock", "_per_pass", "counters")

    counters: Counter[str]

    def __init__(self, *, limit: int = 256, per_pass: int = 64) -> None:
        if limit < 1:
            raise ValueError(f"limit = {limit}: must be at least 1")
        if per_pass < 1:
            raise ValueError(f"per_pass = {per_pass}: must be at least 1")
        self._limit = limit
        self._per_pass = per_pass
        self._items: deque[S] = deque()
        self._lock = threading.Lock()  # held while a drain runs: the connection is "busy"
        self.counters = Counter()

    def push(self, item: S) -> bool:
        """Queue an item; ``False`` (and ``tcp.in.queue_full`` counted) if the queue is full."""
        if len(self._items) >= self._limit:
            self.counters[QUEUE_FULL] += 1
            return False
        self._items.append(item)
        return True

    def drain(self, handle: Callable[[S], None]) -> int:
        """Handle queued items in FIFO order, at most ``per_pass`` of them.

        If another drain is running (a re-entrant call from ``handle``, or another thread) this
        returns 0 at once: the running drain will handle what was queued.  Items pushed while
        this drain runs are handled by it, within the same ``per_pass`` budget.  If ``handle``
        raises, the drain stops, the item is lost and the exception propagates.

        Returns
        -------
        int
            Items handled by this call.
        """
        done = 0
        items = self._items
        while done < self._per_pass:
            if not self._lock.acquire(blocking=False):
                return done
            try:
                while items and done < self._per_pass:
                    item = items.popleft()
                    done += 1
                    handle(item)
            finally:
                self._lock.release()
            # A producer that pushed after our last look but before the release found the
            # lock taken and left its item to us: look again rather than strand it.
            if not items:
                break
        if items and done >= self._per_pass:
            self.counters[QUEUE_YIELD] += 1
        return done

    @property
    def pending(self) -> int:
        """Items waiting for a drain."""
        return len(self._items)

    @property
    def busy(self) -> bool:
        """A drain is running."""
        return self._lock.locked()

    @property
    def limit(self) -> int:
        """Most items held."""
        return self._limit

    @property
    def per_pass(self) -> int:
        """Most items handled by one drain."""
        return self._per_pass
