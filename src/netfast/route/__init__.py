"""Routing: the RIB (authoritative prefix -> route table) and FIB lookup algorithms behind one
interface (as FreeBSD's fib_algo), implementing the "Routing Packets" section of the paper.

- :mod:`netfast.route.rib`       -- the RIB: prefixes, route ids, values; the reference LPM.
- :mod:`netfast.route.fib`       -- the FIB interface every algorithm implements.
- :mod:`netfast.route.stride`    -- the paper's 4 x 8-bit stride table with lock-free lookups.
- :mod:`netfast.route.radix`     -- the 4.4BSD PATRICIA trie the paper replaces (baseline).
- :mod:`netfast.route.lctrie`    -- the Nilsson-Karlsson LC-trie (baseline).
- :mod:`netfast.route.loaders`   -- text, CAIDA pfx2as, bgpdump -m, MRT readers (the only file I/O).

The package is sans-IO apart from the loaders: no clock, no randomness.
"""
