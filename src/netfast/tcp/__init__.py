"""TCP: the sans-IO core (RFC 9293) and the paper's transport-layer designs.

- :mod:`netfast.tcp.conn` -- one connection's input, output and timers: segments and a time in,
  segments and events out (options, SACK loss recovery, TLP, delayed ACKs, Nagle, persist,
  keepalive), built from:
  :mod:`netfast.tcp.state` (states and their transition table), :mod:`netfast.tcp.config`
  (``TcpConfig``), :mod:`netfast.tcp.sack` (the SACK scoreboard), :mod:`netfast.tcp.cc`
  (congestion control: NewReno and CUBIC, whose curve is :mod:`netfast.tcp.cubic`) and
  :mod:`netfast.tcp.rtt` (the RFC 6298 estimator).
- :mod:`netfast.tcp.reass` -- the coalescing reassembly queue ("TCP Reassembly").
- :mod:`netfast.tcp.pcb` -- the 4-tuple hash and wildcard listeners, per-connection input queues
  ("Protocol Control Block Lookup").
- :mod:`netfast.tcp.syncache`, :mod:`netfast.tcp.syncookie`, :mod:`netfast.tcp.isn` -- half-open
  connections, SYN cookies and RFC 6528 initial sequence numbers.
- :mod:`netfast.tcp.layer` -- the protocol as the host stack sees it: demultiplexing, timers,
  resets for segments nobody wants; :mod:`netfast.tcp.socket` -- BSD sockets and listeners.
"""
