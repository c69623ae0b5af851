"""tasks.datasets and tasks.dataset_config: ordering, balance, config errors, both modes."""
import json
import os
import random

import pytest

from tasks import dataset_config, datasets, ingest, tfrecords
from tasks.dataset_config import DatasetSpec
from tasks.errors import HotdogInputError
from tests.conftest import image_bytes, write_tree

SPEC = DatasetSpec("demo", ("food", "sandwich", "taco"), (("food",), ("sandwich",), ("taco",)), 7, "truncate")


def members(sizes, sha=lambda c, i: f"{c}-{i}"):
    return [datasets.Member(f"{c}/{i}", c, (0, f"{i:03d}"), sha(c, i)) for c, n in enumerate(sizes) for i in range(n)]


def test_truncate_interleaves_round_robin_to_the_smallest_class():
    ordered, stats = datasets.plan(SPEC, members([5, 3, 4]), dedupe=True)
    assert [m.class_index for m in ordered] == [0, 1, 2] * 3
    assert stats["examples_per_class"] == [3, 3, 3]
    assert stats["available_per_class"] == [5, 3, 4]


def test_keep_all_continues_with_the_classes_that_have_images_left():
    spec = DatasetSpec(**{**SPEC.__dict__, "policy": "keep_all"})
    ordered, stats = datasets.plan(spec, members([3, 1, 2]), dedupe=True)
    assert [m.class_index for m in ordered] == [0, 1, 2, 0, 2, 0]
    assert stats["examples_per_class"] == [3, 1, 2]


def test_shuffle_is_seeded_and_independent_of_input_order():
    first, _ = datasets.plan(SPEC, members([6, 6, 6]), dedupe=True)
    again, _ = datasets.plan(SPEC, list(reversed(members([6, 6, 6]))), dedupe=True)
    other, _ = datasets.plan(DatasetSpec(**{**SPEC.__dict__, "seed": 8}), members([6, 6, 6]), dedupe=True)
    assert [m.key for m in first] == [m.key for m in again]
    assert [m.key for m in first] != [m.key for m in other]


def test_dedupe_within_class_and_drop_contradictory_labels():
    shas = {(0, 0): "same", (0, 1): "same", (1, 0): "both", (2, 0): "both"}
    ordered, stats = datasets.plan(SPEC, members([3, 2, 2], sha=lambda c, i: shas.get((c, i), f"{c}-{i}")),
                                   dedupe=True)
    assert stats["duplicates_within_class"] == 1
    assert stats["label_conflicts"] == ["both"]
    assert stats["available_per_class"] == [2, 1, 1]
    assert "both" not in {m.sha256 for m in ordered}


def write_config(tmp_path, text):
    path = tmp_path / "datasets.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, field", [
    ("classes: [a]\ndatasets: {x: {a: [a]}}", "classes"),
    ("classes: [a, b]\ndatasets: {x: {a: [a]}}", "datasets.x"),
    ("classes: [a, b]\ndatasets: {x: {a: [a], b: []}}", "datasets.x.b"),
    ("classes: [a, b]\npolicy: random\ndatasets: {x: {a: [a], b: [b]}}", "policy"),
    ("classes: [a, b]\ndatasets: [1]", "datasets"),
])
def test_config_errors_name_the_field(tmp_path, text, field):
    with pytest.raises(HotdogInputError, match=f"field '{field}'"):
        dataset_config.load_config(write_config(tmp_path, text))


def test_repository_config_defines_the_three_data_sets():
    specs = dataset_config.load_config()
    assert list(specs) == ["baseline", "taco_bias", "sandwich_bias"]
    assert specs["taco_bias"].categories == (("food",), ("open face sandwich",), ("hard taco",))
    assert specs["sandwich_bias"].classes == ("food", "sandwich", "taco")


def test_unknown_data_set_name():
    with pytest.raises(HotdogInputError, match=r"unknown data set\(s\) \['pizza'\]"):
        dataset_config.select(dataset_config.load_config(), ["baseline", "pizza"])


@pytest.fixture
def ingested(tree, tmp_path):
    out = str(tmp_path / "ingested")
    ingest.run_ingest(tree, out)
    return out


def read_examples(folder):
    names = sorted(n for n in os.listdir(folder) if ".tfrecord" in n)
    return [tfrecords.parse(r) for n in names for r in tfrecords.read_file(os.path.join(folder, n))]


def test_default_mode_writes_balanced_one_hot_examples_and_a_card(ingested, tmp_path):
    specs = [DatasetSpec("mini", SPEC.classes, SPEC.categories, 123, "truncate")]
    out = str(tmp_path / "sets")
    cards = datasets.build_from_ingested(ingested, specs, out, shards=2, gzip=True)
    examples = read_examples(os.path.join(out, "mini"))
    assert len(examples) == cards["mini"]["examples"] == 12  # 4 distinct images per class
    assert [e["label"] for e in examples[:3]] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert sorted(os.listdir(os.path.join(out, "mini"))) == [
        "dataset.json", "dataset.md", "mini-00000-of-00002.tfrecord.gz", "mini-00001-of-00002.tfrecord.gz"]
    card = json.loads((tmp_path / "sets" / "mini" / "dataset.json").read_text())
    assert card["classes"][1] == {"name": "sandwich", "label_index": 1, "categories": ["sandwich"],
                                  "available": 4, "examples": 4}
    assert card["compression"] == "GZIP" and card["seed"] == 123
    assert len(card["inputs"]["images_sha256"]) == 64


