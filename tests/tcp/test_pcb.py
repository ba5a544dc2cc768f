"""PCB lookup and the per-connection input queue (netfast.tcp.pcb)."""

from __future__ import annotations

import random
import sys
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netfast.tcp.pcb import EPHEMERAL_HIGH, EPHEMERAL_LOW, InputQueue, Key, PcbTable

SERVER = 0xC6120001  # 198.18.0.1
CLIENT = 0xC6120002
OTHER = 0xC6120003

addr = st.integers(0, 2**32 - 1)
port = st.integers(0, 2**16 - 1)
# Few distinct values so that hypothesis produces collisions of whole tuples and buckets.
small_key = st.tuples(
    st.sampled_from([0, SERVER, CLIENT]),
    st.integers(0, 3),
    st.sampled_from([CLIENT, OTHER, 2**32 - 1]),
    st.integers(65533, 65535),
)


def random_keys(n: int, seed: int) -> list[Key]:
    rng = random.Random(seed)
    keys = {
        (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(16))
        for _ in range(n)
    }
    return sorted(keys)


# -- connection table --------------------------------------------------------------------


def test_many_random_tuples_against_a_dict() -> None:
    table: PcbTable[str, str] = PcbTable(buckets=1024)
    oracle: dict[Key, str] = {}
    keys = random_keys(10_000, 1)
    for i, k in enumerate(keys):
        table.insert(k, f"c{i}")
        oracle[k] = f"c{i}"
    assert len(table) == len(oracle)
    for k, v in oracle.items():
        assert table.lookup(*k) == v
    for k in random_keys(2000, 2):
        assert table.lookup(*k) == oracle.get(k)
    assert set(table) == set(oracle)
    assert dict(table.items()) == oracle
    assert sorted(table.connections()) == sorted(oracle.values())
    for k in keys[::2]:
        table.remove(k)
        del oracle[k]
    assert len(table) == len(oracle)
    for k in keys:
        assert table.lookup(*k) == oracle.get(k)


@given(
    buckets=st.sampled_from([1, 2, 8, 4096]),
    hash_key=st.integers(0, 2**128 - 1),
    ops=st.lists(
        st.tuples(st.sampled_from(["insert", "remove", "lookup"]), small_key | st.tuples(
            addr, port, addr, port)),
        max_size=60,
    ),
)  # fmt: skip
def test_operations_match_a_dict(buckets: int, hash_key: int, ops: list[tuple[str, Key]]) -> None:
    table: PcbTable[int, object] = PcbTable(buckets=buckets, hash_key=hash_key)
    oracle: dict[Key, int] = {}
    for n, (op, k) in enumerate(ops):
        if op == "insert":
            if k in oracle:
                with pytest.raises(ValueError):
                    table.insert(k, n)
            else:
                table.insert(k, n)
                oracle[k] = n
        elif op == "remove":
            if k in oracle:
                table.remove(k)
                del oracle[k]
            else:
                with pytest.raises(KeyError):
                    table.remove(k)
        else:
            assert table.lookup(*k) == oracle.get(k)
        assert len(table) == len(oracle)
    assert dict(table.items()) == oracle
    assert all(k in table for k in oracle)
    stats = table.stats()
    assert stats.connections == len(oracle)
    assert stats.max_bucket_len <= len(oracle)
    assert stats.used_buckets <= min(len(oracle), buckets)


def test_duplicate_insert_and_missing_remove() -> None:
    table: PcbTable[str, str] = PcbTable()
    k = (SERVER, 80, CLIENT, 50000)
    table.insert(k, "a")
    with pytest.raises(ValueError, match="already"):
        table.insert(k, "b")
    assert table.lookup(*k) == "a"
    table.remove(k)
    with pytest.raises(KeyError):
        table.remove(k)
    assert table.lookup(*k) is None
    assert len(table) == 0


@pytest.mark.parametrize(
    "key", [(-1, 80, CLIENT, 1), (2**32, 80, CLIENT, 1), (SERVER, 65536, CLIENT, 1),
            (SERVER, 80, CLIENT, -1)],
)  # fmt: skip
def test_insert_checks_fields(key: Key) -> None:
    with pytest.raises(ValueError):
        PcbTable[str, str]().insert(key, "x")


