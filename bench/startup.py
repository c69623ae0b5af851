"""Start-up cost of a `hotdog` command: help and bad input against `import prefect` (the
baseline), and the temporary Prefect server on a fresh and on a used PREFECT_HOME, each
median of 3 runs in fresh processes.

    PYTHONPATH=. .venv/bin/python bench/startup.py
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from flows import prefect_api

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def seconds(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env={**os.environ, "PYTHONPATH": ROOT, **(env or {})}, capture_output=True, timeout=300)
    return time.perf_counter() - started


def median(argv: list[str], runs: int = 3) -> float:
    return statistics.median(seconds(argv) for _ in range(runs))


def server_start(home: str) -> float:
    """Seconds until the temporary server answers, PREFECT_HOME=home."""
    os.environ["PREFECT_HOME"] = home
    started = time.perf_counter()
    with tempfile.NamedTemporaryFile(suffix=".log") as log, prefect_api.temporary_server(log.name, lambda _: None):
        return time.perf_counter() - started


def main() -> None:
    baseline = median([sys.executable, "-c", "import prefect"])
    cli = [sys.executable, "-m", "flows.cli"]
    print(f"python -c 'import prefect' (baseline): {baseline:.2f} s")
    for label, args in (("hotdog --help", ["--help"]), ("hotdog train --help", ["train", "--help"]),
                        ("hotdog ingest /missing (exit 2)", ["ingest", "/missing", "--out", "/tmp/unused"])):
        value = median(cli + args)
        print(f"{label}: {value:.2f} s ({value / baseline:.2f}x the baseline)")
    with tempfile.TemporaryDirectory() as home:
        fresh = server_start(home)
        used = statistics.median(server_start(home) for _ in range(3))
    print(f"temporary server, fresh PREFECT_HOME (migrations): {fresh:.1f} s")
    print(f"temporary server, used PREFECT_HOME: {used:.1f} s ({used / fresh:.2f}x the fresh start)")


if __name__ == "__main__":
    main()
