"""The PCB benchmark (``netfast bench pcb``): the paper's "Protocol Control Block Lookup" section
measured on :mod:`netfast.tcp.pcb`.

Part 1, lookup: what does "whose segment is this?" cost as connections grow?
------------------------------------------------------------------------------
A host holds ``N`` established connections (N = 100, 1,000, 10,000, 100,000) to 198.18.0.1 ports
80 and 443 and a wildcard listener on each port.  It is asked for a random stream of 4-tuples:
90 % belong to connections (drawn uniformly), 10 % are new 4-tuples to a listening port, which
must fall through to the listener.  Three structures answer through the same
``demux(laddr, lport, faddr, fport)`` call:

- ``table``: :class:`netfast.tcp.pcb.PcbTable` with the 4,096 buckets the stack creates
  (:mod:`netfast.tcp.layer`; fixed like FreeBSD's ``tcbhashsize``, so chains grow with N);
- ``list``: :class:`LinearPcbList`, every PCB on one list scanned front to back, as BSD did before
  PCB hashing.  Its cost grows with N, so it is given at most :data:`LIST_BUDGET` entry
  comparisons per round: at large N it answers fewer lookups (the ``lookups`` field says how many);
- ``dict``: :class:`DictPcbs`, a plain ``dict`` on the 4-tuple: what a Python hash table costs
  when its chains are invisible.

Each figure is the best of ``rounds`` interleaved rounds (the order rotates).  Outside the timed
loops every structure's answer to every 4-tuple it was timed on is compared with the connection
(or listener) the 4-tuple belongs to: ``agree``.  ``table_over_list`` and ``table_over_dict`` are
ratios of lookups/s (above 1: the table is faster).  Chain lengths come from
:meth:`PcbTable.stats`: ``max_chain`` is the longest bucket, ``mean_chain`` connections per used
bucket (the chain an average hit lands in).

Part 2, locking: one global lock, a lock per connection, or an input queue per connection?
-------------------------------------------------------------------------------------------
``T`` producer threads (1 and 2) play CPUs taking segments off one receive ring and delivering
them to ``M`` connections (1, 16, 256, 4,096; each segment's connection drawn at random).  The
ring hands segments out in wire order and carries each connection's sequence numbers
(``seq``, advancing by 1,460 per segment).  Processing a segment is a numba kernel compiled with
``nogil=True`` -- the Internet checksum of its 1,460-byte payload (``passes`` of them; 1 by
default), built from :func:`netfast.wire.checksum.words_sum` and
:func:`~netfast.wire.checksum.words_fold` -- plus the connection's sequence update
(``rcv_nxt = seq + 1460``) and a record of what was processed.  Only the kernel runs without the
GIL; everything else in every design runs one thread at a time.

Taking a segment off the ring is serialized by the ring's lock (a NIC receive ring has one
consumer at a time).  What a design does before it lets go of the ring is what keeps a
connection's segments in order:

- ``global``: take the global lock, then release the ring; lookup and processing run under the
  global lock (FreeBSD's old ``tcbinfo`` lock over the whole of ``tcp_input``);
- ``conn_lock``: look the connection up, wait for its lock, then release the ring; processing runs
  under the connection's lock.  Waiting while holding the ring is the price of order: a thread
  that released the ring first could overtake one holding an earlier segment;
- ``input_queue``: look the connection up, push the segment onto its
  :class:`~netfast.tcp.pcb.InputQueue` (the stack's sizes: ``per_pass`` 64, ``limit`` 256), release
  the ring, then drain; a drain that finds the queue busy returns at once, leaving the segment to
  the thread already processing that connection (the paper's lockless queue in the TCPCB).  A push
  to a full queue is dropped and counted ``tcp.in.queue_full``, as the stack does; what the
  ``per_pass`` bound leaves waits for the connection's next push, or for the final drain after the
  producers stop (inside the timed interval).  A thread that left its segment to a busy drainer
  yields the GIL (``time.sleep(0)``): the other designs give it up by blocking on a lock, but a
  producer that never blocks keeps it for a whole switch interval (5 ms) while the drainer, back
  from the kernel, waits for it -- in a first version without the yield, 2 threads on 1
  connection filled the queue and dropped 131,143 segments while processing 3,794.

Each measurement runs for a fixed time (and at most :data:`MAX_SEGMENTS` segments), then the
producers stop and the queues are drained.  Then, outside the timed interval, the connections'
records are checked: ``exactly_once`` (every segment taken off the ring was processed once, or
dropped and counted, and each connection's sum of checksums equals the sum over the payloads it
was given) and ``in_order`` (each connection processed its sequence numbers strictly increasing).
A row is the best round by segments/s (its ``segments`` and ``seconds``); ``exactly_once`` and
``in_order`` hold only if they held in every round; ``drops`` are summed over all rounds.
``over_global`` is a design's segments/s over the global lock's in the same cell.

What it can and cannot show under CPython's GIL
-----------------------------------------------
Two threads can only gain the kernel's share of a segment's cost (Amdahl); the lookup, locks,
queueing and bookkeeping are serialized by the GIL whatever the design, and every lock hand-off
between threads is a GIL hand-off too.  The ratios between designs are real costs of the designs
in this runtime; they say little about the cache-line traffic of a kernel on real SMP hardware.

JSON (``--json FILE``)
----------------------
Top level: ``benchmark`` ("pcb"), ``date``, ``python``, ``machine``, ``cpus``,
``switch_interval_s``, ``quick``, ``seed``, ``seconds`` ({``lookup``, ``locking``}: time per
structure or design and size, split over the rounds), ``rounds``, ``lookup``, ``locking``,
``verdict``.

- ``lookup``: ``rows`` [{``n``, ``impl``, ``ns_per_lookup``, ``lookups_per_s``, ``lookups``}],
  ``ratios`` [{``n``, ``table_over_list``, ``table_over_dict``}], ``agree`` (bool), ``mismatches``,
  ``buckets`` [{``n``, ``buckets``, ``max_chain``, ``mean_chain``}], ``miss_share``,
  ``list_budget``, ``verdict``.
- ``locking``: ``work`` {``description``, ``kernel``, ``nogil``, ``payload_bytes``, ``passes``,
  ``kernel_ns``}, ``rows`` [{``design``, ``connections``, ``threads``, ``segments``, ``seconds``,
  ``segments_per_s``, ``exactly_once``, ``in_order``, ``drops``}], ``ratios`` [{``connections``,
  ``threads``, ``design``, ``over_global``}], ``queue`` {``limit``, ``per_pass``}, ``verdict``.
- ``verdict``: one sentence over both parts.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numba
import numpy as np
import numpy.typing as npt

from netfast.tcp.pcb import QUEUE_FULL, InputQueue, Key, PcbTable
from netfast.wire.checksum import words_fold, words_sum

__all__ = [
    "DESIGNS",
    "IMPLS",
    "Demuxer",
    "DictPcbs",
    "LinearPcbList",
    "LockRow",
    "LookupResult",
    "LookupRow",
    "Queue",
    "Result",
    "check_delivery",
    "lookup_verdict",
    "locking_verdict",
    "measure",
    "measure_lock_once",
    "measure_locking",
    "measure_lookup",
    "to_json",
]

# -- sizes -------------------------------------------------------------------------------------

LOOKUP_N = (100, 1_000, 10_000, 100_000)
LOOKUP_N_QUICK = (100, 1_000, 10_000)
IMPLS = ("table", "list", "dict")
MISS_SHARE = 0.1
#: Buckets of the stack's PCB table (netfast.tcp.layer).
STACK_BUCKETS = 4096
#: Entry comparisons the linear list may make per round: bounds its time at large N.
LIST_BUDGET = 4_000_000
#: Passes over the query stream per round at most (bounds a round at small N).
MAX_PASSES = 1_000

DESIGNS = ("global", "conn_lock", "input_queue")
LOCK_CONNS = (1, 16, 256, 4096)
LOCK_CONNS_QUICK = (1, 16, 256)
THREADS = (1, 2)
PAYLOAD_BYTES = 1460
#: The stack's input queue sizes (netfast.tcp.layer: per_pass 64, limit 4 * per_pass).
PER_PASS = 64
QUEUE_LIMIT = 4 * PER_PASS
#: Segments one locking measurement takes off the ring at most.
MAX_SEGMENTS = 2_000_000
_POOL_ROWS = 256  # distinct payloads (a power of two)
_WIRE = 1 << 16  # segment i belongs to connection wire[i % _WIRE] (a power of two)
_LADDR = 0xC6120001  # 198.18.0.1
_FNET = 0xC6130000  # 198.19.0.0/16
_PORTS = (80, 443)


# -- part 1: lookup structures -------------------------------------------------------------------


class Demuxer(Protocol):
    """What part 1 times: the PCB table's interface for connections and listeners."""

    def insert(self, key: Key, conn: Any) -> None: ...

    def listen(self, laddr: int, lport: int, listener: Any) -> None: ...

    def demux(self, laddr: int, lport: int, faddr: int, fport: int) -> object: ...


