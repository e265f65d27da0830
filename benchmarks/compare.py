"""Compare every row of ``make bench`` between two versions of the library, in one run.

    .venv/bin/python benchmarks/compare.py --base e7094f4 [--rounds 2] [--only send,iter]

The benchmark programs are this checkout's; only the library differs: each invocation of
``run.py`` imports the package from the base commit (a temporary detached worktree) or from
this checkout, through ``PYTHONPATH``. Invocations alternate (base, this, this, base, ...) so a
drift of the shared machine falls on both. For each row the figure compared is its ratio to the
baseline measured in the same invocation (a row without a baseline: its own figure), the
median over the rounds; the change is this checkout's over the base's, and a row is "within
5%" when that change is at most +5% in the row's bad direction.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: Rows where a larger figure is better: rates, and ratios of another program over ours.
HIGHER_IS_BETTER = re.compile(r"events/s|messages/s|/s,|capacity|msgs/s|vs ours", re.IGNORECASE)
#: Context rows that time no code of ours (another client against a third program): shown,
#: but no verdict.
NOT_OURS = re.compile(r"^\(context\) (official client|naive websocket-client loop)")


def _figure(row: dict[str, object]) -> float | None:
    ratio = row.get("ratio")
    if isinstance(ratio, (int, float)):
        return float(ratio)
    match = re.match(r"\s*([\d,]+(?:\.\d+)?)", str(row.get("ours", "")))
    return float(match.group(1).replace(",", "")) if match else None


def _absolute(row: dict[str, object]) -> str:
    """The row's own figure as printed (``603.2 us``), or ``""``."""
    return str(row.get("ours", "")).strip()


def _run(
    label: str, tree: Path, only: str | None, quick: bool, write: str | None
) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = Path(out.name)
    argv = [sys.executable, str(HERE / "run.py"), "--json", str(path)]
    argv += ["--only", only] if only else []
    argv += ["--quick"] if quick else []
    argv += ["--write", write] if write else []
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run(argv, cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        rows = []
    finally:
        path.unlink(missing_ok=True)
    figures = {}
    for row in rows:
        figure = _figure(row)
        if figure is not None:
            figures[str(row["what"]).strip()] = figure
            ABSOLUTE.setdefault(str(row["what"]).strip(), []).append(f"{label} {_absolute(row)}")
    return figures


#: Each row's own figures as printed, in run order (base and this alternating).
ABSOLUTE: dict[str, list[str]] = {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", help="passed to run.py --only")
    parser.add_argument("--quick", action="store_true", help="run.py --quick (a smoke test)")
    parser.add_argument("--write", metavar="PATH", help="run.py --write, in the last run of this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        try:
            runs: dict[str, list[dict[str, float]]] = {"base": [], "this": []}
            for round_ in range(args.rounds):
                order = ("base", "this") if round_ % 2 == 0 else ("this", "base")
                for name in order:
                    print(f"round {round_ + 1}: {name} ...", file=sys.stderr, flush=True)
                    tree = base if name == "base" else ROOT
                    last = name == "this" and len(runs["this"]) == args.rounds - 1
                    write = args.write if last else None
                    runs[name].append(_run(name, tree, args.only, args.quick, write))
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False
            )
    print(f"| row (ratio, median of {args.rounds}) | base {args.base} | this | change | verdict |")
    print("|---|---|---|---|---|")
    worse = 0
    names = [n for n in runs["this"][0] if all(n in r for r in runs["base"] + runs["this"])]
    for name in names:
        old = statistics.median(r[name] for r in runs["base"])
        new = statistics.median(r[name] for r in runs["this"])
        change = new / old - 1 if old else 0.0
        bad = -change if HIGHER_IS_BETTER.search(name) else change
        verdict = "better" if bad < -0.05 else "within 5%" if bad <= 0.05 else "WORSE"
        if NOT_OURS.search(name):
            verdict = "context (no code of ours)"
        worse += verdict == "WORSE"
        print(f"| {name} | {old:,.3g} | {new:,.3g} | {change:+.1%} | {verdict} |")
    print()
    print("Each row's own figure in each run, in run order:")
    for name in names:
        print(f"- {name}: {', '.join(ABSOLUTE.get(name, []))}")
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
