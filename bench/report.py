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


typename = oha("typename")
results = {name: oha(name) for name in ["my_account", "console_page", "record", "redeem", "segment_count"]}
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
print(row("`recordInteraction` (purchase)", results["record"], floors["record"], "pgbench",
          "≥ 50% of pgbench, p99 < 20 ms"))
print(row("  pgbench: its transaction", floors["record"]))
print(row("`redeemReward`", results["redeem"], floors["redeem"], "pgbench"))
print(row("  pgbench: its transaction", floors["redeem"]))
print(row("segment `memberCount` (4 connections)", results["segment_count"], target="< 500 ms"))
print()
for name, result in {"typename": typename, **results}.items():
    if result["success"] < 1 or result["ok"] == 0:
        print(f"**{name}: only {result['success']:.1%} of requests succeeded**")
print(f"- {(out / 'import.log').read_text().splitlines()[0]}")
print(f"- evaluation run, first after the import: {times['evaluation_first']:.1f} s; "
      f"steady state: {times['evaluation_steady']:.1f} s (target < 60 s)")
for log in ["segment-count.log", "fanout.log"]:
    for line in (out / log).read_text().strip().splitlines():
        print(f"- {line}")
