"""Keras EfficientNetB0 as in the original, with ImageNet weights.

Weights come from ``$HOTDOG_B0_WEIGHTS`` (a local Keras ``*_notop.h5`` file) when set,
else Keras downloads them (needs internet; offline machines must set the variable).
"""
import os


def weights_file() -> str | None:
    """``$HOTDOG_B0_WEIGHTS``, the local weights file, if set."""
    return os.environ.get("HOTDOG_B0_WEIGHTS") or None


def feature_extractor(image_size: int):
    import tensorflow as tf

    weights = weights_file() or "imagenet"
    return tf.keras.applications.EfficientNetB0(include_top=False, weights=weights, pooling="avg",
                                                input_shape=(image_size, image_size, 3))
