"""TFLite copies: the same outputs as the Keras model, whichever way a batch is split; a
damaged copy is refused naming its file, before TFLite reads it."""
import numpy as np
import pytest
import tensorflow as tf

from tasks.errors import HotdogInputError
from tasks.serving.scorer import Scorer
from tfx_pipeline import tflite
from tfx_pipeline.models import tiny


@pytest.fixture(scope="module")
def backbone():
    tf.keras.utils.set_random_seed(0)
    return tiny.feature_extractor(32)


@pytest.mark.parametrize("threads", [1, 2])
def test_runner_matches_keras_for_any_batch(backbone, threads):
    runner = tflite.Runner(tflite.convert(backbone), threads=threads)
    pixels = np.random.default_rng(1).uniform(0, 255, (7, 32, 32, 3)).astype(np.float32)
    expected = backbone(pixels, training=False).numpy()
    assert runner.image_size == 32
    assert np.abs(runner(pixels) - expected).max() < 1e-5
    assert np.abs(runner(pixels[:1]) - expected[:1]).max() < 1e-5
    assert runner(pixels[:0]).shape == (0, expected.shape[1])


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_classifier_copy_gives_the_softmax_of_the_model(backbone, tmp_path, workers):
    head = tf.keras.layers.Dense(4, activation="softmax", name="outputs")
    model = tf.keras.Model(backbone.input, head(backbone.output))
    tflite.write_copy(str(tmp_path), tflite.convert(backbone), *head.get_weights())
    classifier = tflite.Classifier((tmp_path / tflite.BACKBONE_PATH).read_bytes(),
                                   (tmp_path / tflite.HEAD_PATH).read_bytes(), workers)
    pixels = np.random.default_rng(2).uniform(0, 255, (5, 32, 32, 3)).astype(np.float32)
    expected = model(pixels, training=False).numpy()
    parts = []

    def to_pixels(indices):
        parts.append(list(indices))
        return pixels[list(indices)]

    got = classifier(list(range(5)), to_pixels)
    assert np.abs(got - expected).max() < 1e-5
    assert np.allclose(got.sum(axis=1), 1, atol=1e-6)
    assert sorted(i for part in parts for i in part) == list(range(5)) and len(parts) == workers
    assert np.abs(classifier(pixels[:1]) - expected[:1]).max() < 1e-5
    assert classifier(pixels[:0]).shape == (0, 4)


@pytest.mark.parametrize("damage", ["truncated backbone", "flipped backbone byte", "truncated head", "other backbone"])
def test_a_damaged_copy_is_refused_naming_the_file(backbone, tmp_path, damage):
    head = tf.keras.layers.Dense(3, activation="softmax")
    head(backbone.output)
    tflite.write_copy(str(tmp_path), tflite.convert(backbone), *head.get_weights())
    target = tmp_path / (tflite.HEAD_PATH if "head" in damage else tflite.BACKBONE_PATH)
    data = bytearray(target.read_bytes())
    if damage.startswith("truncated"):
        data = data[:len(data) // 2]
    elif damage.startswith("flipped"):
        data[len(data) // 2] ^= 0xFF
    else:
        data = bytearray(tflite.convert(tiny.feature_extractor(32)))
    target.write_bytes(bytes(data))
    with pytest.raises(HotdogInputError, match=f"TFLite copy in {tmp_path} is damaged: .*{target.name}"):
        Scorer(str(tmp_path))
