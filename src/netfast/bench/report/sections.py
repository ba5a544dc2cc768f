"""The report's sections: each puts the paper's claim, the competitors measured in the same run
and netfast's figure side by side, and states its verdict in one sentence.

Every section is a function of the run's JSON alone (:mod:`netfast.bench.report.run`): it reads
the stages it needs from ``run["stages"]`` and returns Markdown lines, a verdict, and the plots
to draw.  Nothing here measures, reads a clock or looks at the machine, so REPORT.md can always
be rendered again from ``run.json`` and comes out the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netfast.bench.bdp import bsd_bytes
from netfast.bench.report import plots
from netfast.bench.report.fmt import mib, ns, num, rate, ratio, table, yes

Run = dict[str, Any]


@dataclass
class Body:
    lines: list[str]
    verdict: str
    plots: list[plots.Plot] = field(default_factory=list)


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    claim: str
    """The paper's claim, or the question it left open."""
    needs: tuple[str, ...]
    """Stages without which the section cannot be written."""
    render: Callable[[Run], Body]
    uses: tuple[str, ...] = ()
    """Stages read when present."""


def data(run: Run, stage: str) -> Any:
    """The JSON of a stage that ran, else None."""
    entry = run["stages"].get(stage)
    if entry is None or entry.get("status") != "ok":
        return None
    return entry["data"]


def _best(rows: Sequence[dict[str, Any]], key: str) -> dict[str, Any] | None:
    return max(rows, key=lambda r: r[key] or 0.0) if rows else None


# --- Figure 1 ---------------------------------------------------------------------------------


def netfast_costs(run: Run) -> list[tuple[str, float]]:
    """(path, packets/s) measured in this run, for the time budget comparison."""
    out: list[tuple[str, float]] = []
    fwd = data(run, "forward")
    if fwd is not None:
        vec = [r for r in fwd["rows"] if r["kind"] == "vector" and r["rules"] == 0]
        sca = [r for r in fwd["rows"] if r["kind"] == "scalar" and r["rules"] == 0]
        if vec:
            out.append(("vector path from memory, 0 rules", max(r["pps"] for r in vec)))
        if sca:
            out.append(("scalar path from memory, 0 rules", max(r["pps"] for r in sca)))
    live = data(run, "live")
    if live is not None and live.get("best", {}).get("netfast"):
        out.append(("live between veths (delivered)", live["best"]["netfast"]["delivered_pps"]))
        if live["best"].get("kernel"):
            out.append(
                ("Linux kernel forwarding (delivered)", live["best"]["kernel"]["delivered_pps"])
            )
    return out


def _fastest_filled(rows: Sequence[dict[str, Any]], pps: float) -> str:
    filled = [r["speed"] for r in rows if r["pps_64"] <= pps]
    return filled[-1] if filled else f"none (below {rows[0]['speed']})"


def figure1(run: Run) -> Body:
    eth = data(run, "ethernet")
    rows = eth["figure1"]
    lines = table(
        ["speed", "64-byte frames/s", "budget per frame", "1500-byte payloads/s", "payload bit/s"],
        [
            [
                r["speed"] + ("" if r["in_paper"] else " (not in the paper)"),
                f"{r['pps_64']:,.0f}",
                ns(r["budget_ns_64"]),
                f"{r['pps_1500']:,.0f}",
                f"{r['payload_bps_1500']:,.0f}",
            ]
            for r in rows
        ],
    )
    costs = netfast_costs(run)
    if costs:
        lines += ["", "netfast's measured cost per packet in this run (64-byte frames):", ""]
        lines += table(
            ["path", "packets/s", "cost per packet", "fastest link filled at 64 bytes"],
            [[p, rate(pps, "pps"), ns(1e9 / pps), _fastest_filled(rows, pps)] for p, pps in costs],
        )
    lines += ["", "Jumbo frames at 10 Gb/s:", ""]
    lines += table(
        ["payload bytes", "frame bytes", "frames/s", "payload bit/s", "payload share"],
        [
            [
                f"{j['payload']:,}",
                f"{j['frame']:,}",
                f"{j['pps']:,.0f}",
                f"{j['payload_bps']:,.0f}",
                f"{100 * j['payload_share']:.2f}%",
            ]
            for j in eth["jumbo"]
        ],
    )
    ten = next(r for r in rows if r["speed"] == "10 Gb/s")
    if costs:
        path, pps = costs[0]
        verdict = (
            f"At 10 Gb/s a 64-byte frame leaves {ns(ten['budget_ns_64'])} of work per packet; "
            f"netfast's {path} costs {ns(1e9 / pps)}, which fills "
            f"{_fastest_filled(rows, pps)} links with minimum-size frames."
        )
    else:
        verdict = (
            f"At 10 Gb/s a 64-byte frame leaves {ns(ten['budget_ns_64'])} per packet "
            "(netfast's own cost was not measured in this run)."
        )
    return Body(lines, verdict, [plots.Plot("figure1.png", plots.figure1, (rows, costs))])


# --- checksum ---------------------------------------------------------------------------------


