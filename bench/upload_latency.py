"""Benchmark: upload -> `retrain-on-upload` flow run RUNNING: bridge in Pub/Sub or polling mode,
runs started by a process worker or by the serving process (`hotdog serve --runs-in`).

Usage: PYTHONPATH=. .venv/bin/python bench/upload_latency.py [--uploads 20]

Everything real on 127.0.0.1: the Pub/Sub emulator, fake-gcs-server publishing OBJECT_FINALIZE
notifications, and `hotdog serve` (Prefect server, the retrain-on-upload deployment, a worker or
the serving process, and the bridge in the mode measured, with the shipped defaults: worker
poll 2 s, runner poll 0.5 s, bridge poll 2 s). After each run the next upload waits until the
run is final and its process has exited.
For each upload: time from just before the upload call to the run's start time (RUNNING, as
the server recorded it). The uploaded object is not a TFRecord, so the run refuses it a few
seconds later instead of training; the next upload waits for that, so uploads never queue.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PROJECT, TOPIC, BUCKET, PREFIX = "bench", "uploads", "bench-uploads", "uploads/"

from tests.e2e.conftest import client_call  # noqa: E402 - after the sys.path entry


def run_for(url, generation):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    runs = client_call(url, lambda c: c.read_flow_runs(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["retrain-on-upload"]))))
    return next((r for r in runs if r.parameters.get("generation") == generation), None)


def is_run_process(process, starter: int) -> bool:
    """A live process under the starter other than multiprocessing's helpers (its resource
    tracker and fork server, children of the starter that stay); a child not yet reaped (a
    zombie) is not running. A run forked by the fork server is the server's child."""
    import psutil

    try:
        helper = any(name in " ".join(process.cmdline()) for name in ("resource_tracker", "forkserver"))
        return not (helper and process.ppid() == starter)
    except (psutil.ZombieProcess, psutil.NoSuchProcess):
        return False


def wait_until_ended(url, run_id, state_dir):
    """Until the run is final and its process has exited (the serving process holds its one slot
    until then), so the next upload never queues behind it."""
    import psutil

    from tasks import services

    starter = services.running(state_dir, "runner") or services.running(state_dir, "worker")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        runs = [p for p in psutil.Process(starter).children(recursive=True) if is_run_process(p, starter)]
        if client_call(url, lambda c: c.read_flow_run(run_id)).state.is_final() and not runs:
            return
        time.sleep(0.2)
    raise RuntimeError(f"run {run_id} did not end within 180 s")


def measure(mode: str, runs_in: str, uploads: int, gcs, record: bytes, workdir: str) -> list[float]:
    from tasks import emulators, services, settings

    port = services.free_port()
    args = [sys.executable, "-m", "flows.cli", "serve", "--workdir", workdir, "--port", str(port), "--bucket", BUCKET,
            "--prefix", PREFIX, "--bridge", mode, "--backbone", "tiny", "--runs-in", runs_in]
    if mode == "pubsub":
        args += ["--subscription", emulators.create_subscription(PROJECT, TOPIC, f"bench-{port}")]
    subprocess.run(args, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True)
    url = f"http://127.0.0.1:{port}/api"
    latencies = []
    try:
        time.sleep(5)  # polling: the first listing is the baseline
        for i in range(uploads):
            started = time.time()
            name = f"{BUCKET}/{PREFIX}{mode}-{runs_in}-{i}.tfrecord"
            gcs.pipe(name, record)
            generation = str(gcs.info(name)["generation"])
            deadline = time.monotonic() + 120
            while True:
                run = run_for(url, generation)
                if run is not None and run.start_time is not None:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{mode}: upload {i} did not start a run within 120 s")
                time.sleep(0.2)
            latencies.append(run.start_time.timestamp() - started)
            print(f"{mode}/{runs_in} upload {i}: {latencies[-1]:.2f} s", flush=True)
            wait_until_ended(url, run.id, settings.stack_dir(workdir))
    finally:
        subprocess.run([sys.executable, "-m", "flows.cli", "stop", "--workdir", workdir], cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--modes", default="pubsub/worker,pubsub/serve,poll/worker,poll/serve",
                        help="Comma-separated BRIDGE/RUNS_IN pairs, measured in this order.")
    args = parser.parse_args()
    from tasks import emulators, fs

    record = b"not a TFRecord" * 8  # the run refuses it at once, so the next upload does not queue
    with emulators.pubsub_emulator(), tempfile.TemporaryDirectory() as scratch:
        emulators.create_topic(PROJECT, TOPIC)
        with emulators.fake_gcs(PROJECT, TOPIC):
            gcs, _ = fs.filesystem("gs://")
            gcs.mkdir(BUCKET)
            results = {pair: measure(*pair.split("/"), args.uploads, gcs, record,
                                     os.path.join(scratch, pair.replace("/", "-")))
                       for pair in args.modes.split(",")}
    for mode, values in results.items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        print(f"RESULT {mode}: n={len(values)} p50={statistics.median(values):.2f} s p95={p95:.2f} s "
              f"min={ordered[0]:.2f} s max={ordered[-1]:.2f} s")


if __name__ == "__main__":
    main()
