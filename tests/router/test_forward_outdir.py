"""``netfast forward --out-dir``: files stay inside the folder, no port's capture is lost to
another's, and a signal mid-run leaves the folder exactly as it was.

Configs are real router descriptions with hostile interface names; the capture is the bundled
``sample-http.pcap`` (and, for the signal tests, its frames repeated into a long gzip capture).
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from netfast.cli import main
from netfast.ip.iface import Interface
from netfast.ip.local import LocalAddrs
from netfast.link.pcap import read_capture
from netfast.outfiles import (
    OutputExistsError,
    OutputPathError,
    PortNameError,
    PortOutputs,
    fold_name,
    port_file_name,
    stop_on_signals,
)
from netfast.router.run import CaptureStopped, run_capture
from netfast.wire.pcap import PcapWriter

SAMPLE = Path(str(resources.files("netfast.data") / "sample-http.pcap"))
PRECIOUS = b"the user's own file, not a capture"


def router_toml(name0: str, name1: str) -> str:
    """Two ports; eth0's MAC is the sample capture's gateway, so its frames are forwarded
    (out of port 1 towards the default route, or back out of port 0 to the client).  The names
    appear only as names, so any string TOML can hold reaches the output planner."""

    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    return f"""
[[interface]]
name = {q(name0)}
mac = "fe:ff:20:00:01:00"
addresses = ["145.254.160.1/24"]

[[interface]]
name = {q(name1)}
mac = "02:00:00:00:01:01"
addresses = ["198.18.1.1/24"]

[routes]
"0.0.0.0/0" = "via 198.18.1.2"

[neighbors]
"145.254.160.237" = "00:00:01:00:00:00"
"198.18.1.2" = "02:00:00:00:01:02"
"""


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its contents (symlinks as their target text)."""
    out: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath) / n
            rel = str(p.relative_to(root))
            out[rel] = ("-> " + os.readlink(p)).encode() if p.is_symlink() else p.read_bytes()
    return out


def forward(tmp_path: Path, name0: str, name1: str, out: Path, *extra: str) -> tuple[int, str]:
    cfg = tmp_path / "router.toml"
    cfg.write_text(router_toml(name0, name1), encoding="utf-8")
    argv = ["forward", "--config", str(cfg), "--in", str(SAMPLE), "--out-dir", str(out), *extra]
    return main(argv), str(cfg)


# -- 1. names that would leave the folder --------------------------------------------------------


HOSTILE_NAMES = [
    ("../victim/x", "'/'"),
    ("../x", "'/'"),
    ("..", "names a folder"),
    (".", "names a folder"),
    ("a\\..\\..\\x", "'\\\\'"),
    ("eth\n1", "U+000A"),
    ("eth\u202e1", "U+202E"),  # right-to-left override: displays as another name
    ("eth\u20281", "U+2028"),
]


