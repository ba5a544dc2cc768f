"""UDP, the datagram transport (RFC 768): :mod:`netfast.udp.layer` holds the layer and its
sockets."""

from netfast.udp.layer import UDP_OUTCOMES, UdpLayer, UdpSocket

__all__ = ["UDP_OUTCOMES", "UdpLayer", "UdpSocket"]
