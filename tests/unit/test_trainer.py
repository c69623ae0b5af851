"""The Trainer's export and its Keras settings, on the tiny backbone."""
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tasks import tfrecords
from tfx_pipeline import images, models, trainer


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def classifier(size: int = 64):
    backbone = models.feature_extractor("tiny", size)
    head = trainer._head(int(backbone.output.shape[-1]), 3)
    return tf.keras.Model(backbone.input, head(backbone.output))


def test_the_export_serves_the_models_outputs_with_its_weights_in_the_graph(tmp_path):
    model, stats = classifier(), {}
    trainer._export(model, str(tmp_path), 64, ["rosé", "b", "c"], stats)
    blobs = [jpeg(seed) for seed in range(5)]
    expected = model(images.decode_batch(tf.constant(blobs), 64), training=False).numpy()
    loaded = tf.saved_model.load(str(tmp_path))
    examples = tf.constant([tfrecords.image_example(b) for b in blobs])
    np.testing.assert_allclose(loaded.signatures["serving_default"](examples)["outputs"].numpy(), expected, atol=1e-6)
    classified = loaded.signatures["classify"](examples)
    np.testing.assert_allclose(classified["scores"].numpy(), expected, atol=1e-6)
    assert classified["classes"].numpy().tolist() == [["rosé".encode(), b"b", b"c"]] * 5
    stored = tf.train.list_variables(os.path.join(str(tmp_path), "variables", "variables"))
    assert [name for name, _ in stored if name != "_CHECKPOINTABLE_OBJECT_GRAPH"] == []
    with open(tmp_path / "assets" / trainer.CLASS_NAMES_ASSET, encoding="utf-8") as handle:
        assert handle.read() == "rosé\nb\nc\n"
    assert stats["saved_model_seconds"] > 0


def test_the_export_refuses_a_class_list_of_the_wrong_length(tmp_path):
    with pytest.raises(ValueError, match="2 class names"):
        trainer._export(classifier(), str(tmp_path), 64, ["a", "b"], {})


def test_keras_itself_is_not_converted_by_autograph_and_still_trains():
    from tensorflow.python.autograph.core import config
    from tensorflow.python.autograph.impl import conversion

    trainer._keras_without_autograph()
    rules = len(config.CONVERSION_RULES)
    trainer._keras_without_autograph()
    assert len(config.CONVERSION_RULES) == rules
    assert conversion.is_allowlisted(tf.keras.Model.train_step)
    head = trainer._head(8, 2)
    trainer._compile(head, 0.05)
    features = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    labels = np.eye(2, dtype=np.float32)[(features[:, 0] > 0).astype(int)]
    history = head.fit(features, labels, epochs=20, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] and history["accuracy"][-1] > 0.8
