"""tasks.eval_split: the eval set is fixed per image when data enters the data root, and
uploads never enter it."""
import os

import pytest

from tasks import class_names, eval_split, tfrecords, training, uploads
from tasks.errors import HotdogInputError
from tests.conftest import image_bytes

IMAGES = [image_bytes(color=(i, 7, 7)) for i in range(30)]


def write(path, images, label=(1, 0, 0)):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    tfrecords.write_file([tfrecords.labelled_example(image, list(label)) for image in images], str(path))
    return str(path)


def images_of(path):
    return [tfrecords.parse(record)["image"] for record in tfrecords.read_file(path)]


def test_each_image_has_one_split_in_every_data_set(tmp_path):
    root = tmp_path / "root"
    counts = eval_split.stage_file(write(tmp_path / "a.tfrecord", IMAGES), str(root / "a"), "a.tfrecord")
    eval_split.stage_file(write(tmp_path / "b.tfrecord", IMAGES[::-1], (0, 1, 0)), str(root / "b"), "b.tfrecord")
    assert counts["train"] + counts["eval"] == 30 and 3 <= counts["eval"] <= 17
    for split in ("train", "eval"):
        a, b = images_of(str(root / "a" / f"{split}-a.tfrecord")), images_of(str(root / "b" / f"{split}-b.tfrecord"))
        assert set(a) == set(b) and all(eval_split.split_of(image) == split for image in a)


def test_staging_again_keeps_the_files(tmp_path):
    source = write(tmp_path / "a.tfrecord", IMAGES)
    eval_split.stage_file(source, str(tmp_path / "root" / "a"), "a.tfrecord")
    staged = tmp_path / "root" / "a" / "eval-a.tfrecord"
    before = staged.stat().st_mtime_ns
    eval_split.stage_file(source, str(tmp_path / "root" / "a"), "a.tfrecord")
    assert staged.stat().st_mtime_ns == before


def test_uploads_are_train_only_and_a_root_of_uploads_alone_cannot_be_judged(tmp_path):
    root = str(tmp_path / "work" / "data_root")
    staged = uploads.stage(write(tmp_path / "up.tfrecord", IMAGES[:3]), root)
    assert os.path.basename(staged).startswith("train-")
    with pytest.raises(HotdogInputError, match="nothing to evaluate on: .* holds uploads only"):
        training.check_data_root(root)
    eval_split.stage_file(write(tmp_path / "a.tfrecord", IMAGES), os.path.join(root, "a"), "a.tfrecord")
    with pytest.raises(HotdogInputError, match="has no class names"):
        training.check_data_root(root)
    class_names.admit(root, [{"name": "a", "classes": [{"name": "x", "label_index": 0},
                                                       {"name": "y", "label_index": 1}]}])
    training.check_data_root(root)


def test_files_of_the_layout_before_splits_are_migrated_without_loss(tmp_path):
    root = tmp_path / "data_root"
    write(root / "baseline" / "baseline.tfrecord", IMAGES)
    write(root / "uploads" / "0123-17.tfrecord", IMAGES[:2])
    moved = eval_split.migrate(str(root), uploads.UPLOADS)
    assert moved == ["baseline/baseline.tfrecord", "uploads/0123-17.tfrecord"]
    assert sorted(os.listdir(root / "baseline")) == ["eval-baseline.tfrecord", "train-baseline.tfrecord"]
    assert os.listdir(root / "uploads") == ["train-0123-17.tfrecord"]
    kept = images_of(str(root / "baseline" / "eval-baseline.tfrecord")) + images_of(
        str(root / "baseline" / "train-baseline.tfrecord"))
    assert sorted(kept) == sorted(IMAGES)
    assert eval_split.migrate(str(root), uploads.UPLOADS) == []


def test_a_broken_file_of_the_earlier_layout_is_named_and_kept(tmp_path):
    broken = tmp_path / "data_root" / "old" / "old.tfrecord"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not TFRecord framing at all, just text\n" * 4)
    with pytest.raises(HotdogInputError, match=r"old/old.tfrecord: cannot split this file .*move it out"):
        eval_split.migrate(str(tmp_path / "data_root"), uploads.UPLOADS)
    assert sorted(os.listdir(broken.parent)) == ["old.tfrecord"]
