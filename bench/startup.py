"""Start-up cost of a `hotdog` command: help and bad input against `import prefect` (the
baseline), and the temporary Prefect server on a fresh and on a used PREFECT_HOME, each
median of 3 runs in fresh processes.

    PYTHONPATH=. .venv/bin/python bench/startup.py [--work PROCESSED MODEL]

With --work (PROCESSED: a data set folder, e.g. data/processed/baseline; MODEL: a pushed
model folder): time to the first line about the command's work (not about Prefect, not the
log file's path, which comes at once) and to its exit, for `ingest` (the shared images), `train` (tiny, 1 epoch),
`verdict` and `predict` (the 400 hot dogs), each with a temporary server and with
PREFECT_API_URL naming a running one (predict needs none). One run each.
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


def first_output(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds to the first output line about the work: not about Prefect, not the log's path;
    seconds to exit)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": ROOT, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    first = None
    for line in process.stdout:
        if first is None and line.strip() and not line.startswith("Prefect") and "full log in" not in line:
            first = time.perf_counter() - started
    if process.wait() != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode})")
    return first or float("nan"), time.perf_counter() - started


def work(processed: str, model: str) -> None:
    from tasks import services, settings

    cli = [sys.executable, "-m", "flows.cli"]
    hot_dogs = os.path.join(settings.SHARED_DATA, "hot dog")
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "ingest": lambda out: ["ingest", settings.SHARED_DATA, "--out", os.path.join(out, "ingest")],
            "train (tiny, 1 epoch)": lambda out: ["train", "--data", processed, "--workdir", os.path.join(out, "train"),
                                                  "--backbone", "tiny", "--epochs", "1", "--min-accuracy", "0"],
            "verdict": lambda out: ["verdict", "--model", model, "--images", hot_dogs, "--out",
                                    os.path.join(out, "verdict")],
        }
        port = services.free_port()
        home = os.path.join(tmp, "prefect-home")
        server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "prefect"), "server", "start",
                                   "--host", "127.0.0.1", "--port", str(port)],
                                  env={**os.environ, "PREFECT_HOME": home}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            services.wait_http(f"http://127.0.0.1:{port}/api/health", "the Prefect server", timeout=300)
            print("| command | server | first own line | exit |\n|---|---|---|---|")
            for name, args in commands.items():
                for label, env in (("temporary", {}), ("running", {"PREFECT_API_URL": f"http://127.0.0.1:{port}/api"})):
                    out = os.path.join(tmp, f"{label}-{len(os.listdir(tmp))}")
                    first, total = first_output(cli + args(out), env)
                    print(f"| {name} | {label} | {first:.1f} s | {total:.1f} s |", flush=True)
            first, total = first_output(cli + ["predict", hot_dogs, "--model", model, "--format", "csv"], {})
            print(f"| predict (400 images) | none | {first:.1f} s | {total:.1f} s |")
        finally:
            server.terminate()
            server.wait(timeout=60)


def main() -> None:
    if sys.argv[1:2] == ["--work"]:
        work(*sys.argv[2:4])
        return
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