class LinearPcbList:
    """Every PCB on one list, scanned front to back for each lookup (BSD before PCB hashing).

    A connection matches on the exact 4-tuple; if none does, the listeners are scanned for the
    port, one on the exact local address preferred over a wildcard one (``laddr`` 0).  ``insert``
    does not look for duplicates (the benchmark inserts distinct 4-tuples).
    """

    __slots__ = ("_conns", "_listeners")

    def __init__(self) -> None:
        self._conns: list[tuple[Key, object]] = []
        self._listeners: list[tuple[int, int, object]] = []

    def insert(self, key: Key, conn: object) -> None:
        """Append a connection."""
        self._conns.append((key, conn))

    def listen(self, laddr: int, lport: int, listener: object) -> None:
        """Append a listener (``laddr`` 0: every local address)."""
        self._listeners.append((laddr, lport, listener))

    def demux(self, laddr: int, lport: int, faddr: int, fport: int) -> object:
        """The connection with this 4-tuple, else the best listener, else ``None``."""
        key = (laddr, lport, faddr, fport)
        for k, conn in self._conns:
            if k == key:
                return conn
        wildcard: object = None
        for addr, port, listener in self._listeners:
            if port == lport:
                if addr == laddr:
                    return listener
                if addr == 0:
                    wildcard = listener
        return wildcard