def checksum(run: Run) -> Body:
    ck = data(run, "checksum")
    rows = ck["per_buffer"]
    lines = table(
        ["bytes", "netfast", "scapy", "Python loop", "netfast / scapy"],
        [
            [
                f"{r['bytes']:,}",
                rate(r["netfast"]),
                rate(r["scapy"]),
                rate(r["python_loop"]),
                ratio(r["netfast"] / r["scapy"]),
            ]
            for r in rows
        ],
    )
    b = ck["batch_headers_per_s"]
    lines += ["", "IPv4 header checksums over a batch:", ""]
    lines += table(
        ["kernel", "headers/s"],
        [
            ["numba (netfast's vector path)", rate(b["numba"])],
            ["numpy", rate(b["numpy"])],
            ["scalar loop", rate(b["scalar"])],
        ],
    )
    mtu = next(r for r in rows if r["bytes"] == 1500)
    verdict = (
        f"In software, netfast sums a 1500-byte packet {ratio(mtu['netfast'] / mtu['scapy'])} "
        f"faster than scapy ({rate(mtu['netfast'])} against {rate(mtu['scapy'])}), and its batch "
        f"kernel checks {rate(b['numba'], ' headers/s')}."
    )
    return Body(lines, verdict)


# --- integrity checks and local addresses -----------------------------------------------------


def integrity(run: Run) -> Body:
    ip = data(run, "ipinput")
    ig = ip["integrity"]
    sc, vc = ig["scalar"], ig["vector"]
    tr = ip["traffic"]
    lines = [
        f"Traffic: {tr['valid_packets']:,} valid IPv4 packets from {len(tr['captures'])} real "
        f"captures ({tr['frames_read']:,} frames read); the checks rejected "
        f"{sum(tr['rejected'].values()):,} of {tr['ipv4_frames']:,} IPv4 frames "
        f"({100 * tr['rejected_share']:.2f}%: "
        + (", ".join(f"{k} {v:,}" for k, v in sorted(tr["rejected"].items())) or "none")
        + ").",
        "",
    ]
    lines += table(
        ["path", "header checks", "whole input step", "checks' share"],
        [
            [
                "scalar (Router.input, per packet)",
                ns(sc["checks_ns"]),
                ns(sc["input_ns"]),
                f"{100 * sc['checks_share']:.1f}%",
            ],
            [
                f"vector (batch of {vc['batch']:,}, per packet)",
                ns(vc["classify_ns"]),
                ns(vc["step_ns"]),
                f"{100 * vc['classify_share']:.1f}%",
            ],
        ],
    )
    lines += ["", "Hostile packets (each kind sent to both paths):", ""]
    lines += table(
        ["kind", "what", "counter", "sent", "scalar counted", "vector", "vector counted"],
        [
            [
                h["kind"],
                h["what"],
                f"`{h['counter']}`",
                f"{h['sent']:,}",
                f"{h['scalar_counted']:,}",
                h["vector"],
                f"{h['vector_counted']:,}",
            ]
            for h in ig["hostile"]
        ],
    )
    loc = ip["local"]
    lines += [
        "",
        f"Is the destination local? The hash of local addresses against the loop over interfaces "
        f"and their addresses ({loc['addrs_per_interface']} per interface, "
        f"{100 * loc['local_share']:.0f}% of lookups local):",
        "",
    ]
    lines += table(
        ["addresses", "interfaces", "hash", "loop", "hash / loop", "batch: hash / loop", "agree"],
        [
            [
                f"{r['addrs']:,}",
                f"{r['interfaces']:,}",
                rate(r["hash_per_s"]),
                rate(r["loop_per_s"]),
                ratio(r["hash_over_loop"]),
                ratio(r["batch_hash_over_loop"]),
                yes(r["agree"]),
            ]
            for r in loc["rows"]
        ],
    )
    counted = sum(h["ok"] for h in ig["hostile"])
    last = loc["rows"][-1]
    verdict = (
        f"The basic header checks take {100 * sc['checks_share']:.0f}% of the scalar input step "
        f"and {100 * vc['classify_share']:.0f}% of the vector one, "
        f"{counted} of {len(ig['hostile'])} hostile kinds are dropped under their own counter "
        f"on both paths, real traffic is rejected {100 * tr['rejected_share']:.2f}% of the time, "
        f"and the local-address hash is {ratio(last['hash_over_loop'])} the loop at "
        f"{last['addrs']:,} addresses (batch: faster from {loc['crossover']['batch']} on)."
    )
    return Body(lines, verdict)


# --- Figure 16 --------------------------------------------------------------------------------


def _kb(x: float) -> str:
    return f"{x:,.2f}".rstrip("0").rstrip(".")


