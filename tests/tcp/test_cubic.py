"""CUBIC (RFC 9438): the window arithmetic against the RFC's formulas, and whole transfers through
loss with CUBIC in charge."""

from __future__ import annotations

import contextlib
import hashlib

import pytest

from netfast.link.impair import Impairment
from netfast.stack.sim import HostPair
from netfast.tcp.cc import CubicControl, NewReno
from netfast.tcp.config import TcpConfig
from netfast.tcp.cubic import ALPHA, BETA, C, Cubic

MSS = 1000


def test_decrease_is_beta_and_fast_convergence_lowers_w_max() -> None:
    cubic = Cubic()
    assert cubic.on_congestion(100 * MSS, 100 * MSS, MSS) == 70 * MSS
    assert cubic.w_max == 100
    # A second loss below the last W_max: release room for newer flows (section 4.7).
    assert cubic.on_congestion(80 * MSS, 80 * MSS, MSS) == 56 * MSS
    assert cubic.w_max == pytest.approx(80 * (1 + BETA) / 2)
    assert cubic.on_congestion(MSS, MSS, MSS) == 2 * MSS  # never below two segments


def test_window_follows_the_cubic_curve_back_to_w_max() -> None:
    """After a loss at W_max = 100 the window is 70; it regains W_max at t = K (section 4.2)
    -- concave before, convex after -- when ACKs keep arriving."""
    cubic = Cubic()
    cubic.on_congestion(100 * MSS, 100 * MSS, MSS)
    cwnd = 70 * MSS
    k = ((100 - 70) / C) ** (1 / 3)
    rtt = 0.01
    t = 0.0
    trace = []
    while t < 2 * k:
        cwnd = cubic.on_ack(cwnd, MSS, MSS, t, rtt)  # one ACK per segment, every ms
        trace.append((t, cwnd / MSS))
        t += 0.001
    assert cubic.k == pytest.approx(k)
    w_at = {round(ti, 3): w for ti, w in trace}
    near_k = w_at[round(k - rtt, 3)]
    assert near_k == pytest.approx(100, abs=3)  # back to W_max around K
    # Concave then convex: growth per step slows towards K, then speeds up after it.
    early = w_at[0.1] - w_at[0.0]
    late_before_k = w_at[round(k - rtt - 0.05, 3)] - w_at[round(k - rtt - 0.15, 3)]
    after_k = w_at[round(2 * k - 0.1, 3)] - w_at[round(2 * k - 0.2, 3)]
    assert early > late_before_k < after_k


def test_reno_friendly_region_when_cubic_is_slower() -> None:
    """Right after a loss at a small window, W_cubic barely moves; W_est grows by
    alpha segments per window of ACKs (section 4.3) and carries the window."""
    cubic = Cubic()
    cubic.on_congestion(10 * MSS, 10 * MSS, MSS)
    cwnd = 7 * MSS
    for _ in range(7):  # one window of ACKs within a few microseconds
        cwnd = cubic.on_ack(cwnd, MSS, MSS, 0.0, 0.0001)
    assert cubic.w_est == pytest.approx(7 + 7 * ALPHA / 7, rel=0.05)
    assert cwnd > 7 * MSS


@pytest.mark.parametrize("sack", [True, False])
def test_lossy_transfer_with_cubic(sack: bool) -> None:
    imp = Impairment(loss=0.02, reorder=0.05, duplicate=0.01, delay=0.002)
    cfg = TcpConfig(cc="cubic", sack=sack)
    pair = HostPair(impair_ab=imp, impair_ba=imp, seed=11, tcp_config=cfg)
    srv = pair.tcp_b.socket()
    srv.bind(("198.18.0.2", 80))
    srv.listen()
    cli = pair.tcp_a.socket()
    cli.connect(("198.18.0.2", 80), pair.now)
    body = bytes(range(256)) * 4000
    st: dict[str, object] = {"acc": None, "sent": 0, "got": bytearray(), "eof": False}

    def app() -> None:
        if st["acc"] is None:
            with contextlib.suppress(BlockingIOError):
                st["acc"], _ = srv.accept()
        sent = st["sent"]
        assert isinstance(sent, int)
        if sent < len(body) and cli.conn is not None and cli.conn.state.name == "ESTABLISHED":
            with contextlib.suppress(BlockingIOError):
                st["sent"] = sent + cli.send(body[sent:])
            if st["sent"] == len(body):
                cli.shutdown()
        acc = st["acc"]
        if acc is not None and not st["eof"]:
            try:
                data = acc.recv(1 << 20)  # type: ignore[attr-defined]
            except BlockingIOError:
                return
            if not data:
                st["eof"] = True
            st["got"] += data  # type: ignore[operator]

    assert pair.run(lambda: bool(st["eof"]), app=app, max_time=300).ok
    assert hashlib.sha256(bytes(st["got"])).digest() == hashlib.sha256(body).digest()  # type: ignore[arg-type]
    c = pair.a.counters
    assert c["tcp.recovery.fast_retransmit"] + c["tcp.timer.rexmt"] > 0
    assert cli.conn is not None and isinstance(cli.conn.cc, CubicControl)


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_config_chooses_the_controller(cc: str) -> None:
    """``TcpConfig.cc`` decides which controller a connection gets; NewReno is not CUBIC."""
    pair = HostPair(seed=1, tcp_config=TcpConfig(cc=cc))
    cli = pair.tcp_a.socket()
    cli.connect(("198.18.0.2", 80), pair.now)
    assert cli.conn is not None
    assert isinstance(cli.conn.cc, CubicControl if cc == "cubic" else NewReno)
    assert not isinstance(cli.conn.cc, NewReno if cc == "cubic" else CubicControl)
