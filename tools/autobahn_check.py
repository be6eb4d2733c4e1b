#!/usr/bin/env python3
"""Gate an Autobahn (kosoku) report: every case's behavior must be OK or INFORMATIONAL.

Usage: tools/autobahn_check.py DIR [--min-cases N]

DIR/index.json, as kosoku writes it, maps agent -> case id -> entry:

    {"127.0.0.1:61234": {"1.1.1": {"behavior": "OK", "behaviorClose": "OK",
                                   "remoteCloseCode": 1000, "duration": 1,
                                   "reportfile": "127_0_0_1_61234_case_1_1_1.json"}, ...}}

behavior is one of OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED, FAILED, ERROR;
behaviorClose one of OK, INFORMATIONAL, FAILED, FAILED BY CLIENT, UNCLEAN, WRONG CODE.
Each case's DIR/<reportfile> has the detail (description, expectation, result, resultClose, ...).

kosoku counts NON-STRICT as a pass; this check does not. Exit 0 when every case is OK or
INFORMATIONAL (and at least --min-cases ran), 1 otherwise, 2 when the report cannot be read.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from collections import Counter
from pathlib import Path

PASSING = {"OK", "INFORMATIONAL"}
PASSING_CLOSE = {"OK", "INFORMATIONAL"}
DETAILED = 40  # failing cases printed with their report text; the rest by id only


def case_key(case_id: str) -> list[int]:
    """Numeric order: 1.2.10 after 1.2.9."""
    return [int(p) if p.isdigit() else 0 for p in case_id.split(".")]


def plain(text: object, limit: int = 240) -> str:
    """Report text without its HTML markup, on one line, shortened."""
    s = re.sub(r"<[^>]+>", " ", str(text))
    s = " ".join(html.unescape(s).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def detail(outdir: Path, entry: dict) -> dict:
    name = entry.get("reportfile")
    if not name:
        return {}
    try:
        with open(outdir / name, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, help="kosoku output directory (holds index.json)")
    ap.add_argument(
        "--min-cases",
        type=int,
        default=1,
        help="fail when fewer cases than this are in the report (a truncated run)",
    )
    args = ap.parse_args()

    index_path = args.dir / "index.json"
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print(f"autobahn: cannot read {index_path}: {e}", file=sys.stderr)
        return 2

    cases = []  # (agent, case id, entry)
    for agent, entries in index.items():
        for case_id, entry in entries.items():
            cases.append((agent, case_id, entry))
    cases.sort(key=lambda c: (c[0], case_key(c[1])))

    behaviors = Counter(e.get("behavior", "MISSING") for _, _, e in cases)
    closes = Counter(e.get("behaviorClose", "MISSING") for _, _, e in cases)
    agents = sorted({a for a, _, _ in cases})
    print(f"autobahn: {len(cases)} cases, agent(s): {', '.join(agents) or '-'}")
    print("  behavior:      " + ", ".join(f"{k} {v}" for k, v in sorted(behaviors.items())))
    print("  behaviorClose: " + ", ".join(f"{k} {v}" for k, v in sorted(closes.items())))

    failing = [c for c in cases if c[2].get("behavior") not in PASSING]
    if failing:
        print(f"\nfailing cases ({len(failing)}):")
        for n, (agent, case_id, entry) in enumerate(failing):
            if n == DETAILED:
                rest = " ".join(cid for _, cid, _ in failing[n:])
                print(f"  ... and {len(failing) - n} more: {rest}")
                break
            d = detail(args.dir, entry)
            print(
                f"  {case_id:<8} {entry.get('behavior')}"
                f"  (close: {entry.get('behaviorClose')}, remote close code: {entry.get('remoteCloseCode')})"
            )
            for field in ("description", "expectation", "result", "resultClose"):
                if d.get(field):
                    print(f"           {field}: {plain(d[field])}")
            if len(agents) > 1:
                print(f"           agent: {agent}")

    # Closing-handshake verdicts are shown but do not gate: Autobahn folds them into behavior.
    odd_close = [c for c in cases if c[2].get("behaviorClose") not in PASSING_CLOSE]
    if odd_close:
        ids = " ".join(f"{cid}({e.get('behaviorClose')})" for _, cid, e in odd_close)
        print(f"\nnote: closing behavior not OK/INFORMATIONAL: {ids}")

    ok = not failing
    if len(cases) < args.min_cases:
        print(f"\nautobahn: only {len(cases)} cases in the report, expected at least {args.min_cases}")
        ok = False
    print(f"\nautobahn: {len(cases) - len(failing)} passed, {len(failing)} failed")
    print("autobahn: PASS" if ok else "autobahn: FAIL (every case must be OK or INFORMATIONAL)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