def figure16(run: Run) -> Body:
    bd = data(run, "bdp")
    cells = bd["figure16"]
    speeds = list(dict.fromkeys(c["speed"] for c in cells))
    rtts = sorted({c["rtt_ms"] for c in cells})
    at = {(c["speed"], c["rtt_ms"]): c for c in cells}
    lines = ["Bandwidth * delay product in kB (1 kB = 1,000 bytes):", ""]
    lines += table(
        ["speed", *[f"{t} ms" for t in rtts]],
        [[s, *[_kb(at[s, t]["bdp_kB"]) for t in rtts]] for s in speeds],
    )
    lines += [
        "",
        "The reassembly memory a window implies when its first segment is lost (100 ms RTT; the "
        f"window is capped at {bd['constants']['max_window']:,} bytes by window scaling):",
        "",
    ]
    lines += table(
        ["speed", "window", "bytes waiting", "4.4BSD mbufs", "netfast (model)", "netfast bound"],
        [
            [
                s,
                f"{at[s, 100]['window_bytes']:,}",
                f"{at[s, 100]['waiting_bytes']:,}",
                f"{at[s, 100]['bsd_bytes']:,}",
                f"{at[s, 100]['netfast_bytes']:,.0f}",
                f"{at[s, 100]['netfast_bound_bytes']:,.0f}",
            ]
            for s in speeds
            if (s, 100) in at
        ],
    )
    ms = [m for m in bd["measured"] if m["order"] == "in_order" and m["bytes_held"]]
    windows = sorted({m["window_bytes"] for m in ms})
    by = {(m["impl"], m["order"], m["window_bytes"]): m for m in bd["measured"]}
    c = bd["constants"]

    def _mem(impl: str, w: int) -> str:
        m = by.get((impl, "in_order", w))
        if m is None:
            return "-"
        return f"{m['traced_bytes']:,} ({ratio(m['traced_bytes'] / m['bytes_held'])})"

    rows = []
    for w in windows:
        ll = by.get(("linked_list", "in_order", w))
        nf = by[("netfast", "in_order", w)]
        sh = by.get(("netfast", "shuffled", w))
        rows.append(
            [
                f"{w:,}",
                f"{nf['bytes_held']:,}",
                _mem("netfast", w),
                _mem("linked_list", w),
                f"{ll['mbuf_bytes']:,} ({ratio(ll['mbuf_bytes'] / ll['bytes_held'])})"
                if ll and ll["mbuf_bytes"]
                else f"{bsd_bytes(w, c['mss'], c['mbuf_per_segment']):,} (model)",
                f"{sh['bytes_held']:,} / {sh['retransmitted_bytes']:,}" if sh else "-",
                yes(all(m["delivered_ok"] for m in bd["measured"] if m["window_bytes"] == w)),
            ]
        )
    lines += ["", "Measured with netfast's reassembly queue (first segment lost, then resent):", ""]
    lines += table(
        [
            "window",
            "bytes held",
            "netfast memory",
            "linked list memory",
            "4.4BSD mbufs",
            "shuffled: netfast held / resent",
            "delivered intact",
        ],
        rows,
    )
    lines += [
        "",
        f"The one-byte attack: one-byte segments after a lost first one, contiguous or with a "
        f"gap between each (socket buffer {bd['caps']['attack_socket_buffer']:,} bytes; the "
        f"linked list, which keeps every segment, is run for "
        f"{bd['caps']['attack_segments_linked_list']:,} segments only):",
        "",
    ]
    lines += table(
        [
            "queue",
            "shape",
            "segments sent",
            "bytes held",
            "blocks",
            "memory",
            "memory per segment sent",
            "4.4BSD mbufs",
        ],
        [
            [
                a["impl"],
                a["shape"],
                f"{a['segments_sent']:,}",
                f"{a['bytes_held']:,}",
                f"{a['blocks']:,}",
                f"{a['traced_bytes']:,}",
                f"{a['traced_per_segment']:.3g}",
                "-" if a["mbuf_bytes"] is None else f"{a['mbuf_bytes']:,}",
            ]
            for a in bd["attack"]
        ],
    )
    big = max(windows)
    nf = by[("netfast", "in_order", big)]
    gb = at.get(("1 Gb/s", 100))
    gapped = next(a for a in bd["attack"] if a["impl"] == "netfast" and a["shape"] == "gapped")
    verdict = (
        (
            f"At 1 Gb/s and 100 ms the window is {gb['bdp_kB']:,.0f} kB, for which 4.4BSD's mbufs "
            f"would tie up {mib(gb['bsd_bytes'])} and netfast {mib(gb['netfast_bytes'])}; "
            if gb
            else ""
        )
        + f"measured up to a {big:,}-byte window netfast used "
        f"{ratio(nf['traced_bytes'] / nf['bytes_held'])} the bytes it held, and the one-byte "
        f"attack left it holding {gapped['bytes_held']:,} bytes in {gapped['blocks']} blocks."
    )
    return Body(lines, verdict, [plots.Plot("figure16.png", plots.figure16, (bd,))])


# --- PCB lookup and the TCP lock --------------------------------------------------------------


def pcb(run: Run) -> Body:
    pc = data(run, "pcb")
    lk = pc["lookup"]
    impls = list(dict.fromkeys(r["impl"] for r in lk["rows"]))
    ns_ = sorted({r["n"] for r in lk["rows"]})
    cell = {(r["n"], r["impl"]): r for r in lk["rows"]}
    lines = ["Connection lookup (demux of a segment to its 4-tuple), ns per lookup:", ""]
    lines += table(
        ["connections", *impls, "longest chain"],
        [
            [
                f"{n:,}",
                *[ns(cell[n, i]["ns_per_lookup"]) if (n, i) in cell else "-" for i in impls],
                next((str(b["max_chain"]) for b in lk["buckets"] if b["n"] == n), "-"),
            ]
            for n in ns_
        ],
    )
    lines += ["", f"All implementations return the same connection: {yes(lk['agree'])}.", ""]
    lo = pc["locking"]
    designs = list(dict.fromkeys(r["design"] for r in lo["rows"]))
    cases = sorted({(r["connections"], r["threads"]) for r in lo["rows"]})
    lrow = {(r["design"], r["connections"], r["threads"]): r for r in lo["rows"]}
    w = lo["work"]
    lines += [
        f"Segments/s delivered to their connections, one shared receive ring, best of "
        f"{pc['rounds']} rounds; per segment: {w['description']} ({ns(w['kernel_ns'])} a call, "
        f"{'without' if w['nogil'] else 'holding'} the GIL):",
        "",
    ]
    lines += table(
        ["connections", "threads", *designs, "exactly once, in order", "drops"],
        [
            [
                f"{c:,}",
                str(t),
                *[
                    rate(lrow[d, c, t]["segments_per_s"], " seg/s") if (d, c, t) in lrow else "-"
                    for d in designs
                ],
                yes(
                    all(
                        lrow[d, c, t]["exactly_once"] and lrow[d, c, t]["in_order"]
                        for d in designs
                        if (d, c, t) in lrow
                    )
                ),
                f"{sum(lrow[d, c, t]['drops'] for d in designs if (d, c, t) in lrow):,}",
            ]
            for c, t in cases
        ],
    )
    return Body(lines, pc["verdict"], [plots.Plot("pcb.png", plots.pcb, (pc,))])


