"""tasks.training.stage_upload: what an upload may add to the data root, and what it may not."""

import pytest
import tensorflow as tf

from tasks import training
from tasks.errors import HotdogInputError


def tfrecord(path, records=(b"one", b"two")):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def test_a_tfrecord_lands_in_its_own_folder(tmp_path):
    source = tfrecord(tmp_path / "taco_bias.tfrecord")
    staged = training.stage_upload(source, str(tmp_path / "root"))
    assert staged == str(tmp_path / "root" / "taco_bias" / "taco_bias.tfrecord")
    assert open(staged, "rb").read() == open(source, "rb").read()


def test_path_parts_of_an_object_name_never_leave_the_data_root(tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    tfrecord(tmp_path / "src" / "evil.tfrecord")
    staged = training.stage_upload(str(tmp_path / "src" / "sub") + "/../evil.tfrecord", str(tmp_path / "root"))
    assert staged == str(tmp_path / "root" / "evil" / "evil.tfrecord")  # only the base name is used


@pytest.mark.parametrize("name, message", [
    ("photo.jpeg", "only \\*.tfrecord"), ("..", "only \\*.tfrecord"), (".tfrecord", "no usable stem")])
def test_names_that_are_refused(tmp_path, name, message):
    with pytest.raises(HotdogInputError, match=message):
        training.stage_upload(str(tmp_path / name), str(tmp_path / "root"))


def test_oversized_upload(tmp_path):
    source = tfrecord(tmp_path / "big.tfrecord", [b"x" * 1000])
    with pytest.raises(HotdogInputError, match="over the 100-byte limit"):
        training.stage_upload(source, str(tmp_path / "root"), max_bytes=100)
    assert not (tmp_path / "root").exists()


def test_corrupt_and_empty_tfrecords(tmp_path):
    (tmp_path / "junk.tfrecord").write_bytes(b"this is not a tfrecord file at all")
    with pytest.raises(HotdogInputError, match="not a readable TFRecord"):
        training.stage_upload(str(tmp_path / "junk.tfrecord"), str(tmp_path / "root"))
    empty = tfrecord(tmp_path / "empty.tfrecord", [])
    with pytest.raises(HotdogInputError, match="holds no record"):
        training.stage_upload(empty, str(tmp_path / "root"))
    assert not (tmp_path / "root").exists()
