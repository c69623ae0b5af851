"""Benchmark: ingestion + data-set building throughput vs. the original approach and the decode floor.

Usage: PYTHONPATH=. .venv/bin/python bench/ingest.py [--replicas 10] [--rounds 3] [--workers 1] [--dask]

Measured in one run, on the shared 1,800 images, on a copy replicated N times (hard links
under new names, so every replica is a within-category duplicate) and on N copies whose bytes
all differ (no duplicates: every file is validated in full):
  ours      hotdog ingestion (full validation, dedupe) and data-set building, DirectRunner
  (a)       the original approach: read bytes, one TFRecordWriter, no validation
  (b)       a bare TensorFlow decode loop on both cores (the validation floor)
Each input is measured in ``--rounds`` alternating rounds of (a), (b) and ours, and each is
reported at its best: this machine's speed drifts by a fifth within minutes. Prints images/s
and the ratios ours/(a), ours/(b), and the 10x/1x time ratio. With --dask,
ingestion on Beam's DaskRunner with a local cluster of 1 and 2 worker processes too (each
cluster's first job, whose workers import TensorFlow, timed apart), against ours (DirectRunner).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tasks import dataset_config, datasets, images, ingest, runners, settings  # noqa: E402


def list_images(root: str) -> list[str]:
    return sorted(os.path.join(d, n) for d, _, names in os.walk(root) for n in names)


def replicate(source: str, target: str, replicas: int, distinct: bool = False) -> None:
    """``replicas`` copies of every file, renamed, in the same category folders: hard links, or
    with ``distinct`` new files whose bytes differ (a few bytes after the image's end marker,
    which decoders ignore), so no copy is a duplicate."""
    for path in list_images(source):
        category = os.path.basename(os.path.dirname(path))
        os.makedirs(os.path.join(target, category), exist_ok=True)
        data = open(path, "rb").read() if distinct else b""
        for r in range(replicas):
            copy = os.path.join(target, category, f"r{r:02d}_{os.path.basename(path)}")
            if distinct:
                with open(copy, "wb") as handle:
                    handle.write(data + f"replica {r}".encode())
            else:
                os.link(path, copy)


def original_approach(files: list[str], out: str) -> None:
    import tensorflow as tf

    with tf.io.TFRecordWriter(out) as writer:
        for path in files:
            with open(path, "rb") as handle:
                image = handle.read()
            example = tf.train.Example(features=tf.train.Features(feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 0, 0]))}))
            writer.write(example.SerializeToString())


def _decode_chunk(paths: list[str]) -> int:
    import tensorflow as tf

    for path in paths:
        with open(path, "rb") as handle:
            tf.io.decode_image(handle.read(), channels=3, expand_animations=False)
    return len(paths)


def decode_floor(files: list[str], pool) -> None:
    chunks = [files[i::2] for i in range(2)]
    assert sum(pool.map(_decode_chunk, chunks)) == len(files)


def ours(source: str, work: str, workers: int) -> tuple[float, float]:
    options = runners.pipeline_options("direct", workers)
    start = time.perf_counter()
    summary = ingest.run_ingest(source, os.path.join(work, "ingested"), options=options)
    ingested = time.perf_counter()
    specs = list(dataset_config.load_config().values())
    datasets.build_from_ingested(os.path.join(work, "ingested"), specs, os.path.join(work, "sets"), options=options)
    return ingested - start, time.perf_counter() - start, summary["totals"]


def dask_ingestion(sources: dict[str, str], work: str, workers: int) -> dict[str, float]:
    """Seconds of ingestion per source on a fresh local cluster of ``workers`` processes, after a
    first job on the first source (returned as 'first job')."""
    seconds = {}
    with runners.beam_options("dask", workers) as options:
        label, source = next(iter(sources.items()))
        seconds["first job"] = timed(ingest.run_ingest, source, os.path.join(work, f"dask{workers}-warm"),
                                     None, None, images.DEFAULT_MAX_PIXELS, options)
        for label, source in sources.items():
            seconds[label] = timed(ingest.run_ingest, source, os.path.join(work, f"dask{workers}-{label}"),
                                   None, None, images.DEFAULT_MAX_PIXELS, options)
    return seconds


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=settings.SHARED_DATA)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="DirectRunner workers for ours (1 = in-process)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="Alternating rounds of (a), (b) and ours per input; each is reported at its best.")
    parser.add_argument("--dask", action="store_true", help="Also measure ingestion on local Dask clusters.")
    args = parser.parse_args()
    import tensorflow as tf  # noqa: F401  (imported once up front: not part of any timing)

    tmp = tempfile.mkdtemp(prefix="hotdog-bench-")
    try:
        big, distinct = os.path.join(tmp, "replicated"), os.path.join(tmp, "distinct")
        replicate(args.source, big, args.replicas)
        replicate(args.source, distinct, args.replicas, distinct=True)
        pool = multiprocessing.get_context("spawn").Pool(2)
        pool.map(_decode_chunk, [[], []])  # start both workers and import TF before timing
        results = {}
        for label, source in (("1x", args.source), (f"{args.replicas}x", big),
                              (f"{args.replicas}x distinct", distinct)):
            files = list_images(source)
            n = len(files)
            rounds = []
            for r in range(args.rounds):
                t_a = timed(original_approach, files, os.path.join(tmp, f"orig-{label}.tfrecord"))
                t_b = timed(decode_floor, files, pool)
                work = os.path.join(tmp, f"ours-{label.replace(' ', '-')}-{r}")
                t_ingest, t_total, summary = ours(source, work, args.workers)
                shutil.rmtree(work)
                rounds.append((t_ingest, t_total, t_a, t_b))
                print(f"[{label}] round {r + 1}: ingestion {t_ingest:.2f} s, ingest+sets {t_total:.2f} s, "
                      f"(a) {t_a:.2f} s, (b) {t_b:.2f} s: ingestion/(b) = {t_b / t_ingest:.2f}")
            t_ingest, t_total, t_a, t_b = (min(column) for column in zip(*rounds))
            results[label] = (n, t_ingest, t_total, t_a, t_b)
            print(f"[{label}] {n} files: {summary['accepted']} accepted, {summary['duplicate']} duplicates; "
                  f"best of {args.rounds} alternating rounds:")
            print(f"  ours: ingestion      {t_ingest:7.2f} s  {n / t_ingest:8.0f} images/s")
            print(f"  ours: ingest+sets    {t_total:7.2f} s  {n / t_total:8.0f} images/s")
            print(f"  (a) original approach{t_a:7.2f} s  {n / t_a:8.0f} images/s")
            print(f"  (b) decode, 2 cores  {t_b:7.2f} s  {n / t_b:8.0f} images/s")
            print(f"  ratios (throughput): ingestion/(b) = {t_b / t_ingest:.2f}, ingest+sets/(b) = {t_b / t_total:.2f}, "
                  f"ingest+sets/(a) = {t_a / t_total:.2f}")
        pool.close()
        small, large = results["1x"], results[f"{args.replicas}x"]
        print(f"scaling: {args.replicas}x the files took {large[2] / small[2]:.2f}x the time (ingest+sets), "
              f"{large[1] / small[1]:.2f}x (ingestion)")
        if args.dask:
            sources = {"1x": args.source, f"{args.replicas}x": big}
            for workers in (1, 2):
                seconds = dask_ingestion(sources, os.path.join(tmp, "dask"), workers)
                print(f"[dask, {workers} worker{'s' * (workers > 1)}] first job (workers import TF) "
                      f"{seconds['first job']:.2f} s")
                for label in sources:
                    n, t_ingest = results[label][:2]
                    print(f"  {label}: ingestion {seconds[label]:7.2f} s  {n / seconds[label]:8.0f} images/s  "
                          f"ratio to ours (DirectRunner) {t_ingest / seconds[label]:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
