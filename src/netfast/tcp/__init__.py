"""TCP: the sans-IO core (RFC 9293) and the paper's transport-layer designs.

- :mod:`netfast.tcp.conn` -- one connection's state machine: segments and a time in, segments and
  events out (options, RTO, SACK loss recovery, NewReno, delayed ACKs, Nagle, persist, keepalive).
- :mod:`netfast.tcp.reass` -- the coalescing reassembly queue ("TCP Reassembly").
- :mod:`netfast.tcp.pcb` -- the 4-tuple hash and wildcard listeners, per-connection input queues
  ("Protocol Control Block Lookup").
- :mod:`netfast.tcp.syncache`, :mod:`netfast.tcp.syncookie`, :mod:`netfast.tcp.isn` -- half-open
  connections, SYN cookies and RFC 6528 initial sequence numbers.
- :mod:`netfast.tcp.layer` -- the protocol as the host stack sees it: demultiplexing, listeners,
  sockets, resets for segments nobody wants.
"""