# --- pfil -------------------------------------------------------------------------------------


def pfil(run: Run) -> Body:
    pf = data(run, "pfil")
    impls, cases, grid = plots.pfil_grid(pf)
    rows = []
    for hooks, readers, churn in cases:
        row: list[object] = [
            f"{hooks} hook{'s' * (hooks != 1)}, {readers} reader{'s' * (readers != 1)}"
            + (", writer churning" if churn else "")
        ]
        for impl in impls:
            cell = grid.get((impl, (hooks, readers, churn)))
            row.append(rate(cell["runs_per_s"], " runs/s") if cell else "-")
        rows.append(row)
    lines = table(["case", *impls], rows)
    lines += [
        "",
        "Geometric mean over the cases, relative to the winner and to the locked list:",
        "",
    ]
    lines += table(
        ["design", "score", "vs rwlock"],
        [[i, ratio(pf["scores"][i]), ratio(pf["vs_rwlock"][i])] for i in impls],
    )
    w = pf["winner"]
    verdict = (
        f"Of the two lock-free designs, {w!r} wins: {ratio(pf['vs_rwlock'][w])} the hook runs per "
        f"second of the reader-writer locked list, with hooks changing while traffic flows."
    )
    return Body(lines, verdict, [plots.Plot("pfil.png", plots.pfil, (pf,))])


# --- routing ----------------------------------------------------------------------------------


def _lat(a: dict[str, Any]) -> str:
    lat = a.get("update_latency_us")
    if not lat:
        return "-"
    return f"{lat['p50']:.1f} / {lat['p99']:.1f} / {lat['max']:,.0f}"


def routing(run: Run) -> Body:
    rt = data(run, "route")
    lines: list[str] = []
    for t in rt:
        lines += [f"**{t['table']}**: {t['prefixes']:,} prefixes.", ""]
        lines += table(
            [
                "algorithm",
                "MiB",
                "B/prefix",
                "build s",
                "scalar",
                "batch inside",
                "batch uniform",
                "updates/s with reader",
                "reader during updates",
                "update µs p50 / p99 / max",
            ],
            [
                [
                    a["name"],
                    mib(a["memory_bytes"]) if a["memory_bytes"] else "-",
                    num(a["bytes_per_prefix"]),
                    f"{a['build_s']:.2f}",
                    rate(a["scalar_lps"]),
                    rate(a["batch_lps_inside"]),
                    rate(a["batch_lps_uniform"] or None),
                    rate(a["updates_per_s_with_reader"] or a["updates_per_s"]),
                    rate(a["batch_lps_during_updates"]),
                    _lat(a),
                ]
                for a in t["algorithms"]
            ],
        )
        lines.append("")
    big = max(rt, key=lambda t: t["prefixes"])
    algos = {a["name"]: a for a in big["algorithms"]}
    ours = [a for a in big["algorithms"] if "external" not in a["name"]]
    best = max(ours, key=lambda a: a["batch_lps_inside"])
    tricia = algos.get("pytricia (external)")
    radix = algos.get("radix")
    stride = algos.get("stride")
    lct = algos.get("lctrie")
    parts = [
        f"On {big['table']} ({big['prefixes']:,} prefixes) the fastest engine, {best['name']}, "
        f"does {rate(best['batch_lps_inside'], ' lookups/s')} in {mib(best['memory_bytes'])}"
    ]
    if tricia:
        parts.append(
            f"{ratio(best['batch_lps_inside'] / tricia['scalar_lps'])} pytricia's per-address "
            "lookups"
        )
    if radix:
        parts.append(
            f"{ratio(best['batch_lps_inside'] / radix['batch_lps_inside'])} the BSD radix tree "
            f"({mib(radix['memory_bytes'])})"
        )
    verdict = ", ".join(parts) + "."
    if stride and lct and radix:
        mem_vs_lct = stride["memory_bytes"] / lct["memory_bytes"]
        speed_vs_radix = stride["batch_lps_inside"] / radix["batch_lps_inside"]
        verdict += (
            f" The paper's stride table takes {ratio(mem_vs_lct)} "
            f"the LC-trie's memory and runs {ratio(speed_vs_radix)} "
            f"the radix tree's batch rate; it and {best['name']} take updates while lookups run. "
            f"The LC-trie runs {ratio(lct['batch_lps_inside'] / radix['batch_lps_inside'])} the "
            "radix tree's rate (the paper's 'order of magnitude') but is rebuilt on every change."
        )
    return Body(lines, verdict, [plots.Plot("routing.png", plots.routing, (rt,))])


