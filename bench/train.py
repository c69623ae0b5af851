"""Benchmark: the local TFX pipeline on `baseline`, ours vs the original configuration.

Usage: PYTHONPATH=. .venv/bin/python bench/train.py --data data/processed/baseline [--original-epochs 2]

Measured in one run, each configuration in its own process (process-tree peak RSS
sampled every 0.2 s, attributed to components by their ML Metadata start/end times):
  ours      Lite0, fast strategy (frozen backbone, features once, head trained), Transform
            keeping encoded bytes
  original  Lite0, whole-network fine-tune (25 steps x batch 32 per epoch, 12 eval steps,
            --original-epochs epochs instead of up to 20), Transform writing float32 224x224x3
Then: a cached re-run of ours, and scoring the 400 hot dogs batched vs one image at a time.

With --continuous DATA2: continuous training instead, ours only: step 1 trains on --data, step 2
on --data and DATA2 in the same work folder (as `hotdog run`'s steps); prints each step's
Trainer time, how many images went through the backbone, and step 2 / step 1.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def child(workdir: str, config: str, original_epochs: int) -> None:
    """Run one configuration's pipeline in this process and print its facts as JSON."""
    from tasks import training

    if config == "ours":
        settings = training.TrainSettings(backbone="efficientnet_lite0", strategy="fast")
        extra = {}
    else:
        settings = training.TrainSettings(backbone="efficientnet_lite0", strategy="finetune", epochs=original_epochs)
        extra = {"preprocessing_module": os.path.join(ROOT, "bench", "original_preprocessing.py")}
    from tfx_pipeline.backends import local

    kwargs = {**training.pipeline_kwargs(workdir, settings), **extra}
    started = time.time()
    local.run(kwargs)
    pipeline_seconds = time.time() - started
    result = training.outcome(workdir)
    print("RESULT " + json.dumps({"pipeline_seconds": pipeline_seconds, "components": component_times(workdir),
                                  "accuracy": result["metrics"].get("categorical_accuracy"),
                                  "pushed_model": result["pushed_model"]}))


def component_times(workdir: str) -> list[dict]:
    from ml_metadata.metadata_store import metadata_store

    from tasks import training
    from tfx_pipeline.backends import local

    store = metadata_store.MetadataStore(training._sqlite_config(
        local.metadata_path(training.paths(workdir)["pipeline_root"])))
    runs = sorted(store.get_executions(), key=lambda e: e.id)
    latest = {}
    for e in runs:
        latest[store.get_execution_types_by_id([e.type_id])[0].name.rsplit(".", 1)[-1]] = e
    return [{"component": name, "start": e.create_time_since_epoch / 1000, "end": e.last_update_time_since_epoch / 1000,
             "state": e.last_known_state} for name, e in latest.items()]


