import pytest

from tasks import tfrecords


def test_ingested_examples_refill_one_message_yet_each_record_holds_only_its_own_image():
    items = [(b"\xff\xd8long image bytes" * 50, "hot dog", "a" * 64, "hot dog/1.jpg", 640, 480, "jpeg"),
             (b"short", "taco", "b" * 64, "taco/2.png", 1, 2, "png")]
    records = list(tfrecords.ingested_examples(items))
    for record, (image, category, sha256, source, width, height, fmt) in zip(records, items):
        assert tfrecords.parse(record) == {"image": image, "category": category.encode(), "sha256": sha256.encode(),
                                           "source": source.encode(), "width": width, "height": height,
                                           "format": fmt.encode()}
        assert record == tfrecords.serialize({
            "image": tfrecords._bytes(image), "category": tfrecords._bytes(category.encode()),
            "sha256": tfrecords._bytes(sha256.encode()), "source": tfrecords._bytes(source.encode()),
            "width": tfrecords._ints(width), "height": tfrecords._ints(height), "format": tfrecords._bytes(fmt.encode())})
    assert list(tfrecords.ingested_examples([])) == []


def test_bytes_features_are_the_parsed_values():
    record = next(tfrecords.ingested_examples([(b"\x00img", "taco", "c" * 64, "taco/3.jpg", 3, 4, "jpeg")]))
    assert tfrecords.bytes_features(record, ("image", "source")) == {"image": b"\x00img", "source": b"taco/3.jpg"}


@pytest.mark.parametrize("name", ["records.tfrecord", "records.tfrecord.gz"])
def test_read_file_gives_every_record_in_order_across_batches(tmp_path, name):
    records = [f"record {i}".encode() * (i % 7) for i in range(2 * tfrecords.READ_BATCH + 5)]
    uri = str(tmp_path / name)
    assert tfrecords.write_file(records, uri, gzip=name.endswith(".gz")) == len(records)
    assert list(tfrecords.read_file(uri)) == records
    assert list(tfrecords.read_file("file://" + uri)) == records


def test_write_file_writes_beside_a_local_destination_not_in_the_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "no-such-folder"))
    uri = str(tmp_path / "out" / "part.tfrecord")
    assert tfrecords.write_file([b"one", b"two"], uri) == 2
    assert list(tfrecords.read_file(uri)) == [b"one", b"two"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part.tfrecord"]


def test_write_file_that_fails_leaves_neither_destination_nor_partial(tmp_path):
    def records():
        yield b"one"
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError, match="source failed"):
        tfrecords.write_file(records(), str(tmp_path / "part.tfrecord"))
    assert list(tmp_path.iterdir()) == []