@pytest.mark.parametrize(("name", "problem"), HOSTILE_NAMES)
def test_hostile_port_names_are_refused_and_nothing_is_touched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, problem: str
) -> None:
    """Through the CLI: refused in one line naming the config key (by the config's own name
    check or, for what it lets through, by the output planner); nothing written anywhere."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "x.pcap").write_bytes(PRECIOUS)
    (tmp_path / "x.pcap").write_bytes(PRECIOUS)
    out = tmp_path / "out"
    before = tree(tmp_path)
    status, cfg = forward(tmp_path, "eth0", name, out, "--force")
    err = capsys.readouterr().err
    assert status == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith(f"netfast: error: {cfg}: interface[1].name: ")
    after = tree(tmp_path)
    del after["router.toml"]
    assert after == before  # nothing written anywhere, not even the output folder
    assert not out.exists()


@pytest.mark.parametrize(("name", "problem"), HOSTILE_NAMES)
def test_hostile_port_names_are_refused_by_the_runner(
    tmp_path: Path, name: str, problem: str
) -> None:
    """The runner checks names itself, whoever built the router."""
    (tmp_path / "x.pcap").write_bytes(PRECIOUS)
    out = tmp_path / "out"
    with pytest.raises(PortNameError) as info:
        run_capture(_Hairpin(), SAMPLE, 0, out, names={0: "eth0", 1: name}, overwrite=True)
    assert info.value.ifindex == 1 and info.value.name == name
    assert problem in str(info.value) and str(out) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pcap"]


def test_absolute_port_name_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "x"
    target.parent.mkdir()
    Path(f"{target}.pcap").write_bytes(PRECIOUS)
    with pytest.raises(PortNameError, match="'/'") as info:
        run_capture(_Nothing(), SAMPLE, 0, tmp_path / "out", names={0: str(target)}, overwrite=True)
    assert info.value.ifindex == 0
    assert Path(f"{target}.pcap").read_bytes() == PRECIOUS
    assert not (tmp_path / "out").exists()


def test_port_file_name() -> None:
    assert port_file_name("eth0") == "eth0.pcap"
    assert port_file_name("vlan 10.x") == "vlan 10.x.pcap"  # plain components pass unchanged
    for bad in ("", ".", "..", "a/b", "/abs", "a\\b", "nul\0", "x" * 251):
        with pytest.raises(ValueError, match="port name"):
            port_file_name(bad)


# -- 2. two ports, one file ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name0", "name1"),
    [
        ("eth0", "ETH0"),
        ("a", "A"),
        ("caf\u00e9", "cafe\u0301"),  # precomposed and decomposed: one file on APFS/HFS+
        ("stra\u00dfe", "STRASSE"),  # case folding, not just lower()
    ],
)
def test_names_that_fold_to_one_file_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name0: str, name1: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{name0}.pcap").write_bytes(PRECIOUS)
    status, _ = forward(tmp_path, name0, name1, out, "--force")
    err = capsys.readouterr().err
    assert status == 2
    assert f"ports {name0!r} and {name1!r} would both write" in err and str(out) in err
    assert tree(out) == {f"{name0}.pcap": PRECIOUS}


def test_dot_slash_alias_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.pcap").write_bytes(PRECIOUS)
    status, _ = forward(tmp_path, "a", "./a", out, "--force")
    assert status == 2
    assert "interface[1].name: " in capsys.readouterr().err
    assert tree(out) == {"a.pcap": PRECIOUS}


def test_same_name_twice_is_refused_by_the_planner(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="would both write"):
        PortOutputs(tmp_path, {0: "a", 1: "a"})
    assert fold_name("Ab\u00c5") == fold_name(unicodedata.normalize("NFD", "aB\u00e5"))


def test_hard_linked_outputs_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "eth0.pcap").write_bytes(PRECIOUS)
    os.link(out / "eth0.pcap", out / "eth1.pcap")
    status, _ = forward(tmp_path, "eth0", "eth1", out, "--force")
    assert status == 2
    assert "is the same file as" in capsys.readouterr().err
    assert tree(out) == {"eth0.pcap": PRECIOUS, "eth1.pcap": PRECIOUS}


def test_symlinked_output_pointing_outside_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim.pcap"
    victim.write_bytes(PRECIOUS)
    out = tmp_path / "out"
    out.mkdir()
    (out / "eth1.pcap").symlink_to(victim)
    status, _ = forward(tmp_path, "eth0", "eth1", out, "--force")
    err = capsys.readouterr().err
    assert status == 2
    assert f"{out / 'eth1.pcap'}: is a symbolic link to {victim}" in err
    assert victim.read_bytes() == PRECIOUS
    assert sorted(p.name for p in out.iterdir()) == ["eth1.pcap"]


def test_unnamed_port_does_not_take_a_named_ports_file(tmp_path: Path) -> None:
    """Port 1 has no name; ``if1`` is already port 0's, so port 1 gets ``if1~2``."""
    out = tmp_path / "out"
    summary = run_capture(_Hairpin(), SAMPLE, 0, out, names={0: "if1"})
    assert sorted(p.name for p in out.iterdir()) == ["if1.pcap", "if1~2.pcap"]
    n = len(list(read_capture(SAMPLE)))
    assert len(list(read_capture(out / "if1.pcap"))) == n
    assert len(list(read_capture(out / "if1~2.pcap"))) == n
    assert summary.per_egress == {"if1": n, "if1~2": n}


# -- 4. messages -------------------------------------------------------------------------------


def test_out_dir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_bytes(PRECIOUS)
    for out, problem in (
        (afile, f"{afile}: output folder exists and is not a directory"),
        (afile / "sub", f"{afile / 'sub'}: cannot create the output folder: a part of it is not"),
    ):
        for extra in ((), ("--force",)):
            status, _ = forward(tmp_path, "eth0", "eth1", out, *extra)
            err = capsys.readouterr().err
            assert status == 2
            assert problem in err
            assert "--force" not in err and "Errno" not in err
    assert afile.read_bytes() == PRECIOUS


def test_output_that_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    (out / "eth1.pcap").mkdir(parents=True)
    status, _ = forward(tmp_path, "eth0", "eth1", out, "--force")
    err = capsys.readouterr().err
    assert status == 2
    assert f"{out / 'eth1.pcap'}: is a directory" in err and "--force" not in err


def test_existing_output_advises_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "eth1.pcap").write_bytes(PRECIOUS)
    status, _ = forward(tmp_path, "eth0", "eth1", out)
    assert status == 2
    assert f"{out / 'eth1.pcap'}: exists; pass --force to replace it" in capsys.readouterr().err
    assert tree(out) == {"eth1.pcap": PRECIOUS}
    with pytest.raises(OutputExistsError):
        PortOutputs(out, {1: "eth1"})
    with pytest.raises(FileExistsError):  # the runner's documented error, still
        PortOutputs(out, {1: "eth1"})


