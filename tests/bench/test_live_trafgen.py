"""The trafgen generator of ``netfast bench live``: the frames it is configured with (checked with
scapy, and as trafgen itself compiles them from the configuration, written to a pcap), its
command lines, its pacing qdisc and the parsing of its exit report."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapReader

from netfast.bench.live import trafgen as tg
from netfast.bench.live.topology import FRAME_LEN

needs_trafgen = pytest.mark.skipif(
    shutil.which("trafgen") is None, reason="trafgen is not installed (netsniff-ng)"
)


def _check_frame(raw: bytes, flow: int) -> None:
    assert len(raw) == FRAME_LEN == 60  # 64 on the wire with the FCS
    pkt = Ether(raw)
    assert pkt.dst == "02:00:00:00:fa:01" and pkt.src == "02:00:00:00:fb:01"
    assert pkt.type == 0x0800
    ip, udp = pkt[IP], pkt[UDP]
    assert (ip.version, ip.ihl, ip.len, ip.ttl, ip.proto) == (4, 5, 46, 64, 17)
    assert (ip.src, ip.dst) == ("198.18.0.2", "198.18.1.2")
    assert ip.flags == "DF" and ip.frag == 0 and ip.id == flow
    assert (udp.sport, udp.dport, udp.len) == (1024 + flow, 9, 26)
    assert bytes(udp.payload) == bytes(18)
    # scapy recomputes both checksums when they are deleted; ours must equal its.
    fresh = pkt.copy()
    del fresh[IP].chksum
    del fresh[UDP].chksum
    fresh = Ether(bytes(fresh))
    assert ip.chksum == fresh[IP].chksum and udp.chksum == fresh[UDP].chksum
    assert udp.chksum != 0  # computed, not "none"
    assert bytes(fresh) == raw


def test_frames_are_valid_udp_with_distinct_source_ports() -> None:
    frames = tg.bench_frames(16)
    assert len(frames) == 16 and len(set(frames)) == 16
    for i, raw in enumerate(frames):
        _check_frame(raw, i)
    assert tg.bench_frames(1) == frames[:1]


@pytest.mark.parametrize("flows", [0, tg.MAX_FLOWS + 1])
def test_frames_reject_bad_flow_counts(flows: int) -> None:
    with pytest.raises(ValueError, match="flows"):
        tg.bench_frames(flows)


def test_config_lists_every_byte() -> None:
    frames = tg.bench_frames(3)
    text = tg.trafgen_config(frames)
    packets = text.split("{")[1:]
    assert len(packets) == 3
    for frame, body in zip(frames, packets, strict=True):
        values = bytes(int(tok, 16) for tok in body.split("}")[0].replace(",", " ").split())
        assert values == frame
    with pytest.raises(ValueError):
        tg.trafgen_config([])


@needs_trafgen
def test_trafgen_compiles_the_config_to_the_same_frames(tmp_path: Path) -> None:
    """trafgen writes what it would send to a pcap: the frames must come out byte for byte,
    round robin, and its report must count them."""
    frames = tg.bench_frames(4)
    out = tmp_path / "tx.pcap"
    proc = subprocess.run(
        ["trafgen", "--in", "-", "--out", str(out), "--num", "10", "--cpus", "1",
         "--no-sock-mem", "--notouch-irq"],
        input=tg.trafgen_config(frames), capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    sent = [bytes(raw) for raw, _meta in RawPcapReader(str(out))]
    assert sent == [frames[i % 4] for i in range(10)]
    for i, raw in enumerate(sent):
        _check_frame(raw, i % 4)
    report = tg.parse_report(proc.stdout)
    assert report.sent == 10 and report.errors == 0 and report.seconds >= 0


def test_parse_report_reads_trafgen_s_exit_lines() -> None:
    out = (
        "     1 packets to schedule\n    60 bytes in total\nRunning! Hang up with ^C!\n\n\n"
        "\r       63232 packets outgoing\n\r     3793920 bytes outgoing\n"
        "\r           0 sec, 961202 usec on CPU0 (63232 packets)\n"
    )
    burst = tg.parse_report(out)
    assert burst.sent == 63232 and burst.seconds == pytest.approx(0.961202)
    with pytest.raises(RuntimeError, match="packets outgoing"):
        tg.parse_report("trafgen: invalid option -- 'A'\n")


def test_command_lines() -> None:
    flat = tg.trafgen_command("nsA", 1000)
    assert flat[:5] == ["ip", "netns", "exec", "nsA", "trafgen"]
    for pair in (["--dev", "a0"], ["--in", "-"], ["--cpus", "1"], ["--num", "1000"]):
        i = flat.index(pair[0])
        assert flat[i : i + 2] == pair
    assert "--no-sock-mem" in flat and "--notouch-irq" in flat
    assert "--qdisc-path" not in flat and "--rate" not in flat
    paced = tg.trafgen_command("nsA", 1000, paced=True)
    assert paced[-3:] == ["--qdisc-path", "--gap", "0"]
    with pytest.raises(ValueError):
        tg.trafgen_command("nsA", 0)


def _qdisc_options(rate: float) -> dict[str, str]:
    argv = tg.pacing_qdisc(rate)
    assert argv[:7] == ["tc", "qdisc", "replace", "dev", "a0", "root", "tbf"]
    return dict(zip(argv[7::2], argv[8::2], strict=True))


def test_pacing_qdisc_is_a_token_bucket_of_the_rate() -> None:
    opts = _qdisc_options(10_000)
    assert opts["rate"] == f"{10_000 * 60 * 8}bit"  # 60-byte frames, as tbf counts them
    assert int(opts["burst"]) == 20 * 60  # 2 ms of frames
    assert int(opts["limit"]) == 4096 * 60
    assert int(_qdisc_options(100)["burst"]) == 16 * 60  # at least 16 frames
    assert int(_qdisc_options(1e7)["burst"]) == 256 * 60  # at most 256
    with pytest.raises(ValueError):
        tg.pacing_qdisc(0.5)
