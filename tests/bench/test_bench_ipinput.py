"""``netfast bench ipinput``: every hostile kind dropped and counted once under its counter, the
hash and the interface loop agreeing, generated traffic without captures, the JSON and the CLI.
No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netfast.bench import ipinput as ib
from netfast.cli import main
from netfast.ip import router as router_module
from netfast.ip.iface import IfAddr, Interface
from netfast.ip.input import INPUT_DROPS, ip_input_check
from netfast.ip.local import LocalAddrs
from netfast.ip.router import FWD_FORWARDED, IP_OUTCOMES
from netfast.route.table import RoutingTable

TOP_KEYS = {
    "benchmark", "date", "python", "machine", "seconds_per_measurement", "rounds", "traffic",
    "integrity", "local",
}  # fmt: skip
TRAFFIC_KEYS = {
    "source", "captures", "frames_read", "ipv4_frames", "rejected", "rejected_share",
    "ttl_expiring", "valid_packets", "note",
}  # fmt: skip
SCALAR_KEYS = {
    "packets", "check_ns", "parse_ns", "input_ns", "input_nocheck_ns", "checks_ns",
    "checks_share", "check_call_share", "hostile_input_ns", "hostile_over_valid",
}  # fmt: skip
VECTOR_KEYS = {
    "batch", "classify_ns", "step_ns", "classify_share", "punted", "hostile_classify_ns",
    "hostile_step_ns", "hostile_over_valid",
}  # fmt: skip
HOSTILE_KEYS = {
    "kind", "counter", "what", "sent", "scalar_counted", "vector", "vector_counted", "ok",
    "scalar_ns", "over_valid",
}  # fmt: skip
LOCAL_KEYS = {
    "addrs_per_interface", "local_share", "lookups", "batch", "rows", "crossover", "verdict",
}  # fmt: skip
LOCAL_ROW_KEYS = {
    "addrs", "interfaces", "hash_per_s", "loop_per_s", "hash_over_loop", "batch_hash_per_s",
    "batch_loop_per_s", "batch_hash_over_loop", "agree",
}  # fmt: skip


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return ib.make_table()


@pytest.fixture(scope="module")
def valid() -> list[bytes]:
    """Real packets when the captures are there, then generated ones: both are broken below."""
    real = ib.load_traffic(ib.find_captures())
    frames = real.frames[::40] if real.source == "capture" else []
    return frames + ib.generated_frames(24)


def check_document(doc: dict[str, object], counts: int) -> None:
    assert set(doc) == TOP_KEYS and doc["benchmark"] == "ipinput"
    traffic, integrity, local = doc["traffic"], doc["integrity"], doc["local"]
    assert isinstance(traffic, dict) and set(traffic) == TRAFFIC_KEYS
    assert isinstance(integrity, dict)
    assert set(integrity) == {"scalar", "vector", "hostile", "all_counted", "verdict"}
    assert set(integrity["scalar"]) == SCALAR_KEYS and set(integrity["vector"]) == VECTOR_KEYS
    assert [r["kind"] for r in integrity["hostile"]] == [k.name for k in ib.HOSTILE_KINDS]
    assert all(set(r) == HOSTILE_KEYS and r["ok"] for r in integrity["hostile"])
    assert integrity["all_counted"] is True and integrity["verdict"].endswith(".")
    assert isinstance(local, dict) and set(local) == LOCAL_KEYS
    assert len(local["rows"]) == counts
    assert all(set(r) == LOCAL_ROW_KEYS and r["agree"] for r in local["rows"])
    assert set(local["crossover"]) == {"scalar", "batch"}
    assert all(v is None or isinstance(v, int) for v in local["crossover"].values())


def test_valid_packets_are_forwarded(valid: list[bytes], table: RoutingTable) -> None:
    # the packets the hostile kinds break are forwarded whole, so the break is the only fault
    router = ib.make_router(table)
    for f in valid:
        router.input(0, f, ib.NOW)
    assert router.counters[FWD_FORWARDED] == len(valid)


def test_every_input_counter_has_a_hostile_kind() -> None:
    assert set(INPUT_DROPS) <= {k.counter for k in ib.HOSTILE_KINDS}
    assert len({k.name for k in ib.HOSTILE_KINDS}) == len(ib.HOSTILE_KINDS)


@pytest.mark.parametrize("kind", ib.HOSTILE_KINDS, ids=lambda k: k.name)
def test_hostile_kind_dropped_and_counted_once(
    kind: ib.HostileKind, valid: list[bytes], table: RoutingTable
) -> None:
    frames = ib.hostile_frames(kind, valid, 2 * len(valid))
    for f in frames:
        if kind.counter in INPUT_DROPS:
            assert ip_input_check(f, 14) == kind.counter
        router = ib.make_router(table)
        router.input(0, f, ib.NOW)
        outcomes = {o: router.counters[o] for o in IP_OUTCOMES if router.counters[o]}
        assert outcomes == {kind.counter: 1}
    assert ib.count_scalar(kind, frames, table) == (len(frames), 0)
    mode, counted, others = ib.count_vector(kind, frames, table)
    assert (counted, others) == (len(frames), 0)
    expected = "punted" if kind.name in ("options_overflow", "ttl_expired") else "dropped"
    assert mode == expected


def test_checks_skipped_rebinds_and_restores(valid: list[bytes], table: RoutingTable) -> None:
    kind = next(k for k in ib.HOSTILE_KINDS if k.name == "bad_checksum")
    broken = kind.make(valid[0], 0)
    original = router_module.ip_input_check
    router = ib.make_router(table)
    with ib.checks_skipped():
        assert router_module.ip_input_check is ib.bare_header
        router.input(0, broken, ib.NOW)
    assert router_module.ip_input_check is original
    assert router.counters[FWD_FORWARDED] == 1  # not checked: forwarded
    router.input(0, broken, ib.NOW)
    assert router.counters[kind.counter] == 1


_addr = st.integers(0, 2**32 - 1)
_ifaddr = st.builds(IfAddr, _addr, st.integers(1, 32))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(_ifaddr, max_size=6), min_size=1, max_size=8),
    st.lists(_addr, max_size=40),
    st.data(),
)
def test_hash_and_loop_agree(
    addr_lists: list[list[IfAddr]], others: list[int], data: st.DataObject
) -> None:
    ifaces = [Interface(k, f"if{k}", bytes(6), tuple(addrs)) for k, addrs in enumerate(addr_lists)]
    configured = [a for addrs in addr_lists for a in addrs]
    probes = list(others) + [a.addr for a in configured] + [a.broadcast for a in configured]
    probes += [0xFFFFFFFF, data.draw(_addr)]
    local = LocalAddrs(ifaces)
    for d in probes:
        assert local.is_local(d) == ib.loop_is_local(ifaces, d)
    arr = np.array(probes, np.uint32)
    assert np.array_equal(local.local_mask(arr), ib.loop_local_mask(ifaces, arr))


@pytest.mark.parametrize("n", ib.ADDR_COUNTS)
def test_local_setup(n: int) -> None:
    import random

    ifaces = ib.local_interfaces(n)
    addrs = [a.addr for i in ifaces for a in i.addrs]
    assert len(set(addrs)) == n and all(len(i.addrs) <= ib.ADDRS_PER_INTERFACE for i in ifaces)
    dsts, labels = ib.destinations(ifaces, [0x08080808, 0x01010101], 200, random.Random(0))
    assert sum(labels) == round(200 * ib.LOCAL_SHARE)
    assert [d in set(addrs) for d in dsts] == labels


def row(addrs: int, ratio: float, batch_ratio: float) -> ib.LocalRow:
    return ib.LocalRow(addrs, 1, ratio, 1.0, ratio, batch_ratio, 1.0, batch_ratio, True)


def test_crossover_and_verdict() -> None:
    rows = [row(1, 0.5, 0.1), row(4, 1.5, 0.9), row(16, 0.9, 2.0), row(64, 3.0, 4.0)]
    assert ib.crossover(rows) == 64  # wins at 4, loses again at 16: not for good before 64
    assert ib.crossover(rows, batch=True) == 16
    assert ib.crossover([row(1, 2.0, 0.5)]) == 1 and ib.crossover([row(1, 2.0, 0.5)], True) is None
    text = ib.local_verdict(rows)
    assert "from 64 configured addresses" in text and "from 16 configured" in text


def test_generated_traffic_without_captures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NETFAST_SHARED_DATA", str(tmp_path))
    assert ib.find_captures() == []
    traffic = ib.load_traffic(ib.find_captures())
    assert traffic.source == "generated" and "generated" in traffic.note
    assert all(not isinstance(ip_input_check(f, 14), str) for f in traffic.frames)
    res = ib.measure(traffic, seconds=0.005, rounds=1, counts=(1, 16), batch=256, lookups=64)
    meta = {"date": "2026-01-01", "python": "3", "machine": "m", "seconds_per_measurement": 0.005}
    doc = json.loads(json.dumps(ib.to_json(res, **meta, rounds=1)))
    check_document(doc, counts=2)
    assert doc["traffic"]["source"] == "generated" and doc["traffic"]["rejected"] == {}


def test_cli_quick_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ipinput.json"
    assert main(["bench", "ipinput", "--quick", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "integrity checks:" in text and "local or not:" in text
    doc = json.loads(out.read_text())
    check_document(doc, counts=len(ib.ADDR_COUNTS))
    assert doc["seconds_per_measurement"] == 0.1 and doc["rounds"] == 3


def test_cli_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "ipinput", "--seconds", "0"]) == 2
    assert "--seconds must be positive" in capsys.readouterr().err
    assert main(["bench", "ipinput", "--rounds", "0"]) == 2
    assert "--rounds must be at least 1" in capsys.readouterr().err
