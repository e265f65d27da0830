"""Fail unless the branch coverage in a `coverage json` report reaches a minimum percentage.

coverage's own --fail-under counts lines and branches together; this counts branches only.
Usage: python tools/branch_coverage.py REPORT.json MIN_PERCENT
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    """Print the branch figure; 1 when it is under the minimum."""
    report_path, minimum = argv[1], float(argv[2])
    with open(report_path, encoding="utf-8") as report:
        totals = json.load(report)["totals"]
    covered, total = totals["covered_branches"], totals["num_branches"]
    percent = 100.0 * covered / total if total else 100.0
    sys.stdout.write(
        f"branch coverage: {covered} of {total} branches ({percent:.1f}%), minimum {minimum:g}%\n"
    )
    if percent < minimum:
        sys.stderr.write(f"FAIL: branch coverage {percent:.1f}% is under {minimum:g}%\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
