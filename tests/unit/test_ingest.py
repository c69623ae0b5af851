"""tasks.ingest on small trees made here: every file accounted for, bad input, atomic re-runs."""
import json
import os

import pytest

from tasks import ingest, staging, tfrecords
from tasks.errors import HotdogInputError
from tests.conftest import image_bytes, png_claiming, write_tree


def manifest(out):
    with open(os.path.join(out, "manifest.jsonl"), encoding="utf-8") as handle:
        return {row["path"]: row for row in map(json.loads, handle)}


def output_bytes(out):
    """Every published file under ``out`` -> its bytes."""
    found = {}
    for folder, _, names in os.walk(out):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, out)] = handle.read()
    return found


@pytest.fixture
def messy(tmp_path):
    jpeg = image_bytes("JPEG", (60, 40), noise=True)
    files = {
        "food/ok.jpeg": jpeg,
        "food/ok again.jpeg": jpeg,                      # same bytes: duplicate of the first by path order
        "food/empty.jpeg": b"",
        "food/truncated.jpeg": jpeg[: len(jpeg) // 2],
        "food/notes.jpeg": b"this is text, not a picture",
        "food/really a png.jpeg": image_bytes("PNG", (10, 12)),
        "food/bomb.png": png_claiming(50_000, 50_000),
        "food/.DS_Store": b"\0\0\0\1Bud1",
        "food/Thumbs.db": b"\xd0\xcf\x11\xe0",
        "food/it's \"quoted\" — ünïcode 🌭.jpeg": image_bytes("JPEG", (8, 8), color=(1, 2, 3)),
        "only bad/broken.jpeg": b"\xff\xd8\xff\xe0 nope",
        "taco/taco.gif": image_bytes("GIF"),
        "stray.jpeg": image_bytes(),
    }
    root = write_tree(tmp_path / "messy", files, empty_dirs=["empty category"])
    os.symlink(os.path.join(root, "does-not-exist.jpeg"), os.path.join(root, "taco", "dangling.jpeg"))
    return root


def test_every_file_gets_one_outcome_with_a_reason(messy, tmp_path):
    out = str(tmp_path / "out")
    summary = ingest.run_ingest(messy, out)
    rows = manifest(out)
    assert len(rows) == summary["files"] == 14
    expect = {
        "food/ok again.jpeg": ("accepted", None),
        "food/ok.jpeg": ("duplicate", "same_sha256"),
        "food/empty.jpeg": ("invalid", "empty"),
        "food/truncated.jpeg": ("invalid", "truncated"),
        "food/notes.jpeg": ("invalid", "not_an_image"),
        "food/really a png.jpeg": ("accepted", None),
        "food/bomb.png": ("invalid", "too_large"),
        "food/.DS_Store": ("invalid", "system_file"),
        "food/Thumbs.db": ("invalid", "system_file"),
        "food/it's \"quoted\" — ünïcode 🌭.jpeg": ("accepted", None),
        "only bad/broken.jpeg": ("invalid", "truncated"),
        "taco/taco.gif": ("accepted", None),
        "taco/dangling.jpeg": ("invalid", "unreadable"),
        "stray.jpeg": ("invalid", "no_category"),
    }
    for path, (outcome, reason) in expect.items():
        assert (rows[path]["outcome"], rows[path]["reason"]) == (outcome, reason), path
    assert rows["food/ok.jpeg"]["duplicate_of"] == "food/ok again.jpeg"
    assert rows["food/really a png.jpeg"]["format"] == "png"
    assert "dangling.jpeg" in rows["taco/dangling.jpeg"]["detail"]
    assert summary["per_category"]["empty category"] == dict.fromkeys(ingest.OUTCOMES, 0)
    assert summary["categories_without_accepted_images"] == ["empty category", "only bad"]
    assert summary["invalid_reasons"]["system_file"] == 2


def test_accepted_images_are_written_as_examples(messy, tmp_path):
    out = str(tmp_path / "out")
    summary = ingest.run_ingest(messy, out)
    shard = next(s for s in summary["shards"] if s["file"].startswith("food/"))
    examples = [tfrecords.parse(r) for r in tfrecords.read_file(os.path.join(out, shard["file"]))]
    assert [e["source"].decode() for e in examples] == sorted(
        ["food/ok again.jpeg", "food/really a png.jpeg", "food/it's \"quoted\" — ünïcode 🌭.jpeg"])
    png = next(e for e in examples if e["source"] == b"food/really a png.jpeg")
    assert (png["format"], png["width"], png["height"], png["category"]) == (b"png", 10, 12, b"food")
    with open(os.path.join(messy, "food", "really a png.jpeg"), "rb") as handle:
        assert png["image"] == handle.read()  # the original bytes, untouched


def test_review_manifest_rejects_and_reports_unknown_names(tree, tmp_path):
    review = tmp_path / "review.json"
    review.write_text(json.dumps({"food": ["food_1.jpeg", "gone.jpeg"], "pizza": ["p.jpeg"]}))
    summary = ingest.run_ingest(tree, str(tmp_path / "out"), review=str(review))
    assert manifest(tmp_path / "out")["food/food_1.jpeg"]["outcome"] == "review_rejected"
    assert summary["review_unmatched"] == {"food": ["gone.jpeg"], "pizza": ["p.jpeg"]}


def test_cap_keeps_the_first_accepted_files_in_sorted_order(tree, tmp_path):
    summary = ingest.run_ingest(tree, str(tmp_path / "out"), max_per_category=2)
    rows = manifest(tmp_path / "out")
    food = sorted((p, r["outcome"]) for p, r in rows.items() if p.startswith("food/"))
    assert food == [("food/food_0.jpeg", "accepted"), ("food/food_1.jpeg", "accepted"),
                    ("food/food_2.jpeg", "over_cap"), ("food/food_3.jpeg", "over_cap"),
                    ("food/food_copy.jpeg", "duplicate")]
    assert summary["totals"] == {"accepted": 6, "duplicate": 3, "review_rejected": 0, "over_cap": 6, "invalid": 0}


def test_rerun_gives_identical_output(tree, tmp_path):
    out = str(tmp_path / "out")
    ingest.run_ingest(tree, out)
    first = output_bytes(out)
    ingest.run_ingest(tree, out)
    assert output_bytes(out) == first
    assert not [name for name in os.listdir(out) if name.startswith(staging.STAGING_PREFIX)]


def test_interrupted_run_does_not_look_complete(tree, tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    ingest.run_ingest(tree, out)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("simulated interruption in the middle of the Beam job")

    monkeypatch.setattr(ingest, "summarize", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest.run_ingest(tree, out)
    assert not os.path.exists(os.path.join(out, "summary.json"))
    with pytest.raises(HotdogInputError, match="not a completed ingestion"):
        ingest.load_summary(out)


def test_stale_shards_of_an_earlier_run_are_removed(tree, tmp_path):
    out = str(tmp_path / "out")
    ingest.run_ingest(tree, out)
    assert any(path.startswith("taco/") for path in output_bytes(out))
    for name in os.listdir(os.path.join(tree, "taco")):
        os.remove(os.path.join(tree, "taco", name))
    summary = ingest.run_ingest(tree, out)
    assert not any(path.startswith("taco/") for path in output_bytes(out))
    assert summary["categories_without_accepted_images"] == ["taco"]


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(HotdogInputError, match="source folder not found: .*nowhere"):
        ingest.run_ingest(str(tmp_path / "nowhere"), str(tmp_path / "out"))


def test_source_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "one.jpeg").write_bytes(image_bytes())
    with pytest.raises(HotdogInputError, match="got a file"):
        ingest.run_ingest(str(tmp_path / "one.jpeg"), str(tmp_path / "out"))


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"food": "one.jpeg"}', "must map each category to a list"),
])
def test_bad_review_manifest_names_the_file(tree, tmp_path, content, message):
    review = tmp_path / "review.json"
    review.write_text(content)
    with pytest.raises(HotdogInputError, match=message) as err:
        ingest.run_ingest(tree, str(tmp_path / "out"), review=str(review))
    assert "review.json" in str(err.value)


