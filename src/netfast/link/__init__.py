"""Packet I/O links: the only package in netfast that does OS I/O.

Every link offers the same small interface (:class:`netfast.link.base.Link`): ``recv_batch``,
``send``, ``mtu``, ``name`` and ``close``; packet rings (:mod:`netfast.link.ring`) also move
whole :class:`~netfast.wire.batch.FrameBatch` slots (:class:`netfast.link.base.BatchLink`).
Links compose: the impairment layer and the pcap writer wrap any link.
"""