def test_missing_input_leaves_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "new" / "out"
    cfg = tmp_path / "router.toml"
    cfg.write_text(router_toml("eth0", "eth1"))
    missing = tmp_path / "missing.pcap"
    argv = ["forward", "--config", str(cfg), "--in", str(missing), "--out-dir", str(out)]
    assert main(argv) == 2
    assert (
        capsys.readouterr().err.strip() == f"netfast: error: {missing}: No such file or directory"
    )
    assert not (tmp_path / "new").exists()


def test_failed_run_removes_the_folder_it_made(tmp_path: Path) -> None:
    class Exploding(_Hairpin):
        def input(self, ifindex: int, f: bytes, now: float) -> list[tuple[int, bytes]]:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_capture(Exploding(), SAMPLE, 0, tmp_path / "a" / "b", names={0: "x"})
    assert list(tmp_path.iterdir()) == []


# -- 3. stopping: the flag, and real signals ---------------------------------------------------


def test_stop_mid_run_discards_every_temporary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.pcap").write_bytes(PRECIOUS)
    stop = threading.Event()

    class Stopping(_Hairpin):
        def input(self, ifindex: int, f: bytes, now: float) -> list[tuple[int, bytes]]:
            if len(self.seen) == 5:  # in the second batch of four
                stop.set()
            return super().input(ifindex, f, now)

    router = Stopping()
    with pytest.raises(CaptureStopped, match=r"sample-http\.pcap"):
        run_capture(
            router, SAMPLE, 0, out, names={0: "x", 1: "y"}, overwrite=True, batch_size=4, stop=stop
        )
    assert tree(out) == {"x.pcap": PRECIOUS}
    assert len(router.seen) == 8  # the batch in hand is finished, then the run stops


def test_stop_on_signals_sets_the_event_then_interrupts(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGHUP)
    stop = threading.Event()
    with stop_on_signals(stop) as seen:
        signal.raise_signal(signal.SIGHUP)
        assert stop.is_set() and seen.signal_name == "SIGHUP" and seen.exit_status == 129
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGHUP) is before


@pytest.fixture(scope="module")
def long_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's frames repeated 200,000 times (a few MB gzipped; a run of many seconds),
    so a signal sent once the outputs hold a megabyte lands in the middle of writing them."""
    path = tmp_path_factory.mktemp("long") / "long.pcap.gz"
    frames = [r.data for r in read_capture(SAMPLE)]
    with gzip.open(path, "wb", compresslevel=1) as f:
        w = PcapWriter(f, nanosecond=True)
        t = 1_700_000_000 * 10**9
        for i in range(200_000):
            w.write(frames[i % len(frames)], t + i * 1000)
    return path


@pytest.fixture
def child() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:  # a failed test must not leave a forwarder running
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_mid_write_leaves_the_folder_as_it_was(
    tmp_path: Path,
    long_capture: Path,
    child: list[subprocess.Popen[bytes]],
    signum: signal.Signals,
) -> None:
    cfg = tmp_path / "router.toml"
    cfg.write_text(router_toml("eth0", "eth1"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "eth0.pcap").write_bytes(PRECIOUS)  # --force would replace it, had the run finished
    (out / "notes.txt").write_bytes(PRECIOUS)
    before = tree(out)
    argv = ["forward", "--config", str(cfg), "--in", str(long_capture), "--out-dir", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "netfast", *argv, "--force"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    child.append(proc)

    # Wait (bounded) until the run is writing: its temporary files exist and one holds 1 MB.
    deadline = time.monotonic() + 120
    while True:
        temps = [p for p in out.iterdir() if p.name.endswith(".tmp")]
        if temps and max(_size(p) for p in temps) >= 1 << 20:
            break
        assert proc.poll() is None, f"forward ended early: {proc.communicate()[1].decode()}"
        assert time.monotonic() < deadline, "forward never started writing"
        time.sleep(0.05)
    assert len(temps) == 2

    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert tree(out) == before  # every temporary gone, the user's files untouched
    assert proc.returncode == 128 + signum, err.decode()
    assert f"stopped by {signum.name}" in err.decode() and "Traceback" not in err.decode()


# -- helpers -----------------------------------------------------------------------------------


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return 0


class _Nothing:
    """A router that drops everything."""

    counters: Counter[str] = Counter()
    interfaces: dict[int, Interface] = {}
    local = LocalAddrs(())

    def input(self, ifindex: int, f: bytes, now: float) -> list[tuple[int, bytes]]:
        return []

    def poll(self, now: float) -> list[tuple[int, bytes]]:
        return []


class _Hairpin(_Nothing):
    """Sends every frame out of port 0 and port 1."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def input(self, ifindex: int, f: bytes, now: float) -> list[tuple[int, bytes]]:
        self.seen.append(f)
        return [(0, f), (1, f)]