def test_missing_review_manifest(tree, tmp_path):
    with pytest.raises(HotdogInputError, match="review manifest not found"):
        ingest.run_ingest(tree, str(tmp_path / "out"), review=str(tmp_path / "nope.json"))


def test_an_io_error_fails_the_job_instead_of_rejecting_the_file(tree, tmp_path, monkeypatch):
    import errno

    out = str(tmp_path / "out")
    read = ingest.fs.read_many

    def flaky(uris):
        return [OSError(errno.EIO, "Input/output error", uri) if uri.endswith("taco_1.jpeg") else data
                for uri, data in zip(uris, read(uris))]

    monkeypatch.setattr(ingest.fs, "read_many", flaky)
    with pytest.raises(Exception, match="Input/output error"):
        ingest.run_ingest(tree, out)
    assert not os.path.exists(os.path.join(out, "summary.json"))


@pytest.mark.parametrize("second_read", [
    lambda uri, data: data + b"appended after validation",
    lambda uri, data: FileNotFoundError(2, "No such file or directory", uri),
])
def test_a_file_that_changes_after_validation_fails_the_job_naming_it(tree, tmp_path, monkeypatch, second_read):
    """Accepted files are read again when their shard is written; bytes that are no longer the
    validated ones (or a file that is gone) are never written: the job fails, commits nothing, and
    the earlier output stays as it was, marked incomplete as after any failed run."""
    out = str(tmp_path / "out")
    ingest.run_ingest(tree, out)
    committed = output_bytes(out)
    read, seen = ingest.fs.read_many, set()

    def changing(uris):
        results = []
        for uri, data in zip(uris, read(uris)):
            results.append(second_read(uri, data) if uri in seen and uri.endswith("taco_1.jpeg") else data)
            seen.add(uri)
        return results

    monkeypatch.setattr(ingest.fs, "read_many", changing)
    with pytest.raises(HotdogInputError, match="taco/taco_1.jpeg changed or disappeared while it was being ingested"):
        ingest.run_ingest(tree, out)
    published = {path: data for path, data in output_bytes(out).items() if not path.startswith(staging.STAGING_PREFIX)}
    assert published == {path: data for path, data in committed.items() if path != "summary.json"}


