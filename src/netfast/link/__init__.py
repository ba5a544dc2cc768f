"""Packet I/O links: the only package in netfast that does OS I/O.

Every link offers the same small interface (:class:`netfast.link.base.Link`): ``recv_batch``,
``send``, ``mtu``, ``name`` and ``close``.  Links compose: the impairment layer and the pcap
writer wrap any link.
"""
