#!/usr/bin/env python3
"""Turn a scripts/bench.sh output folder into markdown tables with ratios
against Palisade, headed by the machine the numbers come from."""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

SERVERS = ["palisade", "bare", "bare-small", "node"]
# (scenario file, column title, report path, higher is better)
COLUMNS = {
    "connect": [("handshakes/s", ("values", "handshakes_per_sec"), True),
                ("p50 µs", ("latency", "handshake", "p50_us"), False),
                ("p99 µs", ("latency", "handshake", "p99_us"), False)],
    "idle": [("connections", ("values", "opened"), True),
             ("KiB/conn", ("values", "server_kib_per_connection"), False)],
    "echo": [("acks/s", ("values", "acks_per_sec"), True),
             ("p50 µs", ("latency", "send_to_ack", "p50_us"), False),
             ("p99 µs", ("latency", "send_to_ack", "p99_us"), False)],
    "fanout": [("delivered/s", ("values", "delivered_per_sec"), True),
               ("delivery", ("values", "delivery_ratio"), True),
               ("p50 µs", ("latency", "publish_to_receive", "p50_us"), False),
               ("p99 µs", ("latency", "publish_to_receive", "p99_us"), False),
               ("p99.9 µs", ("latency", "publish_to_receive", "p999_us"), False)],
    "mixed": [("delivered/s", ("values", "honest_delivered_per_sec"), True),
              ("p50 µs", ("latency", "honest_publish_to_receive", "p50_us"), False),
              ("p99 µs", ("latency", "honest_publish_to_receive", "p99_us"), False)],
    "mixed-hostile": [("delivered/s", ("values", "honest_delivered_per_sec"), True),
                      ("p50 µs", ("latency", "honest_publish_to_receive", "p50_us"), False),
                      ("p99 µs", ("latency", "honest_publish_to_receive", "p99_us"), False),
                      ("attacks", ("values", "hostile_attacks"), True),
                      ("refused", ("values", "hostile_refused"), True)],
}


def dig(report, path):
    for key in path:
        report = report.get(key, {}) if isinstance(report, dict) else {}
    return report if isinstance(report, (int, float)) else None


def fmt(v):
    if v is None:
        return "–"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:,.0f}"


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        mem = "unknown"
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() if os.path.exists("/usr/bin/node") else "absent"
    return f"{os.cpu_count()} cores ({cpu}), {mem} RAM, {platform.system()} {platform.release()}, {rustc}, node {node}"


def main():
    folder = Path(sys.argv[1])
    print(f"Machine: {machine()}. Server and load generator share these cores.\n")
    for scenario, columns in COLUMNS.items():
        rows = []
        for server in SERVERS:
            path = folder / f"{server}-{scenario}.json"
            if path.exists():
                rows.append((server, json.loads(path.read_text())))
        if not rows:
            continue
        base = dict(rows).get("palisade")
        params = " ".join(f"{k}={v}" for k, v in rows[0][1]["params"].items())
        print(f"### {scenario} ({params})\n")
        head = ["server"] + [c[0] for c in columns] + [f"{columns[0][0]} vs palisade"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for server, report in rows:
            values = [dig(report, c[1]) for c in columns]
            ratio = "–"
            if base is not None and values[0] is not None:
                b = dig(base, columns[0][1])
                if b:
                    ratio = f"{values[0] / b:.2f}×"
            print("| " + " | ".join([server] + [fmt(v) for v in values] + [ratio]) + " |")
        print()


if __name__ == "__main__":
    main()
