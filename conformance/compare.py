#!/usr/bin/env python3
"""Compare an Autobahn (kosoku) report with the committed expectations.

Usage: compare.py REPORT_DIR EXPECTED_JSON [--update]

Fails when any case is FAILED, or when a case's outcome differs from the
committed one (so a change in behaviour shows up as a diff in review, as in
tungstenite's autobahn/expected-results.json).
"""
import json
import sys
from pathlib import Path


def outcomes(report_dir: Path) -> dict:
    index = json.loads((report_dir / "index.json").read_text())
    if len(index) != 1:
        sys.exit(f"expected one agent in {report_dir}/index.json, found {len(index)}")
    cases = next(iter(index.values()))
    return {
        case: {"behavior": r["behavior"], "behaviorClose": r["behaviorClose"]}
        for case, r in cases.items()
    }


def case_key(case: str):
    return tuple(int(p) for p in case.split("."))


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    report_dir, expected_path = Path(sys.argv[1]), Path(sys.argv[2])
    actual = outcomes(report_dir)
    ordered = {c: actual[c] for c in sorted(actual, key=case_key)}
    if "--update" in sys.argv[3:]:
        expected_path.write_text(json.dumps(ordered, indent=2) + "\n")
        print(f"wrote {len(ordered)} cases to {expected_path}")
        return 0
    expected = json.loads(expected_path.read_text())
    problems = []
    for case in sorted(set(expected) | set(actual), key=case_key):
        want, got = expected.get(case), actual.get(case)
        if got is None:
            problems.append(f"{case}: expected {want}, not run")
        elif "FAILED" in got.values():
            problems.append(f"{case}: FAILED {got}")
        elif want != got:
            problems.append(f"{case}: expected {want}, got {got}")
    failed = sum("FAILED" in o.values() for o in actual.values())
    print(f"conformance: {len(actual)} cases run, {failed} failed, {len(problems)} differ from {expected_path.name}")
    for p in problems:
        print(f"  {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
