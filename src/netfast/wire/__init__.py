"""Packet representation: zero-copy header views, validated header values, checksums, pcap formats
and numpy batch dtypes.

Every header module offers two levels (as smoltcp's ``wire``):

- a *view* (``EthernetFrame``, ``Ipv4Packet``, ``TcpSegment``, ...) over a caller-owned buffer.
  ``View.new_checked(buf)`` checks the length once (integrity); after that no accessor can fail.
  Over a writable buffer (``bytearray``, writable ``memoryview``) fields can be set in place.
- a *repr* (``EthernetRepr``, ``Ipv4Repr``, ``TcpRepr``, ...): a small frozen value with
  ``parse(view)`` (sanity checks: legal values, checksum), ``buffer_len()`` and ``emit(view)``.

This package never reads the clock, draws randomness or touches a file or socket: the pcap codecs
work on byte streams a caller opens.
"""
