"""tasks.uploads.stage: what an upload may add to the data root, under which name, and what
happens to a file that fails its checks."""
import json
import os

import pytest
import tensorflow as tf

from tasks import fs, tfrecords, uploads
from tasks.errors import HotdogInputError
from tests.conftest import image_bytes, png_claiming

GOOD = [tfrecords.labelled_example(image_bytes(color=(i * 40, 9, 9)), [0, 1, 0]) for i in range(3)]


def tfrecord(path, records=GOOD):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


@pytest.fixture
def data_root(tmp_path):
    """A data root holding the curated 3-class data set 'baseline'."""
    root = tmp_path / "work" / "data_root"
    tfrecord(root / "baseline" / "baseline.tfrecord", [tfrecords.labelled_example(image_bytes(), [1, 0, 0])])
    return str(root)


def training_files(data_root):
    return sorted(tf.io.gfile.glob(os.path.join(data_root, "*", "*.tfrecord*")))  # the pipeline's DATA_PATTERN


def test_a_good_upload_lands_under_a_name_of_its_own(tmp_path, data_root):
    source = tfrecord(tmp_path / "in" / "taco_bias.tfrecord")
    staged = uploads.stage(source, data_root, generation="17")
    assert os.path.dirname(staged) == os.path.join(data_root, "uploads") and staged.endswith("-17.tfrecord")
    assert open(staged, "rb").read() == open(source, "rb").read()
    assert uploads.stage(source, data_root, generation="17") == staged  # a redelivery rewrites the same file
    assert len(training_files(data_root)) == 2


def test_an_upload_is_streamed_in_chunks_and_leaves_no_scratch_file(tmp_path, data_root, monkeypatch):
    source = tfrecord(tmp_path / "in" / "many.tfrecord", GOOD * 4)
    monkeypatch.setattr(uploads, "CHUNK_BYTES", 100)
    reads = []
    real_open = fs.pinned

    def spying_pinned(uri, generation):
        fsys, path = real_open(uri, generation)
        opener = fsys.open

        def open_spied(name, *args, **kwargs):
            handle = opener(name, *args, **kwargs)
            if name == path:  # the filesystem object is shared: watch the upload's reads only
                read = handle.read
                handle.read = lambda size=-1: reads.append(size) or read(size)
            return handle
        monkeypatch.setattr(fsys, "open", open_spied)
        return fsys, path

    monkeypatch.setattr(fs, "pinned", spying_pinned)
    scratch_before = set(os.listdir(tmp_path.parent))
    staged = uploads.stage(source, data_root, generation="3")
    assert open(staged, "rb").read() == open(source, "rb").read()
    assert len(reads) > 2 and set(reads) == {100}, reads  # never one read of the whole file
    assert set(os.listdir(tmp_path.parent)) == scratch_before


def test_equal_base_names_and_curated_names_never_overwrite(tmp_path, data_root):
    curated = os.path.join(data_root, "baseline", "baseline.tfrecord")
    before = open(curated, "rb").read()
    a = uploads.stage(tfrecord(tmp_path / "a" / "x.tfrecord"), data_root, generation="1")
    b = uploads.stage(tfrecord(tmp_path / "b" / "x.tfrecord", GOOD[:1]), data_root, generation="1")
    named_like_curated = uploads.stage(tfrecord(tmp_path / "c" / "baseline.tfrecord"), data_root, generation="1")
    assert len({a, b, named_like_curated, curated}) == 4
    assert open(curated, "rb").read() == before
    assert len(training_files(data_root)) == 4


def test_path_parts_of_an_object_name_never_leave_the_data_root(tmp_path, data_root):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    tfrecord(tmp_path / "src" / "evil.tfrecord")
    staged = uploads.stage(str(tmp_path / "src" / "sub") + "/../evil.tfrecord", data_root)
    assert os.path.dirname(staged) == os.path.join(data_root, "uploads")


@pytest.mark.parametrize("name, message", [
    ("photo.jpeg", "only \\*.tfrecord"), ("..", "only \\*.tfrecord"), (".tfrecord", "no usable stem")])
def test_names_that_are_refused(tmp_path, data_root, name, message):
    with pytest.raises(HotdogInputError, match=message):
        uploads.stage(str(tmp_path / name), data_root)


def test_oversized_upload(tmp_path, data_root):
    with pytest.raises(HotdogInputError, match="over the 100-byte limit"):
        uploads.stage(tfrecord(tmp_path / "big.tfrecord"), data_root, max_bytes=100)
    assert len(training_files(data_root)) == 1


def example(image=None, label=(0, 0, 1)):
    return tfrecords.labelled_example(image if image is not None else image_bytes(), list(label))


@pytest.mark.parametrize("records, message", [
    (None, "not a readable TFRecord file"),
    ([], "holds no record"),
    ([GOOD[0], b"\xff\xfe definitely not a protobuf"], "record 1 is not a tf.train.Example"),
    ([tfrecords.serialize({"label": tfrecords._ints(1, 0, 0)})], "record 0 has no single bytes feature 'image'"),
    ([example(label=(0, 1))], "record 0: label has 2 classes, the data root has 3"),
    ([example(label=(1, 1, 0))], r"record 0: label \[1, 1, 0\] is not one-hot"),
    ([GOOD[0], example(image=image_bytes()[:60])], "record 1: image is truncated"),
    ([example(image=png_claiming(50_000, 50_000))], "record 0: image is too_large"),
])
def test_a_bad_file_is_quarantined_with_its_reason_and_never_trained_on(tmp_path, data_root, records, message):
    source = tmp_path / "in" / "bad.tfrecord"
    if records is None:
        source.parent.mkdir(parents=True)
        source.write_bytes(b"this is not a TFRecord file" * 10)
    else:
        tfrecord(source, records)
    with pytest.raises(HotdogInputError, match=f"refusing .*bad.tfrecord.*{message}.*quarantined") as refused:
        uploads.stage(str(source), data_root, generation="5")
    assert len(training_files(data_root)) == 1
    report = str(refused.value).rsplit(" in ", 1)[1]
    assert json.loads(open(report).read())["uri"] == str(source)
    assert open(report[:-len(".json")], "rb").read() == source.read_bytes()


def test_a_killed_copy_leaves_nothing_training_reads(tmp_path, data_root, monkeypatch):
    def killed(*_):
        raise KeyboardInterrupt("killed between write and rename")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        fs.write_bytes_atomic(os.path.join(data_root, "uploads", "x-1.tfrecord"), b"half a file")
    monkeypatch.undo()
    assert os.listdir(os.path.join(data_root, "uploads"))[0].startswith(".partial-")
    assert len(training_files(data_root)) == 1


@pytest.mark.parametrize("uri", ["gs://other-bucket/uploads/x.tfrecord", "gs://b/elsewhere/x.tfrecord",
                                 "gs://b/uploads/../x.tfrecord", "gs://b/uploads//x.tfrecord", "/etc/x.tfrecord",
                                 "file:///tmp/x.tfrecord", "https://example.com/uploads/x.tfrecord",
                                 "gs://b-evil/uploads/x.tfrecord"])
def test_an_event_may_only_name_an_object_under_the_bucket_and_prefix(uri):
    with pytest.raises(HotdogInputError, match="accepted only from gs://b/uploads/"):
        uploads.check_source(uri, "b", "uploads/")


def test_an_object_under_the_prefix_is_accepted():
    uploads.check_source("gs://b/uploads/2026/x.tfrecord", "b", "uploads/")
