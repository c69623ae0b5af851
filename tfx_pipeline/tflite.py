"""TFLite (XNNPACK) copies of Keras models for inference on CPUs.

The trainer runs its frozen backbone through one and writes a copy of the classifier beside
every SavedModel it exports: :data:`BACKBONE_PATH` (pixels -> features) and :data:`HEAD_PATH`
(the softmax layer's ``kernel`` and ``bias``, and the backbone's sha256), read by
:class:`Classifier`, which checks both before TFLite reads a byte (TFLite does not verify a
flatbuffer: a truncated one crashes the process). Outputs match TensorFlow's within about
1e-5. Models are converted by TensorFlow and run by LiteRT (``ai_edge_litert``, the successor
of ``tf.lite.Interpreter``, with a newer XNNPACK). One image per call is XNNPACK's fastest
schedule on CPUs.
"""
from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

BACKBONE_PATH = os.path.join("assets.extra", "backbone.tflite")
HEAD_PATH = os.path.join("assets.extra", "head.npz")


def convert(model) -> bytes:
    """A Keras model (one image input) -> TFLite flatbuffer (float32, no quantisation: same numerics).

    The converter gets the traced call and the weights alone: handed the Keras model, it first
    saves it with every layer's traces, 5x the time (23 s instead of 4.5 s for Lite0 on 2 cores)."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, *model.input.shape[1:]], tf.float32)
    module = tf.Module()
    module.weights = list(model.weights)
    module.call = tf.function(lambda pixels: model(pixels, training=False), input_signature=[spec], autograph=False)
    return tf.lite.TFLiteConverter.from_concrete_functions([module.call.get_concrete_function()], module).convert()


def cpu_threads() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Runner:
    """Runs a converted model over float32 batches [N, size, size, 3] -> [N, outputs], one image
    per invocation on one interpreter using ``threads`` cores (default: all). Thread-safe (calls
    are serialised)."""

    def __init__(self, content: bytes, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=content, num_threads=threads or cpu_threads())
        details = self._interpreter.get_input_details()[0]
        self._interpreter.resize_tensor_input(details["index"], [1, *details["shape"][1:]])
        self._interpreter.allocate_tensors()
        output = self._interpreter.get_output_details()[0]
        self._input, self._output, self._output_shape = details["index"], output["index"], tuple(output["shape"][1:])
        self.image_size = int(details["shape"][1])
        self._lock = threading.Lock()

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(pixels, np.float32)
        out = np.zeros((len(pixels), *self._output_shape), np.float32)
        with self._lock:
            for i in range(len(pixels)):
                self._interpreter.set_tensor(self._input, pixels[i:i + 1])
                self._interpreter.invoke()
                out[i] = self._interpreter.get_tensor(self._output)[0]
        return out


class DamagedCopy(ValueError):
    """A copy's files do not hold what :func:`write_copy` wrote; the message names the file."""


def write_copy(model_dir: str, backbone: bytes, kernel: np.ndarray, bias: np.ndarray) -> None:
    """Write the classifier's copy into ``model_dir`` (local or gs://): the converted backbone
    and the head's weights (features [F] -> softmax over [C] classes: kernel [F, C], bias [C])."""
    import tensorflow as tf

    tf.io.gfile.makedirs(os.path.join(model_dir, os.path.dirname(BACKBONE_PATH)))
    head = io.BytesIO()
    np.savez(head, kernel=np.asarray(kernel, np.float32), bias=np.asarray(bias, np.float32),
             backbone_sha256=np.array(hashlib.sha256(backbone).hexdigest()))
    for path, data in ((BACKBONE_PATH, backbone), (HEAD_PATH, head.getvalue())):
        with tf.io.gfile.GFile(os.path.join(model_dir, path), "wb") as handle:
            handle.write(data)


class Classifier:
    """A model folder's copy: inputs [N] -> softmax [N, classes], through ``to_pixels(inputs part)
    -> float32 [n, size, size, 3]``. ``workers`` 1: one interpreter on all cores, the lowest
    latency (the model server, whose HTTP threads want the GIL too); ``workers`` k > 1: the batch
    in k parts, each converted and run on its own single-threaded interpreter in parallel, so the
    decoding of one part overlaps the network of another (batch scoring: 1.2x on 2 cores).
    Raises :class:`DamagedCopy` if the head does not load or the backbone is not the one it names."""

    def __init__(self, backbone: bytes, head: bytes, workers: int = 1):
        try:
            with np.load(io.BytesIO(head), allow_pickle=False) as weights:  # zip CRCs catch damage
                self._kernel, self._bias = weights["kernel"], weights["bias"]
                expected = str(weights["backbone_sha256"])
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
            raise DamagedCopy(f"{HEAD_PATH} does not load ({type(err).__name__}: {err})") from None
        if hashlib.sha256(backbone).hexdigest() != expected:
            raise DamagedCopy(f"{BACKBONE_PATH} is not the backbone {HEAD_PATH} was written with "
                              f"({len(backbone)} bytes, sha256 differs)")
        self._backbones = [Runner(backbone, 1 if workers > 1 else None) for _ in range(workers)]
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="tflite") if workers > 1 else None
        self.image_size = self._backbones[0].image_size

    def __call__(self, inputs, to_pixels: Callable = np.asarray) -> np.ndarray:
        if self._pool is None or len(inputs) < 2:
            features = self._backbones[0](to_pixels(inputs))
        else:
            bounds = np.linspace(0, len(inputs), min(len(self._backbones), len(inputs)) + 1).astype(int)
            parts = [self._pool.submit(lambda runner, part: runner(to_pixels(part)), runner, inputs[start:end])
                     for runner, start, end in zip(self._backbones, bounds[:-1], bounds[1:])]
            features = np.concatenate([part.result() for part in parts])
        logits = features @ self._kernel + self._bias
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)
