"""``netfast forward``: the demo, a capture through the default router, and usage errors.

scapy is the oracle for the frames written: checksums, TTLs and addresses are checked against
its dissection of the input and output captures, not against netfast's own parser.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from scapy.all import IP, Ether

from netfast.cli import main
from netfast.link.pcap import read_capture
from netfast.router.demo import default_config_path

SAMPLE = Path(str(resources.files("netfast.data") / "sample-http.pcap"))
ROUTER_MACS = {
    "eth0": "fe:ff:20:00:01:00",
    "eth1": "02:00:00:00:01:01",
    "eth2": "02:00:00:00:02:01",
}
NEIGHBOR_MACS = {
    "eth0": "00:00:01:00:00:00",
    "eth1": "02:00:00:00:01:02",
    "eth2": "02:00:00:00:02:02",
}


def test_demo_prints_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["forward", "--packets", "4000", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    for needle in (
        "Verdicts",
        "forwarded",
        "refused by the firewall",
        "pfil.in.drop",
        "ip.in.bad_checksum",
        "ip.in.ttl_exceeded",
        "ip.fwd.no_route",
        "ip.fwd.frag_needed",
        "icmp.time_exceeded",
        "Egress",
        "eth2",
        "Mpps",
        "scalar only",
        "warm-up",
        "the scalar path alone",
        "punted to it",
    ):
        assert needle in out, f"{needle!r} missing from the demo output:\n{out}"


def _ip_key(pkt: IP) -> tuple[str, str, int, int, bytes]:
    """What forwarding must not change (TTL and checksum it must)."""
    return (pkt.src, pkt.dst, pkt.id, pkt.proto, bytes(pkt.payload))


def test_capture_through_the_default_router(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    argv = ["forward", "--config", str(default_config_path()), "--in", str(SAMPLE)]
    assert main([*argv, "--out-dir", str(out_dir)]) == 0
    report = capsys.readouterr().out
    assert "Verdicts" in report
    assert sorted(p.name for p in out_dir.iterdir()) == ["eth0.pcap", "eth1.pcap", "eth2.pcap"]

    inputs = {}
    for rec in read_capture(SAMPLE):
        pkt = Ether(rec.data)
        if IP in pkt:
            inputs.setdefault(_ip_key(pkt[IP]), pkt)
    forwarded = 0
    for port in ("eth0", "eth1", "eth2"):
        for rec in read_capture(out_dir / f"{port}.pcap"):
            pkt = Ether(rec.data)
            assert pkt.src == ROUTER_MACS[port]
            if IP not in pkt:
                continue
            ip = pkt[IP]
            original = inputs.get(_ip_key(ip))
            if original is None:  # not in the input: originated by the router (ICMP)
                assert ip.src in ("145.254.160.1", "198.18.1.1", "198.18.2.1"), pkt.summary()
                continue
            forwarded += 1
            assert pkt.dst == NEIGHBOR_MACS[port]
            assert ip.ttl == original[IP].ttl - 1
            check = IP(bytes(ip))
            del check.chksum
            assert IP(bytes(check)).chksum == ip.chksum, "header checksum not updated right"
    assert forwarded > 0

    # Again, without --force: refused, and the captures are left as they were.
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    assert main([*argv, "--out-dir", str(out_dir)]) == 2
    assert "exists" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before
    assert main([*argv, "--out-dir", str(out_dir), "--force"]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--live"], "need --config"),
        (["--in", "x.pcap"], "need --config"),
        (["--config", "CFG"], "give --in PCAP --out-dir DIR"),
        (["--config", "CFG", "--in", "x.pcap"], "give --in PCAP --out-dir DIR"),
        (["--config", "CFG", "--live", "--in", "x.pcap"], "takes no --in"),
        (["--config", "CFG", "--in", "x", "--out-dir", "d", "--duration", "3"], "--duration needs"),
        (["--packets", "0"], "--packets must be at least 1"),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(default_config_path()) if a == "CFG" else a for a in argv]
    assert main(["forward", *argv]) == 2
    assert message in capsys.readouterr().err


def test_config_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "r.toml"
    cfg.write_text('[[interface]]\nname = "eth0"\nmac = "02:00:00:00:00:01"\nmtu = 12\n')
    assert main(["forward", "--config", str(cfg), "--live"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"netfast: error: {cfg}: interface[0].mtu: 12 is outside 68..65535"


def test_live_without_links_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "r.toml"
    cfg.write_text('[[interface]]\nname = "eth0"\nmac = "02:00:00:00:00:01"\n')
    assert main(["forward", "--config", str(cfg), "--live", "--duration", "1"]) == 2
    assert "no interface has an afpacket or tap link" in capsys.readouterr().err


def test_workers_need_packet_links(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "r.toml"
    cfg.write_text(
        '[[interface]]\nname = "eth0"\nmac = "02:00:00:00:00:01"\n'
        'link = { type = "tap", device = "nf0" }\n'
    )
    argv = ["forward", "--config", str(cfg), "--live", "--duration", "1", "--workers"]
    assert main([*argv, "2"]) == 2
    assert "--workers needs afpacket links" in capsys.readouterr().err
    assert main([*argv, "0"]) == 2
    assert "--workers 0: must be 1..64" in capsys.readouterr().err


def test_bad_capture_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    cfg = tmp_path / "r.toml"
    cfg.write_text('[[interface]]\nname = "eth0"\nmac = "02:00:00:00:00:01"\n')
    argv = ["forward", "--config", str(cfg), "--in", str(bad), "--out-dir", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "bad.pcap" in capsys.readouterr().err
    assert not (tmp_path / "o" / "eth0.pcap").exists()


def test_demo_trace_is_what_it_claims() -> None:
    """The generated trace, read by scapy: well-formed where it says so, broken where it says so,
    destinations inside announced prefixes, and the same for the same seed."""
    from scapy.all import TCP
    from scapy.layers.inet import in4_chksum
    from scapy.utils import checksum

    from netfast.router.build import build_router
    from netfast.router.config import load_config
    from netfast.router.demo import MIX, generate_trace

    built = build_router(load_config(default_config_path()), vector=False)
    trace = generate_trace(built, 3000, seed=3)
    assert len(trace.frames) == sum(trace.kinds.values()) == 3000
    assert set(trace.kinds) == set(MIX)
    assert generate_trace(built, 3000, seed=3).frames == trace.frames
    assert generate_trace(built, 3000, seed=4).frames != trace.frames

    table = built.table
    good = bad = 0
    for f in trace.frames:
        pkt = Ether(f)
        ip = pkt.getlayer(IP)
        well_formed = (
            ip is not None
            and ip.version == 4
            and ip.ihl >= 5
            and len(f) >= 14 + ip.len
            and IP(bytes(ip)).chksum == _recomputed(ip)
        )
        if not well_formed:
            bad += 1
            continue
        good += 1
        # The L4 checksum, recomputed by scapy over exactly the segment the IP length covers.
        raw = bytes(ip)[ip.ihl * 4 : ip.len]
        at = {6: 16, 17: 6, 1: 2}[ip.proto]
        zeroed = raw[:at] + b"\0\0" + raw[at + 2 :]
        found = int.from_bytes(raw[at : at + 2], "big")
        want = checksum(zeroed) if ip.proto == 1 else in4_chksum(ip.proto, ip, zeroed)
        assert found == (want or 0xFFFF if ip.proto == 17 else want)
        if TCP in ip and ip[TCP].dport in (80, 443):
            rid = table.lookup(int.from_bytes(bytes(map(int, ip.dst.split("."))), "big"))
            assert rid >= 0 and table.rib.value_of(rid).gateway is not None
    assert bad == trace.kinds["malformed"]
    assert good == 3000 - bad


def _recomputed(ip: IP) -> int:
    copy = IP(bytes(ip))
    del copy.chksum
    return int(IP(bytes(copy)).chksum)
