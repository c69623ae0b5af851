"""The Trainer's export and its Keras settings, on the tiny backbone."""
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tasks import tfrecords
from tfx_pipeline import feature_cache, images, models, trainer


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
    trainer._export(lambda pixels: model(pixels, training=False), str(tmp_path), 64, ["rosé", "b", "c"], stats)
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
        model = classifier()
        trainer._export(lambda pixels: model(pixels, training=False), str(tmp_path), 64, ["a", "b"], {})


def test_the_frozen_backbone_graph_and_the_head_give_the_keras_classifiers_outputs(tmp_path):
    model = classifier()
    backbone = tf.keras.Model(model.input, model.layers[-2].output)
    kernel, bias = model.layers[-1].get_layer("outputs").get_weights()
    pixels = images.decode_batch(tf.constant([jpeg(seed) for seed in range(4)]), 64)
    probabilities = trainer._graph_classifier(trainer._frozen_graph(backbone), kernel, bias)
    np.testing.assert_allclose(probabilities(pixels).numpy(), model(pixels, training=False).numpy(), atol=1e-6)
    stats = {}
    trainer._export(probabilities, str(tmp_path), 64, ["a", "b", "c"], stats)
    examples = tf.constant([tfrecords.image_example(jpeg(seed)) for seed in range(4)])
    served = tf.saved_model.load(str(tmp_path)).signatures["serving_default"](examples)["outputs"].numpy()
    np.testing.assert_allclose(served, model(pixels, training=False).numpy(), atol=1e-6)


def test_a_backbone_with_a_weights_file_is_keyed_by_it_and_not_built(tmp_path, monkeypatch):
    weights = tmp_path / "weights.h5"
    weights.write_bytes(b"the weights")
    monkeypatch.setattr(models, "weights_file", lambda name: str(weights))
    backbone = trainer._Backbone("efficientnet_lite0", 224)
    assert backbone.digest() == feature_cache.file_digest(str(weights)) and backbone._model is None
    monkeypatch.setattr(models, "weights_file", lambda name: None)
    tiny = trainer._Backbone("tiny", 32)
    assert tiny.digest() == feature_cache.weights_digest(tiny.model().get_weights())


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