# --- vector path and firewall -----------------------------------------------------------------


def forwarding(run: Run) -> Body:
    fwd = data(run, "forward")
    rows = fwd["rows"]
    rules = sorted({r["rules"] for r in rows if r["kind"] == "vector"})
    body = []
    for n in rules:
        vec = _best([r for r in rows if r["kind"] == "vector" and r["rules"] == n], "pps")
        sca = _best([r for r in rows if r["kind"] == "scalar" and r["rules"] == n], "pps")
        body.append(
            [
                f"{n} rules",
                rate(vec["pps"] if vec else None, "pps"),
                vec["batch"] if vec else "-",
                rate(sca["pps"] if sca else None, "pps"),
                ratio(vec["pps"] / sca["pps"]) if vec and sca else "-",
                ratio(vec["pps"] / fwd["meta"]["line_rate_10g_64b_pps"]) if vec else "-",
            ]
        )
    lines = table(
        [
            "firewall",
            "vector path",
            "best batch",
            "scalar path",
            "vector / scalar",
            "of 10GbE line rate",
        ],
        body,
    )
    fw = data(run, "firewall")
    if fw is not None:
        lines += ["", "The firewall's matchers alone (netfast's ipfw rule language):", ""]
        lines += table(
            ["workload", "rules", "linear walk", "bitmaps", "scalar", "bitmaps / walk"],
            [
                [
                    c["workload"],
                    c["rules"],
                    rate(c["walk_pps"], "pps"),
                    rate(c["bitmap_pps"], "pps"),
                    rate(c["scalar_pps"], "pps"),
                    ratio(c["bitmap_over_walk"]),
                ]
                for c in fw["cells"]
            ],
        )
    top = max(rules)
    vec0 = _best([r for r in rows if r["kind"] == "vector" and r["rules"] == 0], "pps")
    vtop = _best([r for r in rows if r["kind"] == "vector" and r["rules"] == top], "pps")
    line_rate = fwd["meta"]["line_rate_10g_64b_pps"]
    verdict = (
        f"From memory the vector path forwards {rate(vec0['pps'] if vec0 else None, 'pps')} "
        "with no "
        f"rules and {rate(vtop['pps'] if vtop else None, 'pps')} with {top}, against 10 GbE's "
        f"{rate(line_rate, 'pps')} of 64-byte frames."
    )
    return Body(lines, verdict)


# --- TCP reassembly and TSO -------------------------------------------------------------------

_PATTERNS = ("in_order", "reordered", "adversarial")


def reassembly(run: Run) -> Body:
    tcp = data(run, "tcp")
    rs = tcp["reass"]
    impls = sorted({r["impl"] for r in rs}, key=lambda i: (i != "netfast", i))
    rows = []
    for p in _PATTERNS:
        for i in impls:
            r = next((x for x in rs if x["pattern"] == p and x["impl"] == i), None)
            if r is not None:
                rows.append(
                    [
                        p.replace("_", " "),
                        i,
                        rate(r["segments_per_s"], " seg/s"),
                        f"{r['peak_bytes_held']:,}",
                        f"{r['peak_objects']:,}",
                        f"{r['delivered_bytes']:,}",
                    ]
                )
    lines = table(
        [
            "arrivals",
            "queue",
            "segments/s",
            "peak bytes held",
            "peak blocks/entries",
            "bytes delivered",
        ],
        rows,
    )
    a = tcp["answers"]
    adv = {r["impl"]: r for r in rs if r["pattern"] == "adversarial"}
    verdict = (
        f"Under the many-small-segments attack netfast's coalescing queue takes "
        f"{ratio(a['reass_adversarial_ratio'])} the linked list's segments/s and holds "
        f"{a['reass_peak_bytes']['netfast']:,} bytes in {adv['netfast']['peak_objects']:,} blocks "
        f"where the list holds {a['reass_peak_bytes']['linked_list']:,} in "
        f"{adv['linked_list']['peak_objects']:,} entries."
    )
    return Body(lines, verdict, [plots.Plot("reassembly.png", plots.reassembly, (rs,))])


