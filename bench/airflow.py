"""Benchmark: the airflow and vertex backends' costs.

Usage: PYTHONPATH=. .venv/bin/python bench/airflow.py [--idle-seconds 150]

1. Idle CPU of a local Airflow (scheduler + webserver, all their processes) over
   --idle-seconds, after a 60 s warm-up, with our DAG re-parse interval (600 s) and with
   Airflow's default (30 s): parsing the DAG file imports TFX and builds the pipeline.
2. Trigger -> success of the DAG through the REST API (what `hotdog train --backend airflow`
   does), twice: baseline (20 images per category, tiny backbone, 2 epochs), then with
   taco_bias added.
3. Compile time of the Vertex AI PipelineJob spec (KubeflowV2DagRunner), in this process.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

from pathlib import Path

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SETTINGS = {"backbone": "tiny", "epochs": 2, "min_accuracy": 0.0, "max_regression": 1.0}


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of these processes, their live descendants, and their reaped children."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def idle_cpu(home: str, workdir: str, interval: int, seconds: float) -> float:
    from tasks import airflow_local, services, training

    airflow_local.start(home, services.free_port(), workdir, training.TrainSettings(**SETTINGS),
                        parse_interval=interval)
    try:
        time.sleep(60)
        pids = [services.running(home, "scheduler"), services.running(home, "webserver")]
        before, started = cpu_seconds(pids), time.monotonic()
        time.sleep(seconds)
        return (cpu_seconds(pids) - before) / (time.monotonic() - started)
    finally:
        airflow_local.stop(home)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle-seconds", type=float, default=150)
    args = parser.parse_args()
    from tasks import airflow_local, airflow_rest, services, training
    from tests.conftest import small_datasets

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        sets = small_datasets(os.path.join(ROOT, "..", "shared", "datasets", "hotdog", "intermediary"), root, 20,
                              ["baseline", "taco_bias"])
        workdir = str(root / "training")
        for interval in (airflow_local.PARSE_INTERVAL_SECONDS, 30):
            share = idle_cpu(str(root / f"airflow-{interval}"), workdir, interval, args.idle_seconds)
            print(f"RESULT idle CPU, parse interval {interval} s: {share:.3f} cores", flush=True)

        settings = training.TrainSettings(**SETTINGS)
        port = services.free_port()
        info = airflow_local.start(str(root / "airflow"), port, workdir, settings)
        try:
            config = airflow_rest.AirflowSettings(info["url"], info["user"], info["password"])
            for name in ("baseline", "taco_bias"):
                training.stage_data([sets[name]], training.paths(workdir)["data_root"])
                started = time.monotonic()
                airflow_rest.run_pipeline(config, workdir, dataclasses.asdict(settings), {"data_sets": [name]})
                print(f"RESULT Airflow trigger -> success with {name} added: {time.monotonic() - started:.1f} s",
                      flush=True)
        finally:
            airflow_local.stop(str(root / "airflow"))

        from tfx_pipeline.backends import vertex

        kwargs = training.pipeline_kwargs("gs://bench/hotdog", training.TrainSettings())
        for attempt in ("first", "second"):
            started = time.perf_counter()
            vertex.compile_spec(kwargs, "tfx-hotdog:bench", str(root / f"spec-{attempt}.json"))
            print(f"RESULT Vertex spec compile ({attempt} in process): {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
