"""TODO init"""

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