def tso(run: Run) -> Body:
    tcp = data(run, "tcp")
    rows = []
    ratios = tcp["answers"]["offload_ratio"]
    for t in tcp["transfers"]:
        if t["path"] == "memory":
            key = f"memory/{t['mtu']}"
        else:
            key = f"tap/{t['direction']}"
        r = ratios.get(key, {}).get(t["offloads"])
        # The cost of one wire-sized segment's worth of data (MSS = MTU - 40), whoever cut it.
        per_seg = t["seconds"] * 1e9 * (t["mtu"] - 40) / t["bytes"] if t["bytes"] else None
        rows.append(
            [
                t["path"],
                t["direction"].replace("_", " "),
                t["mtu"],
                t["offloads"] or "(PyTCP)",
                num(t["mbit_s"]),
                ns(per_seg),
                "-" if t["impl"] != "netfast" else ratio(r) if r is not None else "1.00x",
                yes(t["sha256_ok"]),
            ]
        )
    lines = table(
        [
            "path",
            "direction",
            "MTU",
            "offloads",
            "Mbit/s",
            "time per MSS of data",
            "vs none",
            "sha256 ok",
        ],
        rows,
    )
    cc = tcp.get("congestion_control") or []
    if cc:
        lines += ["", "Congestion control through seeded loss (simulated; median goodput):", ""]
        lines += table(
            ["control", "loss", "RTT ms", "Mbit/s", "lost", "resent", "timeouts"],
            [
                [
                    c["cc"],
                    f"{100 * c['loss']:g}%",
                    num(c["rtt_ms"]),
                    num(c["median_mbit_s"]),
                    f"{c['lost']:,}",
                    f"{c['retransmits']:,}",
                    c["timeouts"],
                ]
                for c in cc
            ],
        )
    tap = {k: v for k, v in ratios.items() if k.startswith("tap/")}
    if tap:
        best_key = max(tap, key=lambda k: max(tap[k].values()))
        best_off = max(tap[best_key], key=lambda o: tap[best_key][o])
        verdict = (
            f"Large segments are worth it: over the TAP, {best_off} offloads move "
            f"{ratio(tap[best_key][best_off])} the bytes per second of building every wire-sized "
            f"segment in netfast ({best_key.split('/', 1)[1].replace('_', ' ')})."
        )
    else:
        mem = ratios.get("memory/1500", {}).get("software")
        verdict = (
            f"In memory at MTU 1500, software segmentation offload gives {ratio(mem)} the rate "
            "without it (the TAP was not measured in this run)."
        )
    return Body(lines, verdict)


# --- T/TCPv2 ----------------------------------------------------------------------------------


def ttcp(run: Run) -> Body:
    tt = data(run, "ttcp")
    lines = ["Simulated netfast to netfast (round trips on the simulated clock):", ""]
    lines += table(
        [
            "mode",
            "RTT ms",
            "first request ms",
            "repeat request ms",
            "repeat in RTTs",
            "CPU µs per connection",
        ],
        [
            [
                r["mode"],
                num(r["rtt_ms"]),
                num(r["first_ms"]),
                num(r["repeat_ms"]),
                num(r["repeat_rtts"]),
                num(r["cpu_us_per_conn"]),
            ]
            for r in tt["simulated"]
        ],
    )
    if tt.get("linux"):
        lines += ["", "A Linux client against `netfast host` through the delay bridge:", ""]
        lines += table(
            ["mode", "RTT ms", "first ms", "repeat ms", "repeat in RTTs", "data in SYN", "error"],
            [
                [
                    r["mode"],
                    num(r["rtt_ms"]),
                    num(r["first_ms"]),
                    num(r["repeat_ms"]),
                    num(r["repeat_rtts"]),
                    f"{r['syn_data']}/{r['requests']}",
                    r["error"] or "",
                ]
                for r in tt["linux"]
            ],
        )
    if tt.get("connections"):
        lines += ["", "Short connections from Linux clients over a TAP:", ""]
        lines += table(
            ["parallel", "close", "connections/s", "completed", "failed", "error"],
            [
                [
                    c["parallel"],
                    c["close"],
                    num(c["per_s"]),
                    f"{c['completed']:,}",
                    c["failed"],
                    c["error"] or "",
                ]
                for c in tt["connections"]
            ],
        )
    ping = tt.get("ping")
    if isinstance(ping, dict):
        lines += [
            "",
            f"ICMP echo (`ping -f`): {num(ping['per_s'])} replies/s "
            f"({ping['received']:,} of {ping['sent']:,}).",
        ]
    far = [r for r in tt["simulated"] if r["rtt_ms"] == max(x["rtt_ms"] for x in tt["simulated"])]
    plain = next(r for r in far if r["mode"] == "plain TCP")
    t2 = next(r for r in far if r["mode"] == "T/TCPv2")
    verdict = (
        f"At {num(plain['rtt_ms'])} ms RTT a repeat request takes {num(t2['repeat_rtts'])} round "
        f"trip with T/TCPv2 against {num(plain['repeat_rtts'])} with plain TCP: the handshake's "
        f"round trip is saved."
    )
    return Body(lines, verdict, [plots.Plot("ttcp.png", plots.ttcp, (tt,))])


# --- HTTP and Figure 18 -----------------------------------------------------------------------


