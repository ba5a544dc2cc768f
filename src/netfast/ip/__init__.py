"""The IPv4 network layer, sans-IO: the router's scalar path (``ip.router``: input checks,
local-or-not, forwarding, ICMP errors, ARP, fragmentation), its vector path (``ip.vector``, with
the compiled walks in ``ip.vector_kernels``), and the protocol facts both share (``ip.facts``:
martians, header sum, TTL update, transport fields, each compiled and in Python).

Nothing here reads the clock or touches a socket: time is an argument (``now``, seconds as a
float), frames come in as bytes and leave as ``(ifindex, bytes)`` pairs.  See docs/ROUTER.md.
"""
