"""Benchmark: the network's forward pass against the machine's limit.

Usage: PYTHONPATH=. TF_USE_LEGACY_KERAS=1 .venv/bin/python bench/inference.py MODEL_DIR [IMAGES_DIR]

MODEL_DIR: a pushed model with its TFLite copy (any registry version trained by this code);
IMAGES_DIR: default the shared 400 hot dogs. Prints, in one process:
  - a 2000x2000 float32 matmul's GFLOP/s, and the backbone's FLOPs per image (counted from its
    layers), hence the ceiling in images/s;
  - images/s of (a) the SavedModel's ``serving_default`` signature in batches of 64 (the path of
    every earlier release), (b) the batch scorer of ``hotdog verdict``/``predict`` (decode in TF,
    network in LiteRT/XNNPACK, one single-threaded interpreter per core) and (c) the model
    server's scorer (one interpreter on all cores), on the same images, with the largest
    probability difference and top-1 agreement of (b) against (a).
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
DEFAULT_IMAGES = os.path.join(os.path.dirname(ROOT), "shared", "datasets", "hotdog", "intermediary", "hot dog")


def matmul_gflops(n: int = 2000, repeats: int = 20) -> float:
    import tensorflow as tf

    a = tf.random.normal((n, n))
    run = tf.function(lambda: tf.matmul(a, a))
    run().numpy()
    started = time.perf_counter()
    for _ in range(repeats):
        run().numpy()
    return repeats * 2 * n ** 3 / (time.perf_counter() - started) / 1e9


def backbone_flops(model) -> float:
    """Multiply-adds x 2 of the convolutions and dense layers of a Keras model, per image."""
    import tensorflow as tf

    layers = tf.keras.layers
    total = 0
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            total += backbone_flops(layer)
            continue
        if not isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense)):
            continue
        out = layer.output_shape
        kernel = layer.get_weights()[0].shape
        if isinstance(layer, layers.DepthwiseConv2D):
            total += 2 * out[1] * out[2] * kernel[0] * kernel[1] * kernel[2] * kernel[3]
        elif isinstance(layer, layers.Conv2D):
            total += 2 * out[1] * out[2] * int(np.prod(kernel))
        else:
            total += 2 * int(np.prod(kernel))
    return float(total)


def rates(functions: dict, batches, images: int, repeats: int = 5) -> dict:
    """Best images/s of each function over ``repeats`` rounds (one warm-up call each first); a
    round times one pass of every function in turn, so a machine whose speed drifts treats all alike."""
    for function in functions.values():
        function(batches[0])
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            for batch in batches:
                function(batch)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: images / seconds for name, seconds in best.items()}


def main(model_dir: str, images_dir: str = DEFAULT_IMAGES) -> None:
    import tensorflow as tf

    from tasks import tfrecords, verdict
    from tasks.serving.scorer import Scorer
    from tfx_pipeline import models, tflite

    _, blobs, _ = verdict.load_images(images_dir)
    examples = [tfrecords.image_example(b) for b in blobs]
    batches = [examples[i:i + 64] for i in range(0, len(examples), 64)]
    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    scorer = Scorer(model_dir)
    serving = Scorer(model_dir, workers=1)
    if scorer.path != "tflite":
        raise SystemExit(f"{model_dir} has no TFLite copy: train it with this code")
    lineage_file = model_dir.rstrip("/") + ".lineage.json"
    lineage = json.loads(open(lineage_file).read()) if os.path.exists(lineage_file) else {}
    backbone_name = lineage.get("parameters", {}).get("backbone", "efficientnet_lite0")
    flops = backbone_flops(models.feature_extractor(backbone_name, scorer.image_size))
    gflops = matmul_gflops()
    ceiling = gflops * 1e9 / flops

    def by_signature(batch):
        return signature(tf.constant(batch))["outputs"].numpy()

    measured = rates({"signature": by_signature, "batch": scorer, "serving": serving}, batches, len(examples))
    old, new, served = measured["signature"], measured["batch"], measured["serving"]
    reference = np.concatenate([by_signature(b) for b in batches])
    ours = np.concatenate([scorer(b) for b in batches])
    same_top = int((reference.argmax(1) == ours.argmax(1)).sum())
    print(f"onednn: TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(unset: TF default)')}")
    print(f"matmul 2000x2000 float32: {gflops:.0f} GFLOP/s; {backbone_name} at {scorer.image_size} px: "
          f"{flops / 1e9:.2f} GFLOP per image -> ceiling {ceiling:.0f} images/s")
    print(f"(a) serving_default signature, batches of 64: {old:.1f} images/s ({old / ceiling:.0%} of the ceiling)")
    print(f"(b) batch scorer (TF decode + LiteRT XNNPACK, {tflite.cpu_threads()} single-threaded interpreters): "
          f"{new:.1f} images/s ({new / ceiling:.0%} of the ceiling), {new / old:.2f}x (a)")
    print(f"(c) server's scorer (one interpreter, {tflite.cpu_threads()} threads): {served:.1f} images/s "
          f"({served / ceiling:.0%} of the ceiling), {served / old:.2f}x (a)")
    print(f"{len(examples)} images: same top-1 class for {same_top}, largest probability difference "
          f"{np.abs(reference - ours).max():.2e}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
