"""An ipfw-style firewall compiled to a pfil hook (the paper's "firewall packages" section).

Contract
--------
:func:`parse_rules` reads a rule file into a :class:`Ruleset`; the ruleset itself is the pfil hook
(``Callable[[PfilPacket], Verdict]``, a :class:`netfast.pfil.BatchHook`) and
:meth:`Ruleset.evaluate_batch` is the same ruleset over numpy columns of a whole batch for the
vector path (docs/ROUTER.md).  Malformed input raises :class:`FirewallError` naming file, rule,
line, column, what was expected and what was found.  The rule language is described in
:mod:`netfast.pfil.ipfw.parse`.

Modules, split as FreeBSD splits ipfw (``sbin/ipfw`` for the parser, ``ip_fw2.c`` for the
matcher, ``ip_fw_dynamic.c``, ``ip_fw_table.c``, ``ip_fw_pfil.c``)
--------------------------------------------------------------------------------------------
- :mod:`~netfast.pfil.ipfw.rules`: rule values (:class:`Rule`, :class:`Action`,
  :class:`AddrSpec`) and their printing;
- :mod:`~netfast.pfil.ipfw.parse`: the rule-file parser (userland ``ipfw``);
- :mod:`~netfast.pfil.ipfw.compile`: rules reduced to integers, and the rule table of the kernel;
- :mod:`~netfast.pfil.ipfw.walker`: the scalar matcher (generated per direction and protocol);
- :mod:`~netfast.pfil.ipfw.kernel`: the vector matcher (a numba kernel, rule-major);
- :mod:`~netfast.pfil.ipfw.dynamic`: keep-state keys, hashes and lifetimes;
- :mod:`~netfast.pfil.ipfw.ruleset`: :class:`Ruleset`, the hook: evaluation, state, counters;
- :mod:`~netfast.pfil.ipfw.reply`: the reset and unreachable replies.


Semantics chosen where ipfw leaves room
--------------------------------------
- Direction: ``in`` matches only :attr:`Direction.IN`, ``out`` only :attr:`Direction.OUT`;
  :attr:`Direction.FORWARD` matches neither (rules without ``in``/``out`` match every head).
  ``recv IF`` matches a packet on interface IF at the IN and FORWARD heads (the packet's
  ``ifindex`` is the interface it came in on), ``xmit IF`` at the OUT head (the interface it goes
  out on), ``via IF`` at any head.  Interface names map to indexes through ``interfaces``; a name
  not in the map matches nothing.
- ``frag`` matches any fragment (``PfilPacket.fragment``); a fragment without a transport header
  never matches ports, TCP flags or ICMP types.
- Time: the ruleset is sans-IO.  ``ruleset.now`` (seconds) is set by the caller -- the router per
  batch, the CLI from capture timestamps -- and :meth:`Ruleset.evaluate` also takes ``now``.
- keep-state: a matching keep-state rule records a dynamic state for the packet's 5-tuple (both
  directions).  The check for states is implied at the start of the ruleset: a packet that
  belongs to a live state takes the action of the rule that created it, is counted on that rule
  and skips rule evaluation.  Lifetimes (:class:`StateTimeouts`): a TCP state lives 300 s after
  each packet once both directions have been seen, 60 s before; other protocols 60 s.  The table
  holds at most ``max_states`` entries: when full, expired entries are reclaimed, oldest expiry
  first; if none has expired the packet is dropped and counted (``ipfw.state.full``).  ``limit N``
  bounds the live states one rule may own (``ipfw.state.limit``).
- reset / unreach: the packet is dropped (:attr:`Verdict.DROP`) and the reply is put in
  ``pkt.replies``.  Replies follow RFC 793 (RST) and RFC 1812 4.3.2.7 (no ICMP error about an
  ICMP error, a non-first fragment, a multicast/broadcast destination or source).  The ICMP
  source address is ``reply_source`` when set (the router sets its own address), else the
  packet's destination.
- ``log`` appends a line to ``ruleset.log`` (bounded) when the rule matches.
- Counters: per rule packets and bytes (IP total length), in :attr:`Ruleset.packets` and
  :attr:`Ruleset.bytes`; events that are not rule matches go to ``ruleset.stats``.  One thread
  evaluates a ruleset at a time (the router's packet loop); counters are not atomic.
"""

from netfast.pfil.ipfw.dynamic import StateTimeouts
from netfast.pfil.ipfw.parse import FirewallError, load_rules, parse_rule, parse_rules, read_rules
from netfast.pfil.ipfw.reply import icmp_unreach_for, tcp_reset_for
from netfast.pfil.ipfw.rules import (
    SERVICES,
    VERDICT_DROP,
    VERDICT_PASS,
    VERDICT_PUNT,
    Action,
    AddrItem,
    AddrSpec,
    Rule,
)
from netfast.pfil.ipfw.ruleset import RuleCounter, Ruleset

__all__ = [
    "Action",
    "AddrItem",
    "AddrSpec",
    "FirewallError",
    "Rule",
    "RuleCounter",
    "Ruleset",
    "SERVICES",
    "StateTimeouts",
    "VERDICT_DROP",
    "VERDICT_PASS",
    "VERDICT_PUNT",
    "icmp_unreach_for",
    "load_rules",
    "parse_rule",
    "parse_rules",
    "read_rules",
    "tcp_reset_for",
]
