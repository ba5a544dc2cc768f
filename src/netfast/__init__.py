"""netfast: a userspace IPv4/TCP network stack and software router.

netfast implements the designs of André Oppermann's "Optimizing the FreeBSD IP and TCP Stack"
(FreeBSD 7-CURRENT) in Python, with numpy/numba kernels on the hot paths.

Layers, from the bottom (dependencies point down only):

- `netfast.link`  -- the only code that does OS I/O: memory wires, pcap, TAP, AF_PACKET.
- `netfast.wire`  -- zero-copy header views, validated header values, checksums, pcap formats,
  numpy batch dtypes.
- `netfast.cli`   -- the `netfast` command.
"""

__version__ = "0.1.0"
