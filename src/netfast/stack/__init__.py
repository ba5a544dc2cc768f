"""The stack layer: wires the sans-IO cores to links.

- :mod:`netfast.stack.config`: a router described by a TOML file -> interfaces, routing table,
  firewall, links (:func:`~netfast.stack.config.load_config`,
  :func:`~netfast.stack.config.build_router`).
- :mod:`netfast.stack.runner`: drives a router (vector path + scalar fallback) over a capture
  (per-egress captures out) or live AF_PACKET/TAP links.
- :mod:`netfast.stack.demo`: the built-in demo behind ``netfast forward`` with no arguments.
"""
