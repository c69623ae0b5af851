"""tasks.frozen_schema.relax: the frozen schema keeps what makes data trainable (an image, a
label of the classes' width, known class names) and lets everything else vary."""
import os

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv

from tasks import frozen_schema, tfrecords
from tests.conftest import image_bytes


def statistics(tmp_path, name, records):
    path = os.path.join(str(tmp_path), f"{name}.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    return tfdv.generate_statistics_from_tfrecord(path)


def curated(label, index, category, cls):
    return tfrecords.labelled_example(image_bytes(color=(index * 9 % 255, 5, 5)), label, {
        "class": cls, "category": category, "sha256": f"{index:064x}", "source": f"{category}/{index}.jpeg"})


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    """The relaxed schema of a baseline-like data set (as SchemaGen infers it)."""
    tmp = tmp_path_factory.mktemp("schema")
    classes = ["food", "sandwich", "taco"]
    records = [curated([int(k == i % 3) for k in range(3)], i, classes[i % 3], classes[i % 3]) for i in range(30)]
    inferred = tfdv.infer_schema(statistics(tmp, "baseline", records), infer_feature_shape=True)
    from google.protobuf import text_format

    return text_format.Parse(frozen_schema.relax(text_format.MessageToString(inferred)),
                             type(inferred)()), tmp


def anomalies(frozen, name, records):
    schema, tmp = frozen
    found = tfdv.validate_statistics(statistics(tmp, name, records), schema)
    return sorted(found.anomaly_info)


def test_new_images_categories_and_bare_uploads_match(frozen):
    other = [curated([0, 0, 1], 100 + i, "hard taco", "taco") for i in range(5)]
    bare = [tfrecords.labelled_example(image_bytes(color=(1, i, 1)), [1, 0, 0]) for i in range(5)]
    assert anomalies(frozen, "bias", other + bare) == []


def test_another_label_width_or_class_name_is_an_anomaly(frozen):
    assert anomalies(frozen, "two", [curated([1, 0], i, "food", "food") for i in range(5)]) == ["label"]
    assert anomalies(frozen, "names", [curated([1, 0, 0], i, "food", "pizza") for i in range(5)]) == ["class"]


def test_an_example_without_an_image_is_an_anomaly(frozen):
    no_image = tf.train.Example(features=tf.train.Features(feature={"label": tf.train.Feature(
        int64_list=tf.train.Int64List(value=[1, 0, 0]))})).SerializeToString()
    assert anomalies(frozen, "no_image", [no_image] * 3) == ["image"]
