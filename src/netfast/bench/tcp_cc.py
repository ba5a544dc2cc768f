"""Congestion control through loss: NewReno against CUBIC on the same seeded lossy paths.

Two netfast hosts on a memory wire (:class:`netfast.stack.sim.HostPair`) with netfast's impairment
layer: a one-way delay each way and random loss on the data direction.  Time is the simulator's
virtual clock, so the figure is what the congestion control achieves on that path -- goodput in
simulated Mbit/s -- not how fast the CPU runs the stack.  Each path is run with several seeds
and both algorithms see the same seeds (the same losses, as long as they send alike).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from rich.table import Table

from netfast.link.impair import Impairment
from netfast.stack.bulk import SinkServer, SourceClient
from netfast.stack.sim import ADDR_B, HostPair
from netfast.tcp.config import TcpConfig
from netfast.wire.ipv4 import ip_to_str

#: (loss on the data direction, one-way delay in seconds): a LAN-like path with heavy loss,
#: a continental one, an intercontinental one with little loss.
PATHS: tuple[tuple[float, float], ...] = ((0.02, 0.001), (0.01, 0.01), (0.001, 0.05))
ALGORITHMS = ("newreno", "cubic")


def goodput(cc: str, loss: float, delay: float, nbytes: int, seed: int) -> float:
    """Simulated Mbit/s of one ``nbytes`` transfer a -> b with ``cc``."""
    return float(transfer(cc, loss, delay, nbytes, seed)["mbit_s"])


def transfer(cc: str, loss: float, delay: float, nbytes: int, seed: int) -> dict[str, float]:
    """One ``nbytes`` transfer a -> b with ``cc``: ``mbit_s`` (simulated), ``lost`` (data-way
    frames the impairment dropped), ``retransmits`` and ``timeouts`` (the sender's counters).
    A recovery that works resends about what was lost, and times out rarely."""
    pair = HostPair(
        impair_ab=Impairment(loss=loss, delay=delay),
        impair_ba=Impairment(delay=delay),
        seed=seed,
        tcp_config=TcpConfig(cc=cc),
    )
    sink = SinkServer(pair.b, 80)
    source = SourceClient(pair.a, (ip_to_str(ADDR_B), 80), bytes(nbytes))

    def app() -> None:
        source.step(pair.now)
        sink.step(pair.now)

    res = pair.run(sink.done.is_set, app=app, max_time=3600)
    if not res.ok or sink.error is not None or sink.received != nbytes:
        raise RuntimeError(f"{cc} transfer over loss {loss}, delay {delay} did not finish")
    counters = pair.a.counters
    return {
        "mbit_s": nbytes * 8 / res.sim_time / 1e6,
        "lost": pair.link_a.tx.counters["impair.loss"],
        "retransmits": counters["tcp.out.retransmit"],
        "timeouts": counters["tcp.timer.rexmt"],
    }


def run_cc_bench(
    nbytes: int = 5_000_000,
    seeds: Sequence[int] = (1, 2, 3),
    paths: Sequence[tuple[float, float]] = PATHS,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per (path, algorithm): median and all simulated Mbit/s over ``seeds``, and the
    frames lost, retransmissions and timeouts summed over them."""
    rows: list[dict[str, Any]] = []
    for loss, delay in paths:
        for cc in ALGORITHMS:
            if progress is not None:
                progress(f"{cc}, loss {loss:.1%}, RTT {2 * delay * 1000:.0f} ms")
            runs = [transfer(cc, loss, delay, nbytes, seed) for seed in seeds]
            mbit = [r["mbit_s"] for r in runs]
            rows.append(
                {
                    "cc": cc,
                    "loss": loss,
                    "rtt_ms": 2 * delay * 1000,
                    "bytes": nbytes,
                    "runs_mbit_s": mbit,
                    "median_mbit_s": statistics.median(mbit),
                    "lost": int(sum(r["lost"] for r in runs)),
                    "retransmits": int(sum(r["retransmits"] for r in runs)),
                    "timeouts": int(sum(r["timeouts"] for r in runs)),
                }
            )
    return rows


def cc_table(rows: Sequence[dict[str, Any]]) -> Table:
    table = Table(
        title="congestion control through loss (memory wire, virtual time: simulated Mbit/s)"
    )
    cols = ("loss", "RTT", "cc", "median Mbit/s", "runs", "vs NewReno", "lost / resent", "RTOs")
    for col in cols:
        table.add_column(col, justify="left" if col == "cc" else "right")
    base = {(r["loss"], r["rtt_ms"]): r["median_mbit_s"] for r in rows if r["cc"] == "newreno"}
    for r in rows:
        ref = base.get((r["loss"], r["rtt_ms"]))
        ratio = f"{r['median_mbit_s'] / ref:.2f}x" if ref else "-"
        table.add_row(
            f"{r['loss']:.1%}",
            f"{r['rtt_ms']:.0f} ms",
            r["cc"],
            f"{r['median_mbit_s']:.1f}",
            ", ".join(f"{x:.1f}" for x in r["runs_mbit_s"]),
            ratio,
            f"{r['lost']:,} / {r['retransmits']:,}",
            f"{r['timeouts']:,}",
        )
    return table
