"""The Prefect flows on the 1,800 real images in ../shared: the numbers issue 2 promises."""
import json
import os

import pytest

from flows.datasets_flow import build_datasets
from flows.ingest_flow import ingest_images
from tasks import tfrecords

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ingested(shared_images, prefect_server, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("shared") / "ingested")
    return out, ingest_images(shared_images, out)


def test_shared_images_ingest_to_the_expected_counts(ingested):
    out, summary = ingested
    assert summary["files"] == 1800
    assert summary["totals"] == {"accepted": 1677, "duplicate": 123, "review_rejected": 0, "over_cap": 0,
                                 "invalid": 0}
    assert summary["distinct_accepted_sha256"] == 1673
    duplicates = {c: n["duplicate"] for c, n in summary["per_category"].items() if n["duplicate"]}
    assert duplicates == {"food": 29, "hot dog": 11, "sandwich": 54, "taco": 29}
    assert len(summary["cross_category_duplicates"]) == 4
    with open(os.path.join(out, "manifest.jsonl"), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    assert len(rows) == 1800
    png = [r for r in rows if r["format"] == "png"]
    assert [(r["path"], r["outcome"]) for r in png] == [
        ("submarine sandwich/submarine sandwich_pg_0_pos_48.png", "accepted")]
    assert sum(s["records"] for s in summary["shards"]) == 1677


def test_shared_data_sets_are_balanced(ingested, tmp_path):
    out, _ = ingested
    cards = build_datasets(out, str(tmp_path / "sets"))
    assert {n: c["examples"] for n, c in cards.items()} == {"baseline": 1038, "taco_bias": 150,
                                                             "sandwich_bias": 150}
    assert [c["examples"] for c in cards["baseline"]["classes"]] == [346, 346, 346]


def test_compat_original_reproduces_the_original_sizes(shared_images, prefect_server, tmp_path):
    cards = build_datasets(shared_images, str(tmp_path / "orig"), compat="original")
    assert {n: c["examples"] for n, c in cards.items()} == {"baseline": 1200, "taco_bias": 150,
                                                             "sandwich_bias": 150}
    records = list(tfrecords.read_file(str(tmp_path / "orig" / "baseline" / "baseline.tfrecord")))
    images = [tfrecords.parse(r)["image"] for r in records]
    assert len(images) - len(set(images)) > 90  # no dedupe: ~9 % byte-identical copies, as the original had