def http(run: Run) -> Body:
    h = data(run, "http")
    wrk = [r for r in h["rows"] if r["section"] in ("keepalive", "close", "large", "tap")]
    lines = table(
        ["load", "server", "workers", "requests/s", "bytes/s", "p99 latency", "content ok"],
        [
            [
                r.get("load", r["section"]),
                r["server"],
                r["workers"],
                num(r["requests_per_s"]),
                rate(r["bytes_per_s"], "B/s"),
                f"{r['latency_us']['p99'] / 1000:.1f} ms",
                yes(r["content_ok"]),
            ]
            for r in wrk
        ],
    )
    fig = [r for r in h["rows"] if r["section"] == "figure18"]
    if fig:
        pollers = sorted({(r["server"], r["poller"]) for r in fig})
        idles = sorted({r["idle"] for r in fig})
        lines += ["", "Figure 18: median response time (µs) with idle connections open:", ""]
        rows = []
        for srv, pol in pollers:
            row: list[object] = [f"{srv} ({pol})"]
            for k in idles:
                r = next(
                    (
                        x
                        for x in fig
                        if x["server"] == srv and x["poller"] == pol and x["idle"] == k
                    ),
                    None,
                )
                row.append("-" if r is None else num(r["median_us"]) if "median_us" in r else "n/a")
            rows.append(row)
        lines += table(["server (poller)", *[f"{k:,} idle" for k in idles]], rows)
        skipped = list(
            dict.fromkeys(
                str(r.get("skipped") or r.get("error")) for r in fig if "median_us" not in r
            )
        )
        if skipped:
            lines += ["", "n/a: " + "; ".join(skipped) + "."]
    queue = [r for r in h["rows"] if r["section"] == "figure18-queue"]
    if queue:
        kinds = list(dict.fromkeys(r["line"] for r in queue))
        idles = sorted({r["idle"] for r in queue})
        lines += ["", "In process, one active connection: median µs per event retrieval round:", ""]
        qrows = []
        for kind in kinds:
            qrow: list[object] = [kind]
            for k in idles:
                r = next((x for x in queue if x["line"] == kind and x["idle"] == k), None)
                qrow.append(
                    "-" if r is None else num(r["median_us"]) if "median_us" in r else "n/a"
                )
            qrows.append(qrow)
        lines += table(["retrieval", *[f"{k:,} idle" for k in idles]], qrows)
    targets = h.get("targets", [])
    if targets:
        lines += ["", "Targets:", ""]
        lines += table(
            ["target", "workers", "ratio", "goal", "met"],
            [
                [
                    t["target"].replace("_", " "),
                    t.get("workers", "-"),
                    ratio(t["ratio"]),
                    ratio(t["goal"]),
                    yes(t["met"]),
                ]
                for t in targets
            ],
        )
    ka = {r["server"]: r for r in wrk if r["section"] == "keepalive" and r["workers"] == 1}
    parts = []
    if "netfast" in ka and "nginx" in ka:
        parts.append(
            "Keep-alive 1 KiB requests: netfast httpd serves "
            f"{num(ka['netfast']['requests_per_s'])}/s, "
            f"{ratio(ka['netfast']['requests_per_s'] / ka['nginx']['requests_per_s'])} nginx"
        )
    measured = [r for r in fig if "median_us" in r]
    if measured:
        hi = max(r["idle"] for r in measured)
        sel = [r for r in measured if r["poller"] in ("select", "poll") and r["idle"] == hi]
        ep = [r for r in measured if r["poller"] == "epoll" and r["idle"] == hi]
        if sel and ep:
            slow = max(sel, key=lambda r: r["median_us"])
            parts.append(
                f"with {hi:,} idle connections {slow['poller']} answers in "
                f"{num(slow['median_us'])} µs against epoll's {num(ep[0]['median_us'])} µs, "
                "as Figure 18 shows for poll against kqueue"
            )
    verdict = "; ".join(parts) + "." if parts else "See the tables."
    plist = [plots.Plot("figure18.png", plots.figure18, (h["rows"],), writes=True)] if fig else []
    return Body(lines, verdict, plist)


# --- live forwarding --------------------------------------------------------------------------


def live(run: Run) -> Body:
    lv = data(run, "live")
    best = lv["best"]
    rows = []
    for mode in ("kernel", "netfast"):
        b = best.get(mode)
        if b:
            rows.append(
                [
                    mode,
                    b["generator"],
                    f"{b['sent']:,}",
                    rate(b["offered_pps"], "pps"),
                    rate(b["delivered_pps"], "pps"),
                    f"{100 * b['loss']:.2f}%",
                    b["unaccounted"],
                ]
            )
    lines = table(
        ["forwarder", "generator", "sent", "offered", "delivered", "loss", "unaccounted"], rows
    )
    tp = lv.get("throughput") or {}
    if tp:
        lines += ["", "Throughput (highest offered rate with < 0.1% loss, RFC 2544):", ""]
        lines += table(
            ["forwarder", "throughput", "bound"],
            [[m, rate(v["throughput_pps"], "pps"), v["bound"]] for m, v in tp.items()],
        )
    losses = (best.get("netfast") or {}).get("losses") or {}
    lost = {k: v for k, v in losses.items() if v}
    if lost:
        lines += [
            "",
            "Where netfast's lost frames went: "
            + ", ".join(f"{k} {v:,}" for k, v in lost.items())
            + ".",
        ]
    workers = lv["meta"]["workers"]
    verdict = (
        f"Between veths netfast delivered {rate(best['netfast']['delivered_pps'], 'pps')}, "
        f"{ratio(lv['netfast_over_kernel'])} the kernel's "
        f"{rate(best['kernel']['delivered_pps'], 'pps')} on the same veths "
        f"({workers} worker{'s' if workers != 1 else ''})."
    )
    return Body(lines, verdict)


# --- annotation -------------------------------------------------------------------------------


