"""The software router, apart from the host stack: a TOML description in, a forwarding router
running over captures or live links out.

- :mod:`netfast.router.config`, :mod:`netfast.router.validate`: the TOML description as frozen
  values, validated in full with errors naming file and key (no OS calls, nothing opened).
- :mod:`netfast.router.build`: those values made real -- files loaded, the
  :class:`~netfast.ip.router.Router`, :class:`~netfast.ip.vector.VectorForwarder`, pfil heads and
  firewall composed into one :class:`~netfast.router.build.BuiltRouter`, links opened.
- :mod:`netfast.router.engine`: the vector path with scalar fallback over one port's batch.
- :mod:`netfast.router.run`: the drivers -- a capture in and per-egress captures out, or live
  AF_PACKET/TAP links until stopped.
- :mod:`netfast.router.demo`: the built-in demo behind ``netfast forward`` with no arguments.

The sans-IO cores it drives are in :mod:`netfast.ip` (``router``, ``vector``, ``arp``) and
:mod:`netfast.pfil`; docs/ROUTER.md describes the design.
"""

from netfast.router.build import BuiltRouter, build_router
from netfast.router.config import ConfigError, RouterConfig, load_config, parse_config
from netfast.router.engine import Engine, ForwardStats
from netfast.router.run import CaptureStopped, CaptureSummary, LiveSummary, run_capture, run_live

__all__ = [
    "BuiltRouter",
    "CaptureStopped",
    "CaptureSummary",
    "ConfigError",
    "Engine",
    "ForwardStats",
    "LiveSummary",
    "RouterConfig",
    "build_router",
    "load_config",
    "parse_config",
    "run_capture",
    "run_live",
]
