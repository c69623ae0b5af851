"""Benchmark: `make run` of this checkout against `make run` of an earlier commit, in one run.

Usage: PYTHONPATH=. .venv/bin/python bench/make_run.py --baseline-rev REV

REV is checked out into a temporary git worktree (same requirements.lock, so the same cached
environment); each `make run` writes into its own temporary HOTDOG_WORKDIR, reads the same
images (HOTDOG_DATA, else this checkout's default) and shares the model and Prefect caches of this HOME.
Prints each wall time, ours / baseline, and each run's verdict line.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_run(checkout: str, workdir: str, data: str) -> tuple[float, str]:
    """Wall seconds of `make run` in ``checkout`` and its last output lines."""
    env = {**os.environ, "HOTDOG_WORKDIR": workdir, "HOTDOG_DATA": data}
    env.pop("PYTHONPATH", None)
    started = time.perf_counter()
    result = subprocess.run(["make", "run"], cwd=checkout, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"make run in {checkout} failed ({result.returncode}):\n{result.stdout[-3000:]}"
                         f"{result.stderr[-3000:]}")
    return wall, "\n".join(result.stdout.strip().splitlines()[-6:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline-rev", required=True, help="the commit to compare with")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from tasks import settings

    data = os.environ.get("HOTDOG_DATA") or settings.default_source()
    if not data:
        raise SystemExit("set HOTDOG_DATA to a folder-per-category image tree")
    with tempfile.TemporaryDirectory(prefix="hotdog-bench-make-run-") as tmp:
        baseline = os.path.join(tmp, "baseline")
        subprocess.run(["git", "worktree", "add", "--detach", baseline, args.baseline_rev], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            results = {}
            for name, checkout in (("baseline", baseline), ("ours", ROOT)):
                results[name] = make_run(checkout, os.path.join(tmp, f"work-{name}"), data)
                print(f"{name}: make run {results[name][0]:.0f} s\n{results[name][1]}\n", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", baseline], cwd=ROOT, check=False)
    ratio = results["ours"][0] / results["baseline"][0]
    print(f"make run: baseline ({args.baseline_rev}) {results['baseline'][0]:.0f} s, ours {results['ours'][0]:.0f} s, "
          f"ours / baseline {ratio:.2f}")


if __name__ == "__main__":
    sys.exit(main())