def annotate(run: Run) -> Body:
    an = data(run, "annotate")
    lines = table(
        ["engine", "rows/s", "target", "note"],
        [[r["name"], rate(r["rows_per_s"]), rate(r["target"]), r["note"]] for r in an["rows"]],
    )
    lines += [
        "",
        f"{an['file_rows']:,} rows; results equal to DuckDB's range join: "
        f"{yes(an['netfast_equals_duckdb_join'])}, to pytricia on a sample: "
        f"{yes(an['netfast_equals_pytricia_sample'])}.",
    ]
    rows = {r["name"]: r for r in an["rows"]}
    ours = rows.get("netfast, Parquet -> Parquet, text")
    duck = rows.get("DuckDB, ASOF range join, Parquet -> Parquet")
    tri = rows.get("pytricia, Python loop (uint32 sample)")
    parts = (
        [f"Parquet to Parquet, netfast annotates {rate(ours['rows_per_s'], ' rows/s')}"]
        if ours
        else []
    )
    if ours and duck:
        parts.append(f"{ratio(ours['rows_per_s'] / duck['rows_per_s'])} DuckDB's range join")
    if ours and tri:
        parts.append(f"{ratio(ours['rows_per_s'] / tri['rows_per_s'])} a pytricia loop")
    return Body(lines, ", ".join(parts) + "." if parts else "See the table.")


# --- the list ---------------------------------------------------------------------------------

SECTIONS: tuple[Section, ...] = (
    Section(
        "figure1",
        "Figure 1: packet rates and the time per packet",
        "Figure 1 gives the maximal packet and payload rates at 10 Mb/s to 40 Gb/s: 14.88 million "
        "64-byte frames per second at 10 Gb/s, the rate a router must sustain.",
        ("ethernet",),
        figure1,
        ("forward", "live"),
    ),
    Section(
        "checksum",
        "The checksum in software",
        "Checksum offload is often broken or unusable, so the CPU must compute the Internet "
        "checksum itself, and that must be cheap.",
        ("checksum",),
        checksum,
    ),
    Section(
        "integrity",
        "IP input: integrity checks and the local-address hash",
        "Basic IP header integrity checks reject packets with inconsistent information, and "
        "rejections are very seldom; since FreeBSD 4 a hash table of all local addresses "
        "replaces the loop over every interface and address.",
        ("ipinput",),
        integrity,
    ),
    Section(
        "pfil",
        "PFIL hooks: the two lock-free designs against the locked list",
        "Two lock-free, SMP-safe hook lists are proposed to replace the reader-writer locked "
        "TAILQ; 'performance tests will determine which one will be used'.",
        ("pfil",),
        pfil,
    ),
    Section(
        "routing",
        "The routing table",
        "A full DFZ view takes almost 50 MB in the BSD PATRICIA trie, which needs locking and "
        "backtracking; the LC-trie is about 3 MB and an order of magnitude faster but must be "
        "recomputed on every change; the four 8-bit strides fit in about the LC-trie's space, "
        "never backtrack, need no lock for lookups and take updates while lookups continue.",
        ("route",),
        routing,
    ),
    Section(
        "forwarding",
        "The vector path and the firewall",
        "Processing to completion with the data in cache (prefetching, batching) is how a "
        "router reaches line rate; firewall rules cost time per packet.",
        ("forward",),
        forwarding,
        ("firewall",),
    ),
    Section(
        "pcb",
        "PCB lookup: one global lock against per-connection input queues",
        "The global TCP lock lets only one CPU handle a segment at a time; a per-connection "
        "lockless queue, drained by the CPU already holding the connection, is proposed, and "
        "'extensive performance evaluations will be done before settling to one "
        "implementation'.",
        ("pcb",),
        pcb,
    ),
    Section(
        "figure16",
        "Figure 16: the bandwidth-delay product and the reassembly memory it implies",
        "Figure 16 gives the bandwidth * delay product at 10 Mb/s to 10 Gb/s and 1 to 300 ms; a "
        "socket may have to hold that much in its reassembly queue, and 4.4BSD holds every "
        "2-kbyte mbuf cluster it got data in, which small segments after a lost one exhaust.",
        ("bdp",),
        figure16,
    ),
    Section(
        "reassembly",
        "TCP reassembly: linked list against coalescing queue",
        "The 4.4BSD reassembly queue is a linked list holding every mbuf; many small segments "
        "after a missing one exhaust memory; the rewrite coalesces contiguous segments into "
        "one block, so only a few entries are searched.",
        ("tcp",),
        reassembly,
    ),
    Section(
        "tso",
        "TSO: what large segments are worth",
        "TCP segmentation offload hands the network card large segments; the paper asks whether "
        "it is worth its complexity (it calls the gain 'dubious' in some cases).",
        ("tcp",),
        tso,
    ),
    Section(
        "ttcp",
        "T/TCPv2: the round trip saved",
        "A repeat connection carries its request in the SYN with a server cookie and is answered "
        "without waiting for the three-way handshake, safely.",
        ("ttcp",),
        ttcp,
    ),
    Section(
        "http",
        "HTTP serving and Figure 18 (poll against kqueue)",
        "Figure 18: with many idle connections poll(2) answers ever slower, kqueue(2) does not; "
        "accept filters, sendfile and an aggregated event queue make a fast static server.",
        ("http",),
        http,
    ),
    Section(
        "live",
        "Live forwarding against the Linux kernel",
        "The router must forward at the link's packet rate on real interfaces.",
        ("live",),
        live,
    ),
    Section(
        "annotate",
        "Mapping addresses to prefixes at data-lake scale",
        "Not a claim of the paper: the routing table's batch engine put to work on columns of "
        "addresses.",
        ("annotate",),
        annotate,
    ),
)