def test_examples_land_in_plan_order_across_files_and_data_sets(ingested, tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "EXAMPLES_PER_ELEMENT", 2)  # several elements per shard and destination
    specs = [DatasetSpec("all", SPEC.classes, SPEC.categories, 5, "keep_all"),
             DatasetSpec("two", ("food", "other"), (("food",), ("sandwich", "taco")), 9, "keep_all")]
    out = str(tmp_path / "sets")
    datasets.build_from_ingested(ingested, specs, out, shards=3)
    accepted = [row for row in ingest.read_json_lines(os.path.join(ingested, "manifest.jsonl"))
                if row["outcome"] == "accepted"]
    for spec in specs:
        planned, _ = datasets.plan(spec, [
            datasets.Member(f"{r['category']}/{r['sha256']}", i, (cats.index(r["category"]), r["path"]), r["sha256"])
            for r in accepted for i, cats in enumerate(spec.categories) if r["category"] in cats], dedupe=True)
        examples = read_examples(os.path.join(out, spec.name))
        assert len(os.listdir(os.path.join(out, spec.name))) == 2 + 3
        assert [(e["sha256"].decode(), e["class"].decode(), e["label"].index(1)) for e in examples] == [
            (m.sha256, spec.classes[m.class_index], m.class_index) for m in planned]


def test_an_ingestion_whose_manifest_lists_more_than_its_shards_hold_publishes_nothing(ingested, tmp_path):
    manifest = os.path.join(ingested, "manifest.jsonl")
    ghost = {"path": "food/ghost.jpeg", "category": "food", "outcome": "accepted", "reason": None, "sha256": "f" * 64,
             "size_bytes": 1, "format": "jpeg", "width": 1, "height": 1}
    with open(manifest, "a") as handle:
        handle.write(json.dumps(ghost) + "\n")
    spec = DatasetSpec("all", SPEC.classes, SPEC.categories, 5, "keep_all")
    with pytest.raises(HotdogInputError, match=r"data set 'all': 13 examples planned, 12 written"):
        datasets.build_from_ingested(ingested, [spec], str(tmp_path / "sets"))
    assert not os.path.exists(tmp_path / "sets" / "all" / "dataset.json")


def test_unknown_category_names_the_data_set_and_class(ingested, tmp_path):
    spec = DatasetSpec("odd", SPEC.classes, (("food",), ("sandwich",), ("tacos",)), 1, "truncate")
    with pytest.raises(HotdogInputError, match=r"data set 'odd', class 'taco': categories \['tacos'\]"):
        datasets.build_from_ingested(ingested, [spec], str(tmp_path / "sets"))


def test_source_that_was_never_ingested(tree, tmp_path):
    with pytest.raises(HotdogInputError, match="not a completed ingestion"):
        datasets.build_from_ingested(tree, [SPEC], str(tmp_path / "sets"))


def test_compat_original_follows_the_notebook_recipe(tmp_path):
    files = {f"{c}/{c}_{i}.jpeg": image_bytes(color=(k, i, 0)) for k, c in enumerate(["food", "sandwich", "taco"])
             for i in range(5 if c == "food" else 4)}
    files["taco/taco_0.jpeg"] = files["food/food_0.jpeg"]  # duplicates are kept in this mode
    root = write_tree(tmp_path / "plain", files)
    spec = DatasetSpec("baseline", SPEC.classes, SPEC.categories, 123, "truncate")
    datasets.build_original(root, [spec], str(tmp_path / "sets"))
    examples = read_examples(str(tmp_path / "sets" / "baseline"))
    assert sorted(os.listdir(tmp_path / "sets" / "baseline")) == ["baseline.tfrecord", "dataset.json", "dataset.md"]
    # The recipe, written out independently: seed once, shuffle each sorted list in class order, zip.
    random.seed(123)
    lists = []
    for c in ["food", "sandwich", "taco"]:
        names = sorted(n for n in files if n.startswith(c + "/"))
        random.shuffle(names)
        lists.append(names)
    expected = [name for row in zip(*lists) for name in row]
    assert [e["image"] for e in examples] == [files[n] for n in expected]
    assert [e["label"].index(1) for e in examples] == [0, 1, 2] * 4
    assert set(examples[0]) == {"image", "label"}


def test_compat_original_refuses_several_categories_per_class(tree, tmp_path):
    spec = DatasetSpec("x", SPEC.classes, (("food", "taco"), ("sandwich",), ("taco",)), 1, "truncate")
    with pytest.raises(HotdogInputError, match="one category per class"):
        datasets.build_original(tree, [spec], str(tmp_path / "sets"))