class DictPcbs:
    """A ``dict`` on the 4-tuple and one on ``(laddr, lport)`` for listeners."""

    __slots__ = ("_conns", "_listeners")

    def __init__(self) -> None:
        self._conns: dict[Key, object] = {}
        self._listeners: dict[tuple[int, int], object] = {}

    def insert(self, key: Key, conn: object) -> None:
        """Add a connection."""
        self._conns[key] = conn

    def listen(self, laddr: int, lport: int, listener: object) -> None:
        """Add a listener (``laddr`` 0: every local address)."""
        self._listeners[(laddr, lport)] = listener

    def demux(self, laddr: int, lport: int, faddr: int, fport: int) -> object:
        """The connection with this 4-tuple, else the listener, else ``None``."""
        conn = self._conns.get((laddr, lport, faddr, fport))
        if conn is not None:
            return conn
        listener = self._listeners.get((laddr, lport))
        return listener if listener is not None else self._listeners.get((0, lport))


def _stack_table() -> Demuxer:
    table: PcbTable[object, object] = PcbTable(buckets=STACK_BUCKETS, hash_key=1)
    return table


#: The structures part 1 measures, by name (a test may pass others).
STRUCTURES: Mapping[str, Callable[[], Demuxer]] = {
    "table": _stack_table,
    "list": LinearPcbList,
    "dict": DictPcbs,
}


@dataclass(frozen=True, slots=True)
class LookupRow:
    """One structure at one connection count (its best round)."""

    n: int
    impl: str
    ns_per_lookup: float
    lookups_per_s: float
    lookups: int  # lookups per timed pass (the list answers fewer at large N)


@dataclass(frozen=True, slots=True)
class BucketRow:
    """The PCB table's chains at one connection count."""

    n: int
    buckets: int
    max_chain: int
    mean_chain: float


@dataclass(frozen=True, slots=True)
class LookupResult:
    """Part 1: every row, the chain statistics and whether every answer was right."""

    rows: list[LookupRow]
    buckets: list[BucketRow]
    agree: bool
    mismatches: int


def _keys(n: int, rng: random.Random) -> list[Key]:
    """``n`` distinct 4-tuples of connections to 198.18.0.1 ports 80 and 443."""
    seen: set[Key] = set()
    keys: list[Key] = []
    for _ in range(20 * n + 100):  # 2**33 candidates for n <= 10**6: a repeat is rare
        if len(keys) == n:
            break
        key = (
            _LADDR,
            rng.choice(_PORTS),
            _FNET | rng.randrange(1 << 16),
            rng.randrange(1024, 65536),
        )
        if key not in seen:
            seen.add(key)
            keys.append(key)
    if len(keys) != n:
        raise ValueError(f"could not draw {n} distinct 4-tuples")
    return keys


def _queries(
    keys: Sequence[Key], conns: Sequence[object], listeners: Mapping[int, object], count: int,
    rng: random.Random,
) -> tuple[list[Key], list[object]]:  # fmt: skip
    """``count`` 4-tuples to look up, in random order, and the answer each must get."""
    known = set(keys)
    queries: list[Key] = []
    want: list[object] = []
    for _ in range(4 * count + 100):
        if len(queries) == count:
            break
        if rng.random() < MISS_SHARE:
            port = rng.choice(_PORTS)
            key = (_LADDR, port, _FNET | rng.randrange(1 << 16), rng.randrange(1024, 65536))
            if key in known:
                continue
            queries.append(key)
            want.append(listeners[port])
        else:
            i = rng.randrange(len(keys))
            queries.append(keys[i])
            want.append(conns[i])
    return queries, want


def _time_round(
    demux: Callable[[int, int, int, int], object], queries: Sequence[Key], seconds: float
) -> float:
    """Nanoseconds per lookup of ``demux`` over passes of ``queries`` for about ``seconds``
    (at least one pass, at most :data:`MAX_PASSES`)."""
    done = 0
    elapsed = 0.0
    for _ in range(MAX_PASSES):
        t0 = time.perf_counter()
        for la, lp, fa, fp in queries:
            demux(la, lp, fa, fp)
        elapsed += time.perf_counter() - t0
        done += len(queries)
        if elapsed >= seconds:
            break
    return elapsed / done * 1e9


