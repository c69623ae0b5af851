"""Benchmark: `hotdog predict` on one image and on a folder, against `hotdog verdict` on the
same folder (the baseline: one model, report and bootstrap included).

Usage: PYTHONPATH=. .venv/bin/python bench/predict.py MODEL_DIR IMAGES_DIR

Each command is a fresh process (as a user runs it), wall time from start to exit; verdict
starts a temporary Prefect server unless PREFECT_API_URL names one.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wall(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": ROOT})
    return time.perf_counter() - started


def main(model: str, images: str) -> None:
    first = os.path.join(images, sorted(os.listdir(images))[0])
    count = len(os.listdir(images))
    with tempfile.TemporaryDirectory() as out:
        baseline = wall(["verdict", "--model", model, "--images", images, "--out", out])
    one = wall(["predict", first, "--model", model])
    many = wall(["predict", images, "--model", model, "--format", "csv"])
    print("| figure | value |\n|---|---|")
    print(f"| `hotdog verdict` on {count} images (baseline) | {baseline:.1f} s |")
    print(f"| `hotdog predict` on 1 image | {one:.1f} s ({one / baseline:.2f}x) |")
    print(f"| `hotdog predict` on {count} images | {many:.1f} s ({many / baseline:.2f}x) |")


if __name__ == "__main__":
    main(*sys.argv[1:3])