@pytest.mark.parametrize("buckets", [0, 3, 1000, -4])
def test_buckets_must_be_power_of_two(buckets: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        PcbTable(buckets=buckets)


def test_lookup_of_garbage_does_not_raise() -> None:
    table: PcbTable[str, str] = PcbTable()
    assert table.lookup(2**40, -5, 0, 2**20) is None
    assert table.demux(0, 0, 0, 0) is None
    assert "not a key" not in table


def test_buckets_spread_realistic_traffic() -> None:
    # One server port, clients from a /16 with sequential source ports: the common server
    # pattern.  A hash that ignored a field or mixed poorly would pile these up.
    table: PcbTable[int, str] = PcbTable(buckets=4096)
    rng = random.Random(3)
    n = 0
    for _ in range(400):
        faddr = 0xC6120000 | rng.getrandbits(16)
        base = rng.randrange(49152, 60000)
        for j in range(50):
            key = (SERVER, 443, faddr, base + j)
            if key not in table:
                table.insert(key, n)
                n += 1
    stats = table.stats()
    assert stats.connections == n
    # Mean load ~4.9; a uniform hash's longest of 4096 chains is ~14.
    assert stats.max_bucket_len <= 24
    assert stats.used_buckets >= 4096 * 0.95


def test_buckets_spread_when_only_one_field_varies() -> None:
    for field in range(4):
        table: PcbTable[int, str] = PcbTable(buckets=256)
        for i in range(2560):
            key = [SERVER, 80, CLIENT, 1024]
            # Vary high and low bits alike (addresses step by 2**20 + 1).
            key[field] = (i * 0x100001) & 0xFFFFFFFF if field in (0, 2) else i * 17 % 65536
            table.insert((key[0], key[1], key[2], key[3]), i)
        assert table.stats().max_bucket_len <= 30, field


def test_hash_key_changes_placement() -> None:
    keys = random_keys(200, 4)
    a: PcbTable[int, str] = PcbTable(buckets=4096, hash_key=1)
    b: PcbTable[int, str] = PcbTable(buckets=4096, hash_key=2**100 + 7)
    same = sum(a.bucket_of(*k) == b.bucket_of(*k) for k in keys)
    assert same < 10  # expected 200/4096


# -- listeners and demux -----------------------------------------------------------------


def test_listener_exact_address_beats_wildcard() -> None:
    table: PcbTable[str, str] = PcbTable()
    table.listen(0, 80, "any")
    table.listen(SERVER, 80, "server")
    assert table.lookup_listener(SERVER, 80) == "server"
    assert table.lookup_listener(OTHER, 80) == "any"
    assert table.lookup_listener(SERVER, 81) is None
    table.unlisten(SERVER, 80)
    assert table.lookup_listener(SERVER, 80) == "any"
    table.unlisten(0, 80)
    assert table.lookup_listener(SERVER, 80) is None
    with pytest.raises(KeyError):
        table.unlisten(0, 80)


def test_specific_listener_without_wildcard() -> None:
    table: PcbTable[str, str] = PcbTable()
    table.listen(SERVER, 22, "ssh")
    assert table.lookup_listener(SERVER, 22) == "ssh"
    assert table.lookup_listener(OTHER, 22) is None


def test_listen_twice_is_eaddrinuse() -> None:
    table: PcbTable[str, str] = PcbTable()
    table.listen(0, 80, "a")
    with pytest.raises(ValueError, match="EADDRINUSE"):
        table.listen(0, 80, "b")
    table.listen(SERVER, 80, "c")
    with pytest.raises(ValueError, match="EADDRINUSE"):
        table.listen(SERVER, 80, "d")
    assert sorted(table.listeners()) == [((0, 80), "a"), ((SERVER, 80), "c")]
    with pytest.raises(ValueError):
        table.listen(0, 70000, "e")


def test_demux_prefers_connection_then_listener() -> None:
    table: PcbTable[str, str] = PcbTable()
    table.listen(0, 80, "listener")
    table.insert((SERVER, 80, CLIENT, 50000), "conn")
    assert table.demux(SERVER, 80, CLIENT, 50000) == "conn"
    assert table.demux(SERVER, 80, CLIENT, 50001) == "listener"
    assert table.demux(SERVER, 80, OTHER, 50000) == "listener"
    assert table.demux(SERVER, 81, CLIENT, 50000) is None
    table.remove((SERVER, 80, CLIENT, 50000))
    assert table.demux(SERVER, 80, CLIENT, 50000) == "listener"


def test_port_in_use() -> None:
    table: PcbTable[str, str] = PcbTable()
    assert not table.port_in_use(SERVER, 80)
    table.listen(SERVER, 80, "l")
    assert table.port_in_use(SERVER, 80)
    assert table.port_in_use(0, 80)  # a wildcard bind would overlap it
    assert not table.port_in_use(OTHER, 80)
    table.listen(0, 8080, "any")
    assert table.port_in_use(OTHER, 8080)
    table.insert((SERVER, 50000, CLIENT, 80), "c1")
    table.insert((SERVER, 50000, OTHER, 80), "c2")
    assert table.port_in_use(SERVER, 50000)
    table.remove((SERVER, 50000, CLIENT, 80))
    assert table.port_in_use(SERVER, 50000)
    table.remove((SERVER, 50000, OTHER, 80))
    assert not table.port_in_use(SERVER, 50000)
    table.unlisten(SERVER, 80)
    assert not table.port_in_use(0, 80)


# -- ephemeral ports ---------------------------------------------------------------------


def test_ephemeral_starts_at_the_offset() -> None:
    table: PcbTable[str, str] = PcbTable()
    assert table.ephemeral_port(CLIENT, SERVER, 80, 0) == 49152
    assert table.ephemeral_port(CLIENT, SERVER, 80, 16383) == 65535
    assert table.ephemeral_port(CLIENT, SERVER, 80, 16384 + 5) == 49157
    assert table.ephemeral_port(CLIENT, SERVER, 80, 2**64 + 1) == 49152 + (2**64 + 1) % 16384


def test_ephemeral_ports_unique_in_range_and_skip_used() -> None:
    table: PcbTable[str, str] = PcbTable()
    rng = random.Random(5)
    ports = []
    for i in range(3000):
        p = table.ephemeral_port(CLIENT, SERVER, 80, rng.getrandbits(32))
        assert EPHEMERAL_LOW <= p <= EPHEMERAL_HIGH
        assert table.lookup(CLIENT, p, SERVER, 80) is None
        table.insert((CLIENT, p, SERVER, 80), f"c{i}")
        ports.append(p)
    assert len(set(ports)) == len(ports)


def test_ephemeral_skips_taken_and_wraps() -> None:
    table: PcbTable[str, str] = PcbTable()
    for p in (65534, 65535, 49152):
        table.insert((CLIENT, p, SERVER, 80), "x")
    assert table.ephemeral_port(CLIENT, SERVER, 80, 65534 - 49152) == 49153
    # Another destination may reuse the same local port (RFC 6056: the 4-tuple must differ).
    assert table.ephemeral_port(CLIENT, OTHER, 80, 65534 - 49152) == 65534
    assert table.ephemeral_port(CLIENT, SERVER, 81, 65534 - 49152) == 65534


def test_ephemeral_skips_listening_ports() -> None:
    table: PcbTable[str, str] = PcbTable()
    table.listen(CLIENT, 49152, "l")
    table.listen(0, 49153, "any")
    table.listen(OTHER, 49154, "elsewhere")  # another address: no conflict
    assert table.ephemeral_port(CLIENT, SERVER, 80, 0) == 49154


def test_ephemeral_exhausted() -> None:
    table: PcbTable[str, str] = PcbTable()
    for p in range(EPHEMERAL_LOW, EPHEMERAL_HIGH + 1):
        table.insert((CLIENT, p, SERVER, 80), "x")
    with pytest.raises(ValueError, match="no ephemeral port"):
        table.ephemeral_port(CLIENT, SERVER, 80, 123)
    assert table.ephemeral_port(CLIENT, SERVER, 443, 123) == 49152 + 123
    table.remove((CLIENT, 60000, SERVER, 80))
    assert table.ephemeral_port(CLIENT, SERVER, 80, 123) == 60000


# -- input queue -------------------------------------------------------------------------


def test_drain_handles_in_fifo_order() -> None:
    q: InputQueue[int] = InputQueue(limit=10, per_pass=10)
    for i in range(5):
        assert q.push(i)
    seen: list[int] = []
    assert q.drain(seen.append) == 5
    assert seen == [0, 1, 2, 3, 4]
    assert q.pending == 0
    assert q.drain(seen.append) == 0


def test_reentrant_pushes_are_handled_by_the_running_drain() -> None:
    q: InputQueue[str] = InputQueue(limit=100, per_pass=100)
    seen: list[str] = []
    nested: list[int] = []

    def handle(item: str) -> None:
        assert q.busy
        seen.append(item)
        if item.startswith("a"):
            # A segment for this same connection arrives while it is processed.
            q.push("b" + item[1:])
            q.push("c" + item[1:])
            nested.append(q.drain(handle))  # another CPU finding the connection busy

    q.push("a1")
    q.push("a2")
    assert q.drain(handle) == 6
    assert seen == ["a1", "a2", "b1", "c1", "b2", "c2"]
    assert nested == [0, 0]
    assert not q.busy
    assert q.pending == 0


def test_per_pass_bound_holds_with_reentrant_pushes() -> None:
    q: InputQueue[int] = InputQueue(limit=1000, per_pass=8)
    seen: list[int] = []

    def handle(item: int) -> None:
        seen.append(item)
        q.push(item + 100)  # a handler that always produces more work: the livelock case

    q.push(0)
    q.push(1)
    assert q.drain(handle) == 8
    assert q.pending == 2  # two chains, one successor each still waiting
    assert q.counters["tcp.in.queue_yield"] == 1
    assert seen == [0, 1, 100, 101, 200, 201, 300, 301]
    assert q.drain(handle) == 8
    assert seen[8:] == [400, 401, 500, 501, 600, 601, 700, 701]


def test_per_pass_bound_on_a_long_queue() -> None:
    q: InputQueue[int] = InputQueue(limit=256, per_pass=64)
    for i in range(200):
        q.push(i)
    seen: list[int] = []
    passes = []
    while q.pending:
        passes.append(q.drain(seen.append))
    assert passes == [64, 64, 64, 8]
    assert seen == list(range(200))
    assert q.counters["tcp.in.queue_yield"] == 3


def test_queue_limit_counted() -> None:
    q: InputQueue[int] = InputQueue(limit=3, per_pass=2)
    assert [q.push(i) for i in range(5)] == [True, True, True, False, False]
    assert q.counters["tcp.in.queue_full"] == 2
    assert q.pending == 3
    q.drain(lambda _: None)
    assert q.push(9)


def test_limit_applies_to_reentrant_pushes() -> None:
    q: InputQueue[int] = InputQueue(limit=2, per_pass=100)
    results: list[bool] = []

    def handle(item: int) -> None:
        if item == 0:
            results.extend(q.push(i) for i in (1, 2, 3))

    q.push(0)
    assert q.drain(handle) == 3
    assert results == [True, True, False]
    assert q.counters["tcp.in.queue_full"] == 1


def test_handler_exception_releases_the_queue() -> None:
    q: InputQueue[int] = InputQueue()
    q.push(1)
    q.push(2)

    def boom(item: int) -> None:
        raise RuntimeError(item)

    with pytest.raises(RuntimeError):
        q.drain(boom)
    assert not q.busy
    seen: list[int] = []
    assert q.drain(seen.append) == 1
    assert seen == [2]


@pytest.mark.parametrize(("limit", "per_pass"), [(0, 1), (1, 0)])
def test_queue_parameters_checked(limit: int, per_pass: int) -> None:
    with pytest.raises(ValueError):
        InputQueue(limit=limit, per_pass=per_pass)


def test_concurrent_producers_never_run_two_drains_and_lose_nothing() -> None:
    q: InputQueue[tuple[int, int]] = InputQueue(limit=100_000, per_pass=16)
    inside = 0
    overlap = False
    seen: list[tuple[int, int]] = []
    guard = threading.Lock()

    def handle(item: tuple[int, int]) -> None:
        nonlocal inside, overlap
        with guard:
            inside += 1
            overlap |= inside > 1
        seen.append(item)
        with guard:
            inside -= 1

    def producer(t: int) -> None:
        for i in range(2000):
            q.push((t, i))
            q.drain(handle)

    threads = [threading.Thread(target=producer, args=(t,)) for t in range(4)]
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # make the threads interleave inside push/drain
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old_interval)
    while q.pending:
        q.drain(handle)
    assert not overlap
    assert len(seen) == 8000
    for t in range(4):  # each producer's items stay in its order
        assert [i for (u, i) in seen if u == t] == list(range(2000))
