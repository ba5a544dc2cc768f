"""Two netfast hosts on an in-memory wire with a virtual clock: deterministic TCP experiments.

Contract
--------
:class:`HostPair` builds hosts ``a`` (198.18.0.1/24) and ``b`` (198.18.0.2/24), each a
:class:`~netfast.stack.host.Stack` with a :class:`~netfast.tcp.layer.TcpLayer`, joined by a
:class:`~netfast.link.memory.MemoryLink` pair.  Each direction can pass through netfast's seeded
impairment layer (loss, reordering, duplication, delay, rate), whose clock is the pair's virtual
clock -- so a run is a pure function of its seed and settings, and takes as long as the CPU
needs, not as long as the simulated timers say.

:meth:`HostPair.run` steps the wire until a condition holds: each step moves every frame that
is due, lets both stacks handle it and send what they have; when nothing moves, the clock jumps
to the earliest timer of either stack or either impairment stage.  Every run is bounded in
steps and in simulated time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netfast.ip.iface import IfAddr, Interface
from netfast.link.impair import ImpairedLink, Impairment
from netfast.link.memory import MemoryLink
from netfast.stack.host import HostConfig, Stack
from netfast.tcp.config import TcpConfig
from netfast.tcp.layer import TcpLayer
from netfast.wire.ipv4 import ip_from_str

ADDR_A = ip_from_str("198.18.0.1")
ADDR_B = ip_from_str("198.18.0.2")
MAC_A = bytes.fromhex("020000000a01")
MAC_B = bytes.fromhex("020000000b01")


class VirtualClock:
    """A clock that moves only when told to."""

    __slots__ = ("now",)

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class RunResult:
    ok: bool
    steps: int
    sim_time: float


def make_host(
    name: str,
    addr: int,
    mac: bytes,
    mtu: int,
    seed: int,
    tcp_config: TcpConfig | None,
    host_config: HostConfig | None = None,
    **tcp_kw: Any,
) -> tuple[Stack, TcpLayer]:
    iface = Interface(0, name, mac, (IfAddr(addr, 24),), mtu)
    stack = Stack([iface], rng=random.Random(seed), strict=True, tcp=False, config=host_config)
    layer = stack.attach_tcp(
        TcpLayer(stack.output, random.Random(seed + 1000), tcp_config, **tcp_kw)
    )
    return stack, layer


class HostPair:
    """Hosts ``a`` and ``b`` on one in-memory wire (see the module docstring)."""

    def __init__(
        self,
        *,
        mtu: int = 1500,
        impair_ab: Impairment | None = None,
        impair_ba: Impairment | None = None,
        seed: int = 1,
        tcp_config: TcpConfig | None = None,
        tcp_config_b: TcpConfig | None = None,
        capacity: int = 100_000,
        tcp_kw_b: dict[str, Any] | None = None,
        host_config: HostConfig | None = None,
    ) -> None:
        self.clock = VirtualClock()
        self.a, self.tcp_a = make_host("a", ADDR_A, MAC_A, mtu, seed, tcp_config, host_config)
        self.b, self.tcp_b = make_host(
            "b",
            ADDR_B,
            MAC_B,
            mtu,
            seed + 1,
            tcp_config_b or tcp_config,
            host_config,
            **(tcp_kw_b or {}),
        )
        la, lb = MemoryLink.pair(mtu=mtu, capacity=capacity, names=("a", "b"))
        self.link_a = ImpairedLink(la, impair_tx=impair_ab, seed=seed, clock=self.clock)
        self.link_b = ImpairedLink(lb, impair_tx=impair_ba, seed=seed + 7, clock=self.clock)
        self.frames = 0

    @property
    def now(self) -> float:
        return self.clock.now

    def step(self) -> int:
        """Move every due frame once through both hosts; returns the frames moved."""
        now = self.clock.now
        moved = 0
        for stack, link in ((self.a, self.link_a), (self.b, self.link_b)):
            while True:
                frames = link.recv_batch(256)
                if not frames:
                    break
                moved += len(frames)
                stack.input_batch(0, frames, now)
            out = stack.poll(now)
            if out:
                moved += len(out)
                link.send(frame for _, frame in out)
        self.frames += moved
        return moved

    def next_event(self) -> float | None:
        times = [
            t
            for t in (
                self.a.poll_at(),
                self.b.poll_at(),
                self.link_a.poll_at(),
                self.link_b.poll_at(),
            )
            if t is not None
        ]
        return min(times) if times else None

    def run(
        self,
        until: Callable[[], bool],
        *,
        max_time: float = 600.0,
        max_steps: int = 10_000_000,
        app: Callable[[], object] | None = None,
    ) -> RunResult:
        """Step until ``until()`` holds, ``max_time`` simulated seconds pass or ``max_steps``
        steps are taken.  ``app`` runs before every step (the applications' turn)."""
        start = self.clock.now
        steps = 0
        while steps < max_steps:
            if app is not None:
                app()
            if until():
                return RunResult(True, steps, self.clock.now - start)
            steps += 1
            if self.step():
                continue
            if app is not None:
                app()
                if self.step():
                    continue
            nxt = self.next_event()
            if nxt is None or nxt - start > max_time:
                break
            self.clock.now = max(self.clock.now, nxt)
        return RunResult(until(), steps, self.clock.now - start)
