"""``netfast bench pcb``: the lookup structures agree (and a wrong one is caught), every locking
design delivers each segment once and in order (and broken queues are caught), and the command
prints its tables and writes the JSON schema of :mod:`netfast.bench.pcb`."""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path

import pytest

from netfast.bench import pcb
from netfast.cli import main
from netfast.tcp.pcb import QUEUE_FULL, PcbTable

STEP = pcb.PAYLOAD_BYTES

# -- part 1 ------------------------------------------------------------------------------------


def test_lookup_structures_agree_and_the_list_is_bounded() -> None:
    got = pcb.measure_lookup(
        (50, 2_000), seconds=0.01, rounds=1, queries=1_000, list_budget=400_000
    )
    assert got.agree and got.mismatches == 0
    assert {(r.n, r.impl) for r in got.rows} == {(n, i) for n in (50, 2_000) for i in pcb.IMPLS}
    lookups = {(r.n, r.impl): r.lookups for r in got.rows}
    assert lookups[(50, "list")] == 1_000 and lookups[(2_000, "list")] == 200
    assert lookups[(2_000, "table")] == lookups[(2_000, "dict")] == 1_000
    assert all(r.ns_per_lookup > 0 and r.lookups_per_s > 0 for r in got.rows)
    chains = {b.n: b for b in got.buckets}
    assert chains[2_000].buckets == pcb.STACK_BUCKETS
    assert 1 <= chains[2_000].mean_chain <= chains[2_000].max_chain
    ratios = {r["n"]: r for r in pcb.lookup_ratios(got.rows)}
    assert ratios[2_000]["table_over_list"] > 1  # 2,000 entries scanned vs one short chain


class _ForgetfulTable(PcbTable[object, object]):
    """Loses every connection whose local port is 443: those lookups fall to the listener."""

    def demux(self, laddr: int, lport: int, faddr: int, fport: int) -> object:
        if lport == 443:
            return self.lookup_listener(laddr, lport)
        return super().demux(laddr, lport, faddr, fport)


def test_lookup_catches_a_structure_that_answers_wrong() -> None:
    structures = {**pcb.STRUCTURES, "forgetful": lambda: _ForgetfulTable(buckets=64)}
    got = pcb.measure_lookup((200,), seconds=0.01, rounds=1, queries=500, structures=structures)
    assert not got.agree and got.mismatches > 100
    assert "wrong PCB" in pcb.lookup_verdict(got)


def test_lookup_structures_on_listeners() -> None:
    for make in pcb.STRUCTURES.values():
        s = make()
        s.insert((1, 80, 2, 3), "conn")
        s.listen(0, 80, "any")
        s.listen(1, 443, "exact")
        s.listen(0, 443, "wild")
        assert s.demux(1, 80, 2, 3) == "conn"
        assert s.demux(1, 80, 2, 4) == "any"
        assert s.demux(1, 443, 2, 3) == "exact"
        assert s.demux(5, 443, 2, 3) == "wild"
        assert s.demux(1, 22, 2, 3) is None


# -- part 2: the checker -------------------------------------------------------------------------


def seqs(*ks: int) -> list[int]:
    return [k * STEP for k in ks]


def test_check_delivery() -> None:
    ok = pcb.check_delivery([3, 2], [seqs(0, 1, 2), seqs(0, 1)], [[], []])
    assert (ok.segments, ok.exactly_once, ok.in_order, ok.drops) == (5, True, True, 0)
    swapped = pcb.check_delivery([3], [seqs(0, 2, 1)], [[]])
    assert swapped.exactly_once and not swapped.in_order
    lost = pcb.check_delivery([3], [seqs(0, 2)], [[]])
    assert not lost.exactly_once and lost.in_order
    assert pcb.check_delivery([3], [seqs(0, 2)], [seqs(1)]).exactly_once  # a counted drop
    twice = pcb.check_delivery([2], [seqs(0, 1, 1)], [[]])
    assert not twice.exactly_once and not twice.in_order
    extra = pcb.check_delivery([1], [seqs(0, 1)], [[]])
    assert not extra.exactly_once
    # The work check: a total that is not the payloads' checksums means skipped work.
    row_sum = pcb.np.arange(pcb._POOL_ROWS, dtype=pcb.np.int64) + 10
    assert pcb.check_delivery([2], [seqs(0, 1)], [[]], [21], row_sum).exactly_once
    assert not pcb.check_delivery([2], [seqs(0, 1)], [[]], [10], row_sum).exactly_once


# -- part 2: the designs ---------------------------------------------------------------------------


