"""Decoding/resizing shared by trainer and serving, the Transform function, the backbones."""
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import image_bytes
from tfx_pipeline import images, models, preprocessing


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP"])
def test_decode_and_resize_any_tensorflow_format(fmt):
    pixels = images.decode_and_resize(tf.constant(image_bytes(fmt, (50, 30), noise=True)), 40)
    assert pixels.shape == (40, 40, 3) and pixels.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(pixels)) and float(tf.reduce_max(pixels)) <= 255.0


def test_resize_keeps_colour_of_a_flat_image():
    pixels = images.decode_and_resize(tf.constant(image_bytes("PNG", (300, 120), color=(200, 30, 30))), 64)
    assert np.allclose(pixels.numpy().reshape(-1, 3).mean(0), (200, 30, 30), atol=1.0)


def test_decode_batch_shape():
    batch = tf.constant([image_bytes("JPEG", (20, 20)), image_bytes("PNG", (9, 31))])
    assert images.decode_batch(batch, 16).shape == (2, 16, 16, 3)


def test_preprocessing_keeps_bytes_and_makes_float_labels():
    out = preprocessing.preprocessing_fn({"image": tf.constant([[b"abc"], [b"de"]]),
                                          "label": tf.constant([[1, 0, 0], [0, 0, 1]], tf.int64)})
    assert out["image"].shape == (2,) and out["image"].dtype == tf.string
    assert out["label"].dtype == tf.float32 and out["label"].numpy().tolist() == [[1, 0, 0], [0, 0, 1]]


def test_tiny_backbone_gives_a_feature_vector():
    model = models.feature_extractor("tiny", 32)
    assert model(tf.zeros((2, 32, 32, 3))).shape == (2, 32)


def test_unknown_backbone():
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        models.feature_extractor("resnet", 32)


def test_efficientnet_b0_loads_a_local_weights_file_offline(tmp_path, monkeypatch):
    weights = str(tmp_path / "b0_notop.h5")
    tf.keras.applications.EfficientNetB0(include_top=False, weights=None, pooling="avg",
                                         input_shape=(64, 64, 3)).save_weights(weights)
    monkeypatch.setenv("HOTDOG_B0_WEIGHTS", weights)
    model = models.feature_extractor("efficientnet_b0", 64)
    assert model(tf.zeros((1, 64, 64, 3))).shape == (1, 1280)