def run_child(workdir: str, config: str, original_epochs: int) -> dict:
    """Run a configuration in a subprocess, sampling its process tree's RSS."""
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.time()
    proc = subprocess.Popen([sys.executable, __file__, "--child", config, "--workdir", workdir,
                             "--original-epochs", str(original_epochs)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    samples = []

    def sample():
        parent = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [parent] + parent.children(recursive=True)
                samples.append((time.time(), sum(p.memory_info().rss for p in tree if p.is_running())))
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    sampler.join()
    wall = time.time() - started
    line = next((row for row in out.splitlines() if row.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{config} run failed:\n{out[-3000:]}")
    facts = json.loads(line[len("RESULT "):])
    facts["wall_seconds"] = wall
    facts["peak_rss_gb"] = max(rss for _, rss in samples) / 2**30 if samples else None
    for c in facts["components"]:
        window = [rss for t, rss in samples if c["start"] <= t <= c["end"]]
        c["seconds"] = c["end"] - c["start"]
        c["peak_rss_gb"] = max(window) / 2**30 if window else None
    return facts


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def scoring(model_dir: str, images_dir: str) -> tuple[float, float]:
    """Images/s scoring the folder batched (64) and one image per call (as the original)."""
    from tasks import verdict

    _, blobs, _ = verdict.load_images(images_dir)
    _, batched = verdict.score(model_dir, blobs, batch_size=64)
    _, single = verdict.score(model_dir, blobs, batch_size=1)
    return batched, single


def trainer_facts(facts: dict, workdir: str) -> dict:
    """The latest Trainer execution's seconds and training_stats.json."""
    from tasks import training

    runs = os.path.join(training.paths(workdir)["pipeline_root"], "Trainer", "model_run")
    latest = max(os.listdir(runs), key=int)
    stats = json.load(open(os.path.join(runs, latest, "training_stats.json")))
    seconds = next(c["seconds"] for c in facts["components"] if c["component"] == "Trainer")
    return {"seconds": seconds, **stats}


def continuous(first: str, second: str) -> None:
    """Step 1 on ``first``, step 2 on ``first`` + ``second``, one work folder."""
    from tasks import training

    tmp = tempfile.mkdtemp(prefix="hotdog-bench-continuous-")
    try:
        workdir = os.path.join(tmp, "ours")
        steps = []
        for data in ([first], [first, second]):
            training.stage_data(data, training.paths(workdir)["data_root"])
            facts = run_child(workdir, "ours", 0)
            steps.append({"pipeline": facts["pipeline_seconds"], **trainer_facts(facts, workdir),
                          "components": {c["component"]: round(c["seconds"], 1) for c in facts["components"]}})
            print(json.dumps({k: v for k, v in steps[-1].items() if k != "history"}))
        for number, step in enumerate(steps, 1):
            print(f"step {number}: pipeline {step['pipeline']:.1f} s, Trainer {step['seconds']:.1f} s, "
                  f"{step['train_images'] + step['eval_images']} images: {step['features_computed']} through the "
                  f"backbone ({step['feature_seconds']} s), {step['features_cached']} from the feature cache")
            print("  components (s): " + ", ".join(f"{name} {seconds}" for name, seconds in step["components"].items()))
        print(f"step 2 / step 1: Trainer {steps[1]['seconds'] / steps[0]['seconds']:.2f}, "
              f"pipeline {steps[1]['pipeline'] / steps[0]['pipeline']:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "processed", "baseline"))
    parser.add_argument("--images", default=os.path.join(os.path.dirname(ROOT), "shared", "datasets", "hotdog",
                                                         "intermediary", "hot dog"))
    parser.add_argument("--original-epochs", type=int, default=2)
    parser.add_argument("--continuous", metavar="DATA2", help="measure continuous training instead (see above)")
    parser.add_argument("--child")
    parser.add_argument("--workdir")
    args = parser.parse_args()
    if args.child:
        child(args.workdir, args.child, args.original_epochs)
        return
    if args.continuous:
        continuous(args.data, args.continuous)
        return
    from tasks import training

    tmp = tempfile.mkdtemp(prefix="hotdog-bench-train-")
    try:
        results = {}
        for config in ("ours", "original"):
            workdir = os.path.join(tmp, config)
            training.stage_data([args.data], training.paths(workdir)["data_root"])
            results[config] = facts = run_child(workdir, config, args.original_epochs)
            pipeline_root = training.paths(workdir)["pipeline_root"]
            facts["transform_bytes"] = folder_bytes(os.path.join(pipeline_root, "Transform", "transformed_examples"))
            stats_files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(pipeline_root, "Trainer"))
                           for f in fs if f == "training_stats.json"]
            facts["training_stats"] = json.load(open(stats_files[0])) if stats_files else {}
        cached = run_child(os.path.join(tmp, "ours"), "ours", args.original_epochs)
        cached_again = run_child(os.path.join(tmp, "ours"), "ours", args.original_epochs)
        batched, single = scoring(results["ours"]["pushed_model"] or results["ours"].get("pushed_model"), args.images)

        print(f"{'component':<18}" + "".join(f"{c + ' s':>12}{c + ' GB':>12}" for c in results))
        names = [c["component"] for c in results["ours"]["components"]]
        for name in names:
            row = f"{name:<18}"
            for config in results:
                c = next((x for x in results[config]["components"] if x["component"] == name), None)
                row += f"{c['seconds']:12.1f}{(c['peak_rss_gb'] or 0):12.2f}" if c else f"{'-':>12}{'-':>12}"
            print(row)
        for config, facts in results.items():
            stats = facts["training_stats"]
            rate = stats.get("train_images_per_second") or stats.get("feature_images_per_second")
            print(f"{config}: pipeline {facts['pipeline_seconds']:.1f} s (process {facts['wall_seconds']:.1f} s), "
                  f"peak RSS {facts['peak_rss_gb']:.2f} GB, Transform output {facts['transform_bytes'] / 1e6:.1f} MB, "
                  f"eval accuracy {facts['accuracy']:.4f}, training images/s {rate}, "
                  f"trainer {stats.get('train_seconds')} s over {stats.get('epochs_run')} epochs")
        o, b = results["ours"], results["original"]
        print(f"ratios ours/original: pipeline time {o['pipeline_seconds'] / b['pipeline_seconds']:.2f}, "
              f"peak RSS {o['peak_rss_gb'] / b['peak_rss_gb']:.2f}, Transform bytes {o['transform_bytes'] / b['transform_bytes']:.3f}")
        for label, facts in (("cached re-run 1", cached), ("cached re-run 2", cached_again)):
            print(f"{label}: pipeline {facts['pipeline_seconds']:.1f} s, process {facts['wall_seconds']:.1f} s, "
                  f"components executed (not cached): "
                  f"{[c['component'] for c in facts['components'] if c['state'] == 3 and c['component'] != 'Resolver']}")
        print(f"scoring 400 hot dogs: batched {batched:.0f} images/s, one at a time {single:.0f} images/s, "
              f"ratio {batched / single:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