@pytest.mark.parametrize("design", pcb.DESIGNS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("connections", [1, 64])
def test_every_design_delivers_once_and_in_order(
    design: str, threads: int, connections: int
) -> None:
    got = pcb.measure_lock_once(design, threads, connections, 0.05)
    assert got.segments > 100
    assert got.exactly_once and got.in_order
    assert got.drops == 0


def test_measurement_is_bounded_by_segments() -> None:
    got = pcb.measure_lock_once("input_queue", 2, 4, 5.0, max_segments=500)
    assert got.segments == 500 and got.seconds < 5.0
    assert got.exactly_once and got.in_order


class _StandIn:
    """An InputQueue-like stand-in: FIFO, drains everything, never busy."""

    def __init__(self) -> None:
        self.items: deque[int] = deque()
        self.counters: Counter[str] = Counter()
        self.pushes = 0

    def push(self, item: int) -> bool:
        self.pushes += 1
        self.items.append(item)
        return True

    def drain(self, handle: Callable[[int], None]) -> int:
        n = 0
        while self.items:
            handle(self.items.popleft())
            n += 1
        return n

    @property
    def pending(self) -> int:
        return len(self.items)


class _Dropping(_StandIn):
    """Loses every seventh segment without counting it."""

    def push(self, item: int) -> bool:
        self.pushes += 1
        if self.pushes % 7:
            self.items.append(item)
        return True


class _CountedDrops(_StandIn):
    """Refuses every fifth segment and counts it, as a full InputQueue does."""

    def push(self, item: int) -> bool:
        self.pushes += 1
        if self.pushes % 5 == 0:
            self.counters[QUEUE_FULL] += 1
            return False
        self.items.append(item)
        return True


class _Reordering(_StandIn):
    """Handles segments in pairs, the later one first."""

    def drain(self, handle: Callable[[int], None]) -> int:
        n = 0
        while len(self.items) >= 2:
            first, second = self.items.popleft(), self.items.popleft()
            handle(second)
            handle(first)
            n += 2
        return n


class _Duplicating(_StandIn):
    """Handles every segment twice."""

    def drain(self, handle: Callable[[int], None]) -> int:
        n = 0
        while self.items:
            item = self.items.popleft()
            handle(item)
            handle(item)
            n += 1
        return n


def run_with(queue: type[_StandIn], threads: int = 1) -> pcb.LockOnce:
    return pcb.measure_lock_once(
        "input_queue", threads, 8, 2.0, queue_factory=queue, max_segments=2_000
    )


def test_a_correct_stand_in_passes() -> None:
    got = run_with(_StandIn)
    assert got.segments == 2_000 and got.exactly_once and got.in_order


@pytest.mark.parametrize("threads", [1, 2])
def test_checker_catches_a_queue_that_loses_segments(threads: int) -> None:
    got = run_with(_Dropping, threads)
    assert not got.exactly_once and got.drops == 0


def test_counted_drops_are_reported_not_hidden() -> None:
    got = run_with(_CountedDrops)
    assert got.exactly_once and got.in_order
    # Every fifth push per connection: about 400 of the 2,000, each counted, none processed.
    assert got.drops + got.segments == 2_000 and 350 < got.drops <= 400


def test_checker_catches_a_queue_that_reorders() -> None:
    got = run_with(_Reordering)
    assert not got.in_order


def test_checker_catches_a_queue_that_processes_twice() -> None:
    got = run_with(_Duplicating)
    assert not got.exactly_once


def test_measure_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown design"):
        pcb.measure_lock_once("spinlock", 1, 1, 0.01)
    with pytest.raises(ValueError):
        pcb.measure_lock_once("global", 0, 1, 0.01)
    with pytest.raises(ValueError):
        pcb.measure_locking(["global"], seconds=0)
    with pytest.raises(ValueError):
        pcb.measure_lookup((0,))


def test_verdicts_follow_the_figures() -> None:
    def row(design: str, m: int, t: int, rate: float) -> pcb.LockRow:
        return pcb.LockRow(design, m, t, int(rate), 1.0, rate, True, True, 0)

    rows = [
        row("global", 1, 1, 100.0), row("conn_lock", 1, 1, 90.0), row("input_queue", 1, 1, 80.0),
        row("global", 1, 2, 50.0), row("conn_lock", 1, 2, 60.0), row("input_queue", 1, 2, 40.0),
    ]  # fmt: skip
    text = pcb.locking_verdict(rows, 300.0, 1)
    assert "the input queue does not win here (conn_lock is fastest)" in text
    assert "input_queue 0.80x" in text and "0.60x of that" in text
    broken = [*rows[:-1], pcb.LockRow("input_queue", 1, 2, 40, 1.0, 40.0, True, False, 3)]
    assert "OUT OF ORDER" in pcb.locking_verdict(broken, 300.0, 1)
    ratios = pcb.locking_ratios(rows)
    assert {(r["design"], r["threads"]): r["over_global"] for r in ratios} == {
        ("conn_lock", 1): 0.9, ("input_queue", 1): 0.8,
        ("conn_lock", 2): 1.2, ("input_queue", 2): 0.8,
    }  # fmt: skip


# -- the command -----------------------------------------------------------------------------------

TOP = {
    "benchmark", "date", "python", "machine", "cpus", "switch_interval_s", "quick", "seed",
    "seconds", "rounds", "lookup", "locking", "verdict",
}  # fmt: skip
LOOKUP = {
    "rows",
    "ratios",
    "agree",
    "mismatches",
    "buckets",
    "miss_share",
    "list_budget",
    "verdict",
}
LOCKING = {"work", "rows", "ratios", "queue", "verdict"}
LOCK_ROW = {
    "design", "connections", "threads", "segments", "seconds", "segments_per_s", "exactly_once",
    "in_order", "drops",
}  # fmt: skip


def check_doc(doc: dict[str, object], ns: set[int], ms: set[int]) -> None:
    assert set(doc) == TOP and doc["benchmark"] == "pcb"
    look = doc["lookup"]
    assert isinstance(look, dict) and set(look) == LOOKUP
    assert look["agree"] is True
    assert {(r["n"], r["impl"]) for r in look["rows"]} == {(n, i) for n in ns for i in pcb.IMPLS}
    for r in look["rows"]:
        assert set(r) == {"n", "impl", "ns_per_lookup", "lookups_per_s", "lookups"}
    assert {r["n"] for r in look["ratios"]} == ns
    assert all(set(r) == {"n", "table_over_list", "table_over_dict"} for r in look["ratios"])
    assert all(set(b) == {"n", "buckets", "max_chain", "mean_chain"} for b in look["buckets"])
    lock = doc["locking"]
    assert isinstance(lock, dict) and set(lock) == LOCKING
    assert lock["work"]["nogil"] is True and lock["work"]["payload_bytes"] == 1460
    cells = {(r["design"], r["connections"], r["threads"]) for r in lock["rows"]}
    assert cells == {(d, m, t) for d in pcb.DESIGNS for m in ms for t in (1, 2)}
    for r in lock["rows"]:
        assert set(r) == LOCK_ROW
        assert r["exactly_once"] and r["in_order"] and r["drops"] == 0
        assert r["segments_per_s"] == pytest.approx(r["segments"] / r["seconds"])
    assert {(r["design"], r["connections"], r["threads"]) for r in lock["ratios"]} == {
        (d, m, t) for d in ("conn_lock", "input_queue") for m in ms for t in (1, 2)
    }
    assert all(
        set(r) == {"connections", "threads", "design", "over_global"} for r in lock["ratios"]
    )
    for text in (look["verdict"], lock["verdict"], doc["verdict"]):
        assert isinstance(text, str) and len(text) > 40


def test_cli_writes_the_tables_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pcb.json"
    argv = ["bench", "pcb", "--seconds", "0.03", "--rounds", "1", "--n", "100", "--n", "1000"]
    assert main([*argv, "--connections", "1", "--connections", "8", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "PCB demux" in text and "TCP input" in text and "verdict:" in text
    doc = json.loads(out.read_text())
    check_doc(doc, {100, 1000}, {1, 8})
    assert doc["quick"] is False and doc["rounds"] == 1
    assert doc["seconds"] == {"lookup": 0.03, "locking": 0.03}


@pytest.mark.slow
def test_cli_quick(tmp_path: Path) -> None:
    out = tmp_path / "pcb.json"
    assert main(["bench", "pcb", "--quick", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    check_doc(doc, set(pcb.LOOKUP_N_QUICK), set(pcb.LOCK_CONNS_QUICK))
    assert doc["quick"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seconds", "0"], "--seconds must be positive"),
        (["--rounds", "0"], "--rounds must be at least 1"),
        (["--passes", "0"], "--passes must be at least 1"),
        (["--n", "0"], "--n must be at least 1"),
        (["--connections", "-3"], "--connections must be at least 1"),
        (["--threads", "0"], "--threads must be at least 1 and at most 64"),
        (["--threads", "1000"], "--threads must be at least 1 and at most 64"),
    ],
)
def test_cli_bad_arguments(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "pcb", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