def test_a_file_too_big_for_any_image_within_the_pixel_limit_is_not_read(tmp_path, monkeypatch):
    from tests.conftest import image_bytes, write_tree

    source = write_tree(tmp_path / "src", {"food/small.jpeg": image_bytes(), "food/huge.jpeg": b"\0" * (2**20 + 5000)})
    read = ingest.fs.read_many

    def read_small(uris):
        assert not [uri for uri in uris if "huge" in uri]
        return read(uris)

    monkeypatch.setattr(ingest.fs, "read_many", read_small)
    summary = ingest.run_ingest(source, str(tmp_path / "out"), max_pixels=1000)
    rows = {r["path"]: r for r in ingest.read_json_lines(str(tmp_path / "out" / ingest.MANIFEST))}
    assert (rows["food/huge.jpeg"]["outcome"], rows["food/huge.jpeg"]["reason"]) == ("invalid", "too_large")
    assert "not read" in rows["food/huge.jpeg"]["detail"]
    assert summary["totals"]["invalid"] == 1


@pytest.mark.parametrize("sizes, spans", [
    ([10] * 5, [(0, 2), (2, 4), (4, 5)]),      # two files a batch
    ([60, 50, 10, 10], [(0, 1), (1, 3), (3, 4)]),  # at most 100 bytes a batch
    ([500, 1], [(0, 1), (1, 2)]),              # an oversized file alone
    ([], []),
])
def test_batches_are_bounded_by_files_and_bytes(sizes, spans):
    assert ingest.batch_spans(sizes, max_files=2, max_bytes=100) == spans