def measure_lookup(
    ns: Sequence[int] = LOOKUP_N,
    *,
    seconds: float = 0.6,
    rounds: int = 3,
    queries: int = 20_000,
    list_budget: int = LIST_BUDGET,
    seed: int = 1,
    structures: Mapping[str, Callable[[], Demuxer]] = STRUCTURES,
    progress: Callable[[str], None] | None = None,
) -> LookupResult:
    """Part 1: every structure at every connection count; ``seconds`` per (structure, N), split
    over ``rounds`` interleaved rounds, best kept.

    ``structures`` must include ``"table"`` (a :class:`PcbTable`, whose :meth:`~PcbTable.stats`
    give the chain lengths); one named ``"list"`` answers at most ``list_budget // N`` queries.
    """
    if rounds < 1 or seconds <= 0 or queries < 1 or list_budget < 1 or any(n < 1 for n in ns):
        raise ValueError("need rounds, queries, list_budget, N >= 1 and seconds > 0")
    if "table" not in structures:
        raise ValueError("structures must include 'table'")
    rows: list[LookupRow] = []
    buckets: list[BucketRow] = []
    mismatches = 0
    names = list(structures)
    for n in ns:
        if progress is not None:
            progress(f"lookup: {n:,} connections")
        rng = random.Random(seed * 1_000_003 + n)
        keys = _keys(n, rng)
        conns = [object() for _ in keys]
        listeners = {port: object() for port in _PORTS}
        built: dict[str, Demuxer] = {}
        for name in names:
            s = structures[name]()
            for key, conn in zip(keys, conns, strict=True):
                s.insert(key, conn)
            for port, listener in listeners.items():
                s.listen(0, port, listener)
            built[name] = s
        qs, want = _queries(keys, conns, listeners, queries, rng)
        # A hit compares about n/2 list entries, a miss all n.
        count = {name: len(qs) for name in names}
        if "list" in count:
            count["list"] = max(1, min(len(qs), list_budget // n))
        best: dict[str, float] = {}
        for rnd in range(rounds):
            shift = rnd % len(names)
            for name in [*names[shift:], *names[:shift]]:
                ns_per = _time_round(built[name].demux, qs[: count[name]], seconds / rounds)
                best[name] = min(best.get(name, math.inf), ns_per)
        for name in names:
            demux = built[name].demux
            got = [demux(*q) for q in qs[: count[name]]]
            mismatches += sum(1 for g, w in zip(got, want, strict=False) if g is not w)
            rows.append(LookupRow(n, name, best[name], 1e9 / best[name], count[name]))
        table = built["table"]
        if isinstance(table, PcbTable):
            st = table.stats()
            mean = st.connections / st.used_buckets if st.used_buckets else 0.0
            buckets.append(BucketRow(n, st.buckets, st.max_bucket_len, mean))
    return LookupResult(rows, buckets, mismatches == 0, mismatches)


def lookup_ratios(rows: Sequence[LookupRow]) -> list[dict[str, Any]]:
    """Per N: the table's lookups/s over the list's and over the dict's (None: not measured)."""
    by: dict[int, dict[str, float]] = {}
    for r in rows:
        by.setdefault(r.n, {})[r.impl] = r.lookups_per_s
    out = []
    for n, rate in by.items():
        t = rate.get("table")
        out.append(
            {
                "n": n,
                "table_over_list": t / rate["list"] if t and "list" in rate else None,
                "table_over_dict": t / rate["dict"] if t and "dict" in rate else None,
            }
        )
    return out


# -- part 2: locking ---------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def _payload_sum(pool: Any, row: int, passes: int) -> int:  # pragma: no cover - compiled
    """Compiled, without the GIL: the folded one's complement sums of ``passes`` payloads (rows
    ``row``, ``row + 1``, ... of ``pool``, wrapping), added and folded again."""
    total = np.uint64(0)
    rows = pool.shape[0]
    width = pool.shape[1]
    for j in range(passes):
        total += words_fold(words_sum(pool[(row + j) % rows], 0, width))
    return int(words_fold(total))


KERNEL_NAME = "netfast.bench.pcb._payload_sum (words_sum + words_fold of netfast.wire.checksum)"


def payload_pool(seed: int = 1) -> npt.NDArray[np.uint8]:
    """The payloads segments carry: ``_POOL_ROWS`` random rows of ``PAYLOAD_BYTES``; a segment
    with sequence number ``seq`` carries row ``(seq // PAYLOAD_BYTES) % _POOL_ROWS``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (_POOL_ROWS, PAYLOAD_BYTES), dtype=np.uint8)


def kernel_ns(pool: npt.NDArray[np.uint8], passes: int, calls: int = 20_000) -> float:
    """One thread's cost of one segment's kernel call from Python (best of 3), nanoseconds."""
    kernel = _payload_sum
    kernel(pool, 0, passes)
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(calls):
            kernel(pool, i & (_POOL_ROWS - 1), passes)
        best = min(best, time.perf_counter() - t0)
    return best / calls * 1e9


class Queue(Protocol):
    """What the ``input_queue`` design needs of a queue (an :class:`InputQueue`, or a stand-in
    in a test)."""

    counters: Any

    def push(self, item: int) -> bool: ...

    def drain(self, handle: Callable[[int], None]) -> int: ...

    @property
    def pending(self) -> int: ...


def _stack_queue() -> Queue:
    queue: InputQueue[int] = InputQueue(limit=QUEUE_LIMIT, per_pass=PER_PASS)
    return queue


class _Conn:
    """A connection of part 2: its lock, its input queue, its receive state and its record."""

    __slots__ = ("csum", "dropped", "handle", "lock", "log", "queue", "rcv_nxt")

    def __init__(self, pool: npt.NDArray[np.uint8], passes: int, queue: Queue) -> None:
        self.lock = threading.Lock()
        self.queue = queue
        self.rcv_nxt = 0
        self.csum = 0  # sum of the processed segments' checksums
        self.log: list[int] = []  # sequence numbers in the order they were processed
        self.dropped: list[int] = []  # sequence numbers the queue refused
        kernel = _payload_sum
        mask = _POOL_ROWS - 1
        record = self.log.append

        def handle(seq: int) -> None:
            # Every design lets one thread at a time handle a given connection, so these
            # read-modify-writes need no lock of their own.
            self.csum += kernel(pool, (seq // PAYLOAD_BYTES) & mask, passes)
            self.rcv_nxt = seq + PAYLOAD_BYTES
            record(seq)

        self.handle = handle


@functools.lru_cache(maxsize=16)
def _wire(connections: int, seed: int) -> tuple[int, ...]:
    """The connection of each ring slot: segment ``i`` belongs to ``wire[i % _WIRE]``.  The
    same for every design and round of one size (drawn once)."""
    rng = random.Random(seed * 7919 + connections)
    return tuple(rng.randrange(connections) for _ in range(_WIRE))


def _producer(
    design: str,
    demux: Callable[[int, int, int, int], object],
    keys: Sequence[Key],
    wire: Sequence[int],
    nxt: list[int],
    ring: threading.Lock,
    glock: threading.Lock,
    take: Callable[[], int],
    cap: int,
    stop: list[bool],
) -> Callable[[], None]:
    """The loop of one producer thread in ``design``: see the module docstring."""
    mask = _WIRE - 1
    step = PAYLOAD_BYTES
    sleep = time.sleep

    def global_lock() -> None:
        while not stop[0]:
            ring.acquire()
            i = take()
            if i >= cap:
                ring.release()
                return
            c = wire[i & mask]
            seq = nxt[c]
            nxt[c] = seq + step
            glock.acquire()
            ring.release()
            conn: Any = demux(*keys[c])
            conn.handle(seq)
            glock.release()

    def conn_lock() -> None:
        while not stop[0]:
            ring.acquire()
            i = take()
            if i >= cap:
                ring.release()
                return
            c = wire[i & mask]
            seq = nxt[c]
            nxt[c] = seq + step
            conn: Any = demux(*keys[c])
            lock = conn.lock
            lock.acquire()
            ring.release()
            conn.handle(seq)
            lock.release()

    def input_queue() -> None:
        while not stop[0]:
            ring.acquire()
            i = take()
            if i >= cap:
                ring.release()
                return
            c = wire[i & mask]
            seq = nxt[c]
            nxt[c] = seq + step
            conn: Any = demux(*keys[c])
            ok = conn.queue.push(seq)
            ring.release()
            if not ok:
                conn.dropped.append(seq)  # counted tcp.in.queue_full by the queue
            q = conn.queue
            if not q.drain(conn.handle) and q.pending:
                # Left to the busy drainer, which may be coming back from the kernel: let it
                # have the GIL rather than keep it for a switch interval of pushes.
                sleep(0)

    return {"global": global_lock, "conn_lock": conn_lock, "input_queue": input_queue}[design]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the checker found in one measurement."""

    segments: int  # processed
    exactly_once: bool
    in_order: bool
    drops: int


def check_delivery(
    sent: Sequence[int],
    logs: Sequence[Sequence[int]],
    dropped: Sequence[Sequence[int]],
    csums: Sequence[int] | None = None,
    row_sum: npt.NDArray[np.int64] | None = None,
) -> Delivery:
    """Check one measurement's records, connection by connection.

    Connection ``c`` was given the sequence numbers ``0, 1460, ..., (sent[c] - 1) * 1460``;
    ``logs[c]`` are those it processed, in processing order, and ``dropped[c]`` those its queue
    refused.  Exactly once: the processed and the dropped numbers together are each given number
    once, and (with ``csums`` and ``row_sum``, the checksum of each payload row) the connection's
    checksum total is that of the payloads it processed.  In order: each log strictly increases.
    """
    exactly_once = True
    in_order = True
    segments = 0
    drops = 0
    for c, count in enumerate(sent):
        log = np.asarray(logs[c], np.int64)
        gone = np.asarray(dropped[c], np.int64)
        segments += log.size
        drops += gone.size
        if log.size > 1 and not bool((np.diff(log) > 0).all()):
            in_order = False
        every = np.sort(np.concatenate([log, gone]))
        if every.size != count or not np.array_equal(
            every, np.arange(count, dtype=np.int64) * PAYLOAD_BYTES
        ):
            exactly_once = False
        elif csums is not None and row_sum is not None:
            rows = (log // PAYLOAD_BYTES) & (row_sum.size - 1)
            if int(row_sum[rows].sum()) != csums[c]:
                exactly_once = False
    return Delivery(segments, exactly_once, in_order, drops)


@dataclass(frozen=True, slots=True)
class LockOnce:
    """One locking measurement."""

    segments: int
    seconds: float
    exactly_once: bool
    in_order: bool
    drops: int  # tcp.in.queue_full counted by the queues

    @property
    def rate(self) -> float:
        return self.segments / self.seconds if self.seconds > 0 else 0.0


def measure_lock_once(
    design: str,
    threads: int,
    connections: int,
    seconds: float,
    *,
    passes: int = 1,
    pool: npt.NDArray[np.uint8] | None = None,
    queue_factory: Callable[[], Queue] = _stack_queue,
    max_segments: int = MAX_SEGMENTS,
    seed: int = 1,
) -> LockOnce:
    """One measurement of part 2: ``threads`` producers for ``seconds`` (or ``max_segments``),
    then the final drain, then the checks.

    Raises
    ------
    ValueError
        For an unknown design or a count below 1.
    RuntimeError
        If a producer thread does not finish.
    """
    if design not in DESIGNS:
        raise ValueError(f"unknown design {design!r}; choose from {DESIGNS}")
    if threads < 1 or connections < 1 or passes < 1 or max_segments < 1 or seconds <= 0:
        raise ValueError("need threads, connections, passes, max_segments >= 1 and seconds > 0")
    if pool is None:
        pool = payload_pool(seed)
    # The checksum of each payload row, for the check; this also compiles the kernel (or loads
    # it from numba's cache) before the clock starts.
    row_sum = np.array(
        [_payload_sum(pool, r, passes) for r in range(pool.shape[0])], dtype=np.int64
    )
    keys = _keys(connections, random.Random(seed * 104_729 + connections))
    wire = _wire(connections, seed)
    table: PcbTable[_Conn, object] = PcbTable(buckets=STACK_BUCKETS, hash_key=seed)
    conns = [_Conn(pool, passes, queue_factory()) for _ in keys]
    for key, conn in zip(keys, conns, strict=True):
        table.insert(key, conn)
    for port in _PORTS:
        table.listen(0, port, object())
    nxt = [0] * connections
    ring = threading.Lock()
    glock = threading.Lock()
    stop = [False]
    take = itertools.count().__next__
    loops = [
        _producer(design, table.demux, keys, wire, nxt, ring, glock, take, max_segments, stop)
        for _ in range(threads)
    ]
    barrier = threading.Barrier(threads + 1)

    def run(loop: Callable[[], None]) -> None:
        barrier.wait()
        loop()

    workers = [threading.Thread(target=run, args=(loop,), daemon=True) for loop in loops]
    for w in workers:
        w.start()
    barrier.wait()
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline and any(w.is_alive() for w in workers):
        time.sleep(min(0.01, seconds))
    stop[0] = True
    for w in workers:
        w.join(timeout=seconds + 30)
    if any(w.is_alive() for w in workers):
        raise RuntimeError(f"a {design} producer did not finish")
    if design == "input_queue":
        # What the per_pass bound left behind; a queue that never empties stops after its limit.
        for conn in conns:
            for _ in range(QUEUE_LIMIT + 1):
                if not conn.queue.pending:
                    break
                conn.queue.drain(conn.handle)
    elapsed = time.perf_counter() - t0
    got = check_delivery(
        [n // PAYLOAD_BYTES for n in nxt],
        [c.log for c in conns],
        [c.dropped for c in conns],
        [c.csum for c in conns],
        row_sum,
    )
    counted = sum(int(c.queue.counters[QUEUE_FULL]) for c in conns)
    # A drop the queue did not count, or a count without a drop, is a broken queue.
    exactly_once = got.exactly_once and counted == got.drops
    return LockOnce(got.segments, elapsed, exactly_once, got.in_order, counted)


@dataclass(frozen=True, slots=True)
class LockRow:
    """One design in one cell (connections, threads): its best round."""

    design: str
    connections: int
    threads: int
    segments: int
    seconds: float
    segments_per_s: float
    exactly_once: bool  # in every round
    in_order: bool  # in every round
    drops: int  # all rounds


def measure_locking(
    designs: Sequence[str] = DESIGNS,
    conn_counts: Sequence[int] = LOCK_CONNS,
    thread_counts: Sequence[int] = THREADS,
    *,
    seconds: float = 1.5,
    rounds: int = 3,
    passes: int = 1,
    seed: int = 1,
    queue_factory: Callable[[], Queue] = _stack_queue,
    progress: Callable[[str], None] | None = None,
) -> list[LockRow]:
    """Part 2: every design in every cell; ``seconds`` per (design, cell), split over ``rounds``
    interleaved rounds (the first design rotates), best kept."""
    for d in designs:
        if d not in DESIGNS:
            raise ValueError(f"unknown design {d!r}; choose from {DESIGNS}")
    if rounds < 1 or seconds <= 0 or passes < 1:
        raise ValueError("need rounds >= 1, passes >= 1 and seconds > 0")
    if any(m < 1 for m in conn_counts) or any(t < 1 for t in thread_counts):
        raise ValueError("need connections >= 1 and threads >= 1")
    pool = payload_pool(seed)
    cells = [(m, t) for m in conn_counts for t in thread_counts]
    runs: dict[tuple[str, int, int], list[LockOnce]] = {}
    for rnd in range(rounds):
        for k, (m, t) in enumerate(cells):
            shift = (rnd + k) % len(designs)
            for d in [*designs[shift:], *designs[:shift]]:
                if progress is not None:
                    progress(f"locking round {rnd + 1}/{rounds}: {d}, {m:,} connections, {t} thr")
                once = measure_lock_once(
                    d, t, m, seconds / rounds, passes=passes, pool=pool,
                    queue_factory=queue_factory, seed=seed,
                )  # fmt: skip
                runs.setdefault((d, m, t), []).append(once)
    rows = []
    for m, t in cells:
        for d in designs:
            got = runs[(d, m, t)]
            top = max(got, key=lambda r: r.rate)
            rows.append(
                LockRow(
                    design=d,
                    connections=m,
                    threads=t,
                    segments=top.segments,
                    seconds=top.seconds,
                    segments_per_s=top.rate,
                    exactly_once=all(r.exactly_once for r in got),
                    in_order=all(r.in_order for r in got),
                    drops=sum(r.drops for r in got),
                )
            )
    return rows


def locking_ratios(rows: Sequence[LockRow]) -> list[dict[str, Any]]:
    """Each non-global design's segments/s over the global lock's in the same cell."""
    ref = {(r.connections, r.threads): r.segments_per_s for r in rows if r.design == "global"}
    out = []
    for r in rows:
        base = ref.get((r.connections, r.threads))
        if r.design != "global" and base:
            out.append(
                {
                    "connections": r.connections,
                    "threads": r.threads,
                    "design": r.design,
                    "over_global": r.segments_per_s / base,
                }
            )
    return out


# -- both parts, verdicts, JSON ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    """Everything one run measured."""

    lookup: LookupResult
    locking: list[LockRow]
    passes: int
    kernel_ns: float
    seconds: dict[str, float]  # per (structure or design, size), by part
    rounds: int


def measure(
    *,
    quick: bool = False,
    seconds: float | None = None,
    rounds: int | None = None,
    ns: Sequence[int] | None = None,
    conn_counts: Sequence[int] | None = None,
    thread_counts: Sequence[int] = THREADS,
    passes: int = 1,
    seed: int = 1,
    progress: Callable[[str], None] | None = None,
) -> Result:
    """Both parts with the default sizes (``quick``: fewer sizes, shorter measurements).

    ``seconds`` is the time per (structure or design, size) in each part, split over ``rounds``.
    """
    rounds = rounds if rounds is not None else (2 if quick else 3)
    look_s = seconds if seconds is not None else (0.12 if quick else 0.6)
    lock_s = seconds if seconds is not None else (0.16 if quick else 1.5)
    pool = payload_pool(seed)
    kns = kernel_ns(pool, passes, 2_000 if quick else 20_000)
    lookup = measure_lookup(
        ns if ns is not None else (LOOKUP_N_QUICK if quick else LOOKUP_N),
        seconds=look_s,
        rounds=rounds,
        queries=5_000 if quick else 20_000,
        seed=seed,
        progress=progress,
    )
    locking = measure_locking(
        DESIGNS,
        conn_counts if conn_counts is not None else (LOCK_CONNS_QUICK if quick else LOCK_CONNS),
        thread_counts,
        seconds=lock_s,
        rounds=rounds,
        passes=passes,
        seed=seed,
        progress=progress,
    )
    return Result(lookup, locking, passes, kns, {"lookup": look_s, "locking": lock_s}, rounds)


def _geomean(xs: Sequence[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else math.nan


def lookup_verdict(result: LookupResult) -> str:
    """One sentence on part 1, from the figures."""
    rate = {(r.n, r.impl): r for r in result.rows}
    ns = sorted({r.n for r in result.rows})
    if not ns or (ns[-1], "table") not in rate:
        return "no lookup measured"
    lo, hi = ns[0], ns[-1]
    t_lo, t_hi = rate[(lo, "table")], rate[(hi, "table")]
    chain = next((b for b in result.buckets if b.n == hi), None)
    parts = [
        f"netfast's PCB table answers in {t_lo.ns_per_lookup:,.0f} ns at {lo:,} connections "
        f"and {t_hi.ns_per_lookup:,.0f} ns at {hi:,}"
        + (
            f" (chains up to {chain.max_chain}, {chain.mean_chain:.1f} on average, in "
            f"{chain.buckets:,} buckets)"
            if chain
            else ""
        )
    ]
    if (hi, "list") in rate:
        r_lo = t_lo.lookups_per_s / rate[(lo, "list")].lookups_per_s
        r_hi = t_hi.lookups_per_s / rate[(hi, "list")].lookups_per_s
        parts.append(f"{r_lo:,.1f}x the linear list at {lo:,} and {r_hi:,.0f}x at {hi:,}")
    if (hi, "dict") in rate:
        d = t_hi.lookups_per_s / rate[(hi, "dict")].lookups_per_s
        parts.append(f"{d:.2f}x a plain dict at {hi:,}")
    agree = (
        "every structure returned the right PCB for every lookup"
        if result.agree
        else f"{result.mismatches:,} lookups returned the wrong PCB"
    )
    return "; ".join(parts) + f"; {agree}."


def locking_verdict(rows: Sequence[LockRow], kernel: float, passes: int) -> str:
    """One paragraph on part 2, from the figures: honest about what the GIL lets it show."""
    if not rows:
        return "no locking measured"
    designs = list(dict.fromkeys(r.design for r in rows))
    top_t = max(r.threads for r in rows)
    rate = {(r.design, r.connections, r.threads): r.segments_per_s for r in rows}
    conns = sorted({r.connections for r in rows})
    at_top = {d: _geomean([rate[(d, m, top_t)] for m in conns]) for d in designs}
    ranked = sorted(designs, key=lambda d: -at_top[d])
    best = ranked[0]
    load = "one nogil checksum" if passes == 1 else f"{passes} nogil checksums"
    text = [
        f"With {load} of {PAYLOAD_BYTES} bytes per segment ({kernel:,.0f} ns per kernel call) "
        f"and {top_t} producer thread{'s' if top_t > 1 else ''}, geometric mean over "
        f"{', '.join(f'{m:,}' for m in conns)} connections: "
        + ", ".join(f"{d} {at_top[d] / 1e3:,.0f}k segments/s" for d in ranked)
    ]
    if "global" in at_top:
        text.append(
            "vs the global lock: "
            + ", ".join(f"{d} {at_top[d] / at_top['global']:.2f}x" for d in ranked if d != "global")
        )
    if top_t > 1 and min(r.threads for r in rows) == 1:
        ups = {d: _geomean([rate[(d, m, top_t)] / rate[(d, m, 1)] for m in conns]) for d in designs}
        text.append(f"{top_t} threads over 1: " + ", ".join(f"{d} {ups[d]:.2f}x" for d in designs))
        one = {d: _geomean([rate[(d, m, 1)] for m in conns]) for d in designs}
        best_one = max(one, key=lambda d: one[d])
        text.append(
            f"with 1 thread {best_one} is fastest ({one[best_one] / 1e3:,.0f}k segments/s), and "
            f"the best {top_t}-thread design reaches {at_top[best] / one[best_one]:.2f}x of that"
        )
    wins = best == "input_queue"
    if "input_queue" in at_top:
        text.append(
            "the input queue is the fastest design here"
            if wins
            else f"the input queue does not win here ({best} is fastest)"
        )
    ok_once = all(r.exactly_once for r in rows)
    ok_order = all(r.in_order for r in rows)
    drops = sum(r.drops for r in rows)
    text.append(
        (
            "every segment was processed exactly once"
            if ok_once
            else "SEGMENTS WERE LOST OR DUPLICATED"
        )
        + (" and in order per connection" if ok_order else ", BUT OUT OF ORDER")
        + f", {drops:,} queue-full drops"
    )
    text.append(
        "under the GIL only the checksum kernel can overlap, so these are the designs' costs in "
        "CPython, not a measure of SMP scaling"
    )
    return "; ".join(text) + "."


def overall_verdict(result: Result) -> str:
    """One sentence over both parts."""
    rows = result.lookup.rows
    ns = sorted({r.n for r in rows})
    rate = {(r.n, r.impl): r.lookups_per_s for r in rows}
    hi = ns[-1] if ns else 0
    look = (
        f"hashing PCBs makes demux {rate[(hi, 'table')] / rate[(hi, 'list')]:,.0f}x faster than "
        f"a list scan at {hi:,} connections"
        if (hi, "table") in rate and (hi, "list") in rate
        else "the lookup part was not measured in full"
    )
    lrows = result.locking
    if lrows:
        top_t = max(r.threads for r in lrows)
        g = {
            d: _geomean([r.segments_per_s for r in lrows if r.design == d and r.threads == top_t])
            for d in dict.fromkeys(r.design for r in lrows)
        }
        best = max(g, key=lambda d: g[d])
        ratio = g.get("input_queue", math.nan) / g.get("global", math.nan)
        g1 = {
            d: _geomean([r.segments_per_s for r in lrows if r.design == d and r.threads == 1])
            for d in g
        }
        lock = (
            f"with {top_t} threads under the GIL the per-connection input queue delivers "
            f"{ratio:.2f}x the global lock's segments/s ({best} fastest)"
        )
        if top_t > 1 and all(not math.isnan(v) for v in g1.values()):
            gain = g[best] / max(g1.values())
            lock += (
                f", {'above' if gain > 1 else 'below'} what one thread delivers "
                f"({gain:.2f}x the best 1-thread design)"
            )
    else:
        lock = "the locking part was not measured"
    return f"{look[0].upper()}{look[1:]}, while {lock}."


def to_json(result: Result, **meta: Any) -> dict[str, Any]:
    """The figures and verdicts in the schema of this module's docstring (``meta`` goes to the
    top level, after ``benchmark``)."""
    out: dict[str, Any] = {"benchmark": "pcb"}
    out.update(meta)
    out["seconds"] = result.seconds
    out["rounds"] = result.rounds
    lk = result.lookup
    out["lookup"] = {
        "rows": [asdict(r) for r in lk.rows],
        "ratios": lookup_ratios(lk.rows),
        "agree": lk.agree,
        "mismatches": lk.mismatches,
        "buckets": [asdict(b) for b in lk.buckets],
        "miss_share": MISS_SHARE,
        "list_budget": LIST_BUDGET,
        "verdict": lookup_verdict(lk),
    }
    out["locking"] = {
        "work": {
            "description": (
                f"Internet checksum of {result.passes} x {PAYLOAD_BYTES}-byte payload by a numba "
                "nogil kernel, then rcv_nxt = seq + 1460 and a record of the sequence number"
            ),
            "kernel": KERNEL_NAME,
            "nogil": True,
            "payload_bytes": PAYLOAD_BYTES,
            "passes": result.passes,
            "kernel_ns": result.kernel_ns,
        },
        "rows": [asdict(r) for r in result.locking],
        "ratios": locking_ratios(result.locking),
        "queue": {"limit": QUEUE_LIMIT, "per_pass": PER_PASS},
        "verdict": locking_verdict(result.locking, result.kernel_ns, result.passes),
    }
    out["verdict"] = overall_verdict(result)
    return out
