"""gs:// input and output against fake-gcs-server on 127.0.0.1: same bytes as on local disk."""
import os

import pytest

from tasks import dataset_config, datasets, ingest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bucket(gcs):
    """The bucket hotdog-test on the session's fake-gcs-server."""
    gcs.mkdir("hotdog-test")
    return gcs


def remote_bytes(gcs_fs, prefix):
    return {path[len(prefix) + 1:]: gcs_fs.cat_file(path) for path in gcs_fs.find(prefix)}


def local_bytes(root):
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(folder, name), "rb") as handle:
                found[os.path.relpath(os.path.join(folder, name), root)] = handle.read()
    return found


def test_ingest_and_datasets_from_and_to_gcs(bucket, tree, tmp_path):
    bucket.put(tree + "/", "hotdog-test/images/", recursive=True)
    summary = ingest.run_ingest("gs://hotdog-test/images", "gs://hotdog-test/ingested")
    assert summary["totals"]["accepted"] == 12 and summary["totals"]["duplicate"] == 3

    local = str(tmp_path / "local")
    local_summary = ingest.run_ingest(tree, local)
    remote = remote_bytes(bucket, "hotdog-test/ingested")
    assert {k for k in remote if k != "summary.json"} == {k for k in local_bytes(local) if k != "summary.json"}
    for name, data in local_bytes(local).items():
        if name != "summary.json":
            assert remote[name] == data, name
    assert {k: v for k, v in summary.items() if k != "params"} == {
        k: v for k, v in local_summary.items() if k != "params"}

    specs = dataset_config.select(dataset_config.load_config(), ["baseline"])
    cards = datasets.build_from_ingested("gs://hotdog-test/ingested", specs, "gs://hotdog-test/sets")
    assert cards["baseline"]["examples"] == 12
    assert sorted(remote_bytes(bucket, "hotdog-test/sets/baseline")) == ["baseline.tfrecord", "dataset.json",
                                                                     "dataset.md"]


def test_missing_gcs_source(bucket):
    from tasks.errors import HotdogInputError

    with pytest.raises(HotdogInputError, match="source folder not found: gs://hotdog-test/nothing-here"):
        ingest.run_ingest("gs://hotdog-test/nothing-here", "gs://hotdog-test/out")


def test_an_upload_is_staged_at_its_events_generation_or_not_at_all(bucket, tmp_path):
    """An object overwritten between its event and the staging is not staged under the old
    event; the new version is staged by its own."""
    import tensorflow as tf

    from tasks import tfrecords, uploads
    from tasks.errors import HotdogInputError
    from tests.conftest import image_bytes

    def version(colour):
        local = str(tmp_path / f"{colour}.tfrecord")
        with tf.io.TFRecordWriter(local) as writer:
            writer.write(tfrecords.labelled_example(image_bytes(color=(colour, 0, 0)), [0, 1, 0]))
        bucket.put(local, "hotdog-test/uploads/x.tfrecord")
        return open(local, "rb").read(), str(bucket.info("hotdog-test/uploads/x.tfrecord")["generation"])

    _, first = version(10)
    newer, second = version(200)
    data_root = str(tmp_path / "work" / "data_root")
    with pytest.raises(HotdogInputError, match=f"generation {first} is gone"):
        uploads.stage("gs://hotdog-test/uploads/x.tfrecord", data_root, generation=first)
    assert not os.path.exists(os.path.join(data_root, "uploads"))
    staged = uploads.stage("gs://hotdog-test/uploads/x.tfrecord", data_root, generation=second)
    assert staged.endswith(f"-{second}.tfrecord") and open(staged, "rb").read() == newer
