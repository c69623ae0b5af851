"""Benchmark: `hotdog serve-model` under 1, 4 and 16 concurrent clients sending one image per
request (TF Serving's :predict, base64 tf.Examples), against the same model scoring the same
images in process: in batches (the throughput baseline) and one at a time (the latency baseline).

Usage: PYTHONPATH=. TF_USE_LEGACY_KERAS=1 .venv/bin/python bench/serving.py WORKDIR IMAGES_DIR [--requests N]

WORKDIR is a training work folder whose registry holds the model (e.g. data/run/training after
`make run`); the server serves its latest version. Clients are threads of this process with one
keep-alive connection each; the server is its own process, so both share the machine's cores.
Prints the figures and the targets' ratios: 16 clients >= 70 % of batch scoring; p50 at 1 client
<= 2x the model's own single-image time.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tasks import services, tfrecords  # noqa: E402
from tasks.serving import registry  # noqa: E402


def in_process(model_dir: str, examples: list[bytes]) -> tuple[float, float]:
    """(images/s in batches of 32, median seconds for one image alone) of the model as the server
    runs it (:class:`tasks.serving.scorer.Scorer`)."""
    from tasks.serving.scorer import Scorer

    scorer = Scorer(model_dir, workers=1)  # the model server's configuration
    scorer(examples[:32])
    scorer(examples[:1])
    started = time.perf_counter()
    for k in range(0, len(examples), 32):
        scorer(examples[k:k + 32])
    batch_rate = len(examples) / (time.perf_counter() - started)
    singles = []
    for example in examples[:50]:
        started = time.perf_counter()
        scorer([example])
        singles.append(time.perf_counter() - started)
    return batch_rate, statistics.median(singles)


def load(port: int, bodies: list[bytes], clients: int) -> tuple[float, list[float]]:
    """Send every body once over ``clients`` connections; (requests/s, latencies in s)."""
    latencies, lock, errors = [], threading.Lock(), []

    def client(share: list[bytes]):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for body in share:
            started = time.perf_counter()
            connection.request("POST", "/v1/models/default:predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                errors.append(response.status)
            with lock:
                latencies.append(elapsed)
        connection.close()

    threads = [threading.Thread(target=client, args=(bodies[k::clients],)) for k in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"{len(errors)} requests failed: {sorted(set(errors))}")
    return len(bodies) / (time.perf_counter() - started), latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("images")
    parser.add_argument("--requests", type=int, default=400, help="Requests per concurrency level.")
    args = parser.parse_args()
    version = registry.complete_versions(args.workdir)[-1]
    files = sorted(os.listdir(args.images))
    blobs = [open(os.path.join(args.images, name), "rb").read() for name in files]
    examples = [tfrecords.image_example(blob) for blob in blobs]
    bodies = [json.dumps({"instances": [{"b64": base64.b64encode(examples[k % len(examples)]).decode()}]}).encode()
              for k in range(args.requests)]

    port = services.free_port()
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_USE_LEGACY_KERAS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve-model", "--workdir", args.workdir, "--port",
                               str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        services.wait_http(f"http://127.0.0.1:{port}/v1/models/default", "the model server", 300, proc=server)
        load(port, bodies[:32], 4)  # warm-up
        results = {clients: load(port, bodies, clients) for clients in (1, 4, 16)}
    finally:
        services.stop_process(server)
    batch_rate, single = in_process(registry.version_dir(args.workdir, version), examples)

    print(f"model {registry.version_dir(args.workdir, version)}; {args.requests} single-image requests per level "
          f"over {len(files)} images\n")
    print("| clients | requests/s | p50 ms | p95 ms | / batch scoring |\n|---|---|---|---|---|")
    for clients, (rate, latencies) in results.items():
        print(f"| {clients} | {rate:.1f} | {percentile(latencies, 50) * 1000:.1f} | "
              f"{percentile(latencies, 95) * 1000:.1f} | {rate / batch_rate:.2f} |")
    print(f"\nin-process batch scoring (32 per batch): {batch_rate:.1f} images/s; one image alone: "
          f"{single * 1000:.1f} ms (median of 50)")
    ratio = results[16][0] / batch_rate
    p50 = percentile(results[1][1], 50)
    print(f"target 16 clients >= 0.70 x batch scoring: {ratio:.2f} ({'met' if ratio >= 0.7 else 'not met'})")
    print(f"target p50 at 1 client <= 2 x single-image time: {p50 / single:.2f} x "
          f"({'met' if p50 <= 2 * single else 'not met'})")


if __name__ == "__main__":
    main()
