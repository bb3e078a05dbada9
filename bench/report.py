"""Turns bench/run.sh's results into the table of BENCHMARKS.md (Markdown on stdout)."""

import json
import re
import sys
from pathlib import Path

out = Path(sys.argv[1])


def oha(name):
    data = json.loads((out / f"{name}.json").read_text())
    summary, percentiles = data["summary"], data["latencyPercentiles"]
    ok = sum(int(n) for code, n in data.get("statusCodeDistribution", {}).items() if code.startswith("2"))
    return {
        "rps": summary["requestsPerSec"],
        "p50": percentiles["p50"] * 1000,
        "p99": percentiles["p99"] * 1000,
        "success": summary["successRate"],
        "ok": ok,
    }


def pgbench(name):
    text = (out / f"{name}.pgbench").read_text()
    tps = float(re.search(r"tps = ([0-9.]+)", text).group(1))
    latencies = [int(line) for line in (out / f"{name}.latencies").read_text().split()]
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1000
    return {"rps": tps, "p50": pick(0.50), "p99": pick(0.99)}


def timings():
    pairs = (line.split() for line in (out / "timings.txt").read_text().splitlines())
    return {name: float(seconds) for name, seconds in pairs}


def row(label, result, floor=None, floor_label="", target=""):
    ratio = f"{result['rps'] / floor['rps']:.0%} of {floor_label}" if floor else ""
    return (f"| {label} | {result['rps']:,.0f} | {result['p50']:.1f} | {result['p99']:.1f} "
            f"| {ratio} | {target} |")


def optional(read, name):
    try:
        return read(name)
    except FileNotFoundError:
        return None


typename = oha("typename")
results = {name: oha(name) for name in
           ["my_account", "console_page", "tier_page", "search_2", "search_3", "record", "redeem",
            "batch", "segment_count"]}
peers = {name: optional(oha, f"peer_{name}") for name in
         ["typename", "my_account", "console_page", "tier_page"]}
floors = {name: pgbench(f"{name}_sql") for name in ["my_account", "console_page", "record", "redeem"]}
times = timings()

print("| workload | req/s | p50 ms | p99 ms | ratio to its floor | target |")
print("|---|---:|---:|---:|---|---|")
print(row("`{ __typename }` (framework floor)", typename))
print(row("my account (customer token)", results["my_account"], typename, "`{ __typename }`",
          "≥ 50% of `{ __typename }`, p99 < 20 ms"))
print(row("  pgbench: its SQL", floors["my_account"]))
print(row("50-customer console page", results["console_page"], floors["console_page"], "pgbench",
          "≥ 40% of pgbench"))
print(row("  pgbench: its SQL", floors["console_page"]))
print(row("tier-filtered page (vip, by score, `totalCount`, tier history 3)", results["tier_page"],
          target="p99 < 100 ms"))
print(row("search, 2 characters, `totalCount` (8 connections)", results["search_2"],
          target="p99 < 50 ms"))
print(row("search, 3 characters, `totalCount` (8 connections)", results["search_3"],
          target="p99 < 50 ms"))
print(row("`recordInteraction` (purchase)", results["record"], floors["record"], "pgbench",
          "≥ 50% of pgbench, p99 < 20 ms"))
print(row("  pgbench: its transaction", floors["record"]))
print(row("`redeemReward`", results["redeem"], floors["redeem"], "pgbench"))
print(row("  pgbench: its transaction", floors["redeem"]))
batch = results["batch"]
print(f"| `recordInteractions` of 1,000 purchases (2 connections) | {batch['rps']:,.2f} "
      f"| {batch['p50']:.0f} | {batch['p99']:.0f} | **{batch['rps'] * 1000:,.0f} interactions/s** "
      f"| ≥ 3,000 interactions/s |")
print(row("segment `memberCount` (4 connections)", results["segment_count"], target="< 500 ms"))
print()

# PostGraphile v4 on the same database, the same shapes, measured back to back.
targets = {"typename": "", "my_account": "≥ 2×", "console_page": "≥ 2×",
           "tier_page": "≥ 1.5×, p99 < 100 ms"}
labels = {"typename": "`{ __typename }`", "my_account": "my account",
          "console_page": "50-customer console page",
          "tier_page": "tier-filtered page with `totalCount`"}
if any(peers.values()):
    print("| shape | Tierwise req/s | p50 ms | p99 ms | PostGraphile req/s | p50 ms | p99 ms "
          "| ratio | target |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, peer in peers.items():
        ours = typename if name == "typename" else results[name]
        if peer is None:
            print(f"| {labels[name]} | {ours['rps']:,.0f} | {ours['p50']:.1f} | {ours['p99']:.1f} "
                  f"| not measured | | | | {targets[name]} |")
            continue
        print(f"| {labels[name]} | {ours['rps']:,.0f} | {ours['p50']:.1f} | {ours['p99']:.1f} "
              f"| {peer['rps']:,.0f} | {peer['p50']:.1f} | {peer['p99']:.1f} "
              f"| **{ours['rps'] / peer['rps']:.2f}** | {targets[name]} |")
    print()

everything = {"typename": typename, **results,
              **{f"peer_{name}": peer for name, peer in peers.items() if peer}}
for name, result in everything.items():
    if result["success"] < 1 or result["ok"] == 0:
        print(f"**{name}: only {result['success']:.1%} of requests succeeded**")
for name in ["search_2", "search_3"]:
    response = optional(lambda n: json.loads((out / f"{n}.response").read_text()), name)
    if response:
        print(f"- {name}: totalCount {response['data']['customers']['totalCount']:,}")
print(f"- {(out / 'import.log').read_text().splitlines()[0]}")
print(f"- evaluation run, first after the import: {times['evaluation_first']:.1f} s; "
      f"steady state: {times['evaluation_steady']:.1f} s (target < 60 s)")
if "expiry_night" in times:
    print(f"- expiry night (every customer's points expire in one evaluation run): "
          f"**{times['expiry_night']:.1f} s** (target < 60 s); the next night, nothing left to "
          f"expire: {times['expiry_next_night']:.1f} s")
for log in ["expiry-night.log", "segment-count.log", "fanout.log"]:
    path = out / log
    if path.exists():
        for line in path.read_text().strip().splitlines():
            print(f"- {line}")
