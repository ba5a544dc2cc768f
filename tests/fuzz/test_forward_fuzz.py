"""Seeded, time-bounded fuzzing of ``netfast forward``: mutated captures (pcap and pcapng) and
mutated router configs, run through the CLI in-process.  Every run must end with exit 0 or 2 and
one error line at most, never a traceback, and nothing may appear outside the output folder --
the other fuzz tests (captures, route files, MRT, rules, configs) sit beside their modules."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

# The small router of the pcap-writer tests (no 1M-prefix table: a run takes milliseconds).
from tests.link.test_pcap_link_hostile import ROUTER, SAMPLE

from netfast.cli import main

#: What a port name or a value may be mutated into: paths, separators, odd characters.
NASTY = [
    "../x",
    "/tmp/x",
    "a/b",
    "..",
    ".",
    "",
    "\\x",
    "e\u0000",
    "ETH0",
    "eth0",
    "x" * 40,
    "\u202eeth",
    "0",
    "-1",
    "nan",
    "1e309",
    "\u00b2",
    "\u0663",
    "010.0.0.1/8",
    "[",
    "{",
]


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        if op < 0.5 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.7:
            del b[rng.randrange(len(b) + 1) :]
        elif op < 0.85 and b:
            i = rng.randrange(len(b))
            b[i:i] = b[rng.randrange(len(b)) :][: rng.randint(1, 64)]
        else:
            i = rng.randrange(24, max(25, len(b)))
            b[i : i + 4] = rng.randbytes(4)
    return bytes(b)


def _mutate_config(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        if "=" in lines[i] and rng.random() < 0.8:
            key, _, _ = lines[i].partition("=")
            lines[i] = f'{key}= "{rng.choice(NASTY)}"' if rng.random() < 0.7 else f"{key}= 0"
        else:
            lines[i] = rng.choice(NASTY)
    return "\n".join(lines) + "\n"


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("seed", [1, 2])
def test_forward_survives_mutated_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    rng = random.Random(seed)
    sample = SAMPLE.read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    runs = clean = refused = 0
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline and runs < 400:
        runs += 1
        case = work / f"case{runs}"
        case.mkdir()
        cap = case / ("in.pcap" if rng.random() < 0.7 else "in.pcapng")
        data = sample if rng.random() < 0.3 else _mutate_bytes(sample, rng)
        if cap.suffix == ".pcapng":
            from netfast.link.pcap import read_capture

            data = _pcapng_of(list(read_capture(SAMPLE)), rng)
            data = data if rng.random() < 0.3 else _mutate_bytes(data, rng)
        cap.write_bytes(data)
        config = case / "router.toml"
        config.write_text(ROUTER if rng.random() < 0.4 else _mutate_config(ROUTER, rng))
        out = case / "out"
        user_file = rng.random() < 0.3
        if user_file:
            out.mkdir()
            (out / "eth1.pcap").write_bytes(b"user data")
        before = _tree(work)
        argv = ["forward", "--config", str(config), "--in", str(cap), "--out-dir", str(out)]
        if rng.random() < 0.5:
            argv.append("--force")
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse
            status = int(exc.code or 0)
        except BaseException as exc:
            keep = tmp_path / f"failing-{runs}"
            keep.mkdir()
            (keep / cap.name).write_bytes(data)
            (keep / "router.toml").write_text(config.read_text())
            raise AssertionError(f"forward raised {exc!r}; input kept in {keep}") from exc
        _, err = capsys.readouterr()
        assert status in (0, 2), (status, err)
        if status == 2:
            refused += 1
            assert err.count("\n") == 1 and err.startswith("netfast: error: "), err
        else:
            clean += 1
        # Nothing new anywhere but inside the output folder.
        after = _tree(work)
        outside = {p for p in after - before if not Path(work, p).resolve().is_relative_to(out)}
        assert not outside, outside
        if user_file and status == 2:
            # A refused or failed run writes nothing: the user's file is as it was.
            assert (out / "eth1.pcap").read_bytes() == b"user data"
    assert runs >= 10 and clean and refused, (runs, clean, refused)


def _pcapng_of(records: list, rng: random.Random) -> bytes:  # type: ignore[type-arg]
    import struct

    def block(kind: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", kind, n) + body + struct.pack("<I", n)

    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = b""
    if rng.random() < 0.5:  # if_tsresol: microseconds or a random (maybe absurd) one
        opts = struct.pack("<HHB3x", 9, 1, rng.choice([6, 9, 0, 0x80 | rng.randrange(64)]))
    idb = block(1, struct.pack("<HHI", 1, 0, 65535) + opts + struct.pack("<HH", 0, 0))
    out = [shb, idb]
    for r in records:
        ts = r.timestamp_ns // 1000
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(r.data), len(r.data))
        out.append(block(6, body + r.data))
    return b"".join(out)
