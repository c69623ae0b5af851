"""The softmax of a pushed model for serialized tf.Examples holding ``image`` (encoded bytes).

Images are decoded by TensorFlow with the training rule (``tfx_pipeline.images``); the network
runs from the model's TFLite copy (:class:`tfx_pipeline.tflite.Classifier`) when it has one,
else through its ``serving_default`` signature (models pushed before the copy existed).
"""
from __future__ import annotations

import os

import numpy as np

from tasks import fs
from tasks.errors import HotdogInputError
from tfx_pipeline import tflite


class Scorer:
    """``scorer(serialized) -> float32 [N, classes]`` for one model folder (local); ``path`` says
    which way it runs (``tflite`` or ``saved_model``)."""

    def __init__(self, model_dir: str, saved_model=None, workers: int | None = None):
        """``saved_model``: the folder's SavedModel if the caller has loaded it already;
        ``workers``: see :class:`tfx_pipeline.tflite.Classifier`; default one per core (batch scoring)."""
        import tensorflow as tf

        from tfx_pipeline import images
        from tfx_pipeline.preprocessing import IMAGE_KEY

        backbone, head = fs.join(model_dir, tflite.BACKBONE_PATH), fs.join(model_dir, tflite.HEAD_PATH)
        self.path = "tflite" if fs.exists(backbone) and fs.exists(head) else "saved_model"
        if self.path == "tflite":
            try:
                self._runner = tflite.Classifier(fs.read_bytes(backbone), fs.read_bytes(head),
                                                 workers or tflite.cpu_threads())
            except tflite.DamagedCopy as err:
                raise HotdogInputError(f"the model's TFLite copy in {model_dir} is damaged: {err}. Push the model "
                                       f"again, or delete its {os.path.dirname(tflite.BACKBONE_PATH)} folder to "
                                       f"score through its SavedModel") from None
            self.image_size = size = self._runner.image_size
            spec = {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}
            self._pixels = tf.function(lambda serialized: images.decode_batch(
                tf.io.parse_example(serialized, spec)[IMAGE_KEY], size), input_signature=[tf.TensorSpec([None], tf.string)],
                autograph=False)
        else:
            model = saved_model or tf.saved_model.load(model_dir)
            self._serve = model.signatures["serving_default"]
            self._input = next(iter(self._serve.structured_input_signature[1]))

    def __call__(self, serialized: list[bytes]) -> np.ndarray:
        import tensorflow as tf

        if self.path == "tflite":
            return self._runner(serialized, lambda part: self._pixels(tf.constant(part, tf.string)).numpy())
        return self._serve(**{self._input: tf.constant(serialized, tf.string)})["outputs"].numpy()
