"""A user's own classes end to end: `hotdog run --experiment FILE` on renamed copies of the
shared photos (5 classes, unicode names, hot dogs as one of them; and 2 classes with 2 seeds),
then `hotdog predict`. No demo class name may appear anywhere in what they produce."""
import csv
import json
import os
import re
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from tasks import verdict

pytestmark = pytest.mark.slow
DEMO_NAMES = re.compile(r"food|sandwich|taco|hot dog", re.IGNORECASE)
FLOWERS = {"rosé": "food", "tulip": "sandwich", "daisy": "taco", "iris": "hot dog", "百合": "submarine sandwich"}


def garden(shared_images, root, categories: dict[str, str], per_category: int, judge: int) -> str:
    """A folder-per-category tree: each new category holds the first photos of a shared one,
    renamed; ``unseen/`` holds ``judge`` photos of flat tacos to judge."""
    for new, old in {**categories, "unseen": "flat taco"}.items():
        os.makedirs(root / new)
        names = sorted(os.listdir(os.path.join(shared_images, old)))[:judge if new == "unseen" else per_category]
        for i, name in enumerate(names):
            shutil.copy(os.path.join(shared_images, old, name), root / new / f"photo {i}.jpeg")
    return str(root)


def experiment_file(root, classes, sets: dict[str, list[str]], steps: dict[str, list[str]], **fields) -> str:
    config = {"classes": classes, "seed": 5, "datasets": {
        name: {cls: [category] for cls, category in zip(classes, categories)} for name, categories in sets.items()}}
    (root / "sets.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    doc = {"title": "Which flower is it?", "source": "images", "datasets": "sets.yaml", "judge": "unseen",
           "steps": steps, "train": {"backbone": "tiny", "epochs": 2, "min_accuracy": 0.0, "max_regression": 1.0},
           **fields}
    (root / "flowers.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return str(root / "flowers.yaml")


def no_demo_names(text: str, where: str):
    found = DEMO_NAMES.search(text)
    assert not found, f"{where} names the demo's class {found.group(0)!r}"


def test_five_unicode_classes_from_images_to_predict(shared_images, tmp_path, prefect_server):
    garden(shared_images, tmp_path / "images", FLOWERS, 12, 6)
    classes = list(FLOWERS)
    path = experiment_file(tmp_path, classes, {"garden": classes}, {"garden": ["garden"]},
                           reference={"label": "botanist", "models": {"garden": {c: 0.2 for c in classes}}})
    work = tmp_path / "work"
    done = CliRunner().invoke(app, ["run", "--experiment", path, "--workdir", str(work)])
    assert done.exit_code == 0, done.output
    final = work / "verdict" / "final"
    report = (final / "report.md").read_text(encoding="utf-8")
    assert report.startswith("# Which flower is it?\n")
    assert "| model | rosé | tulip | daisy | iris | 百合 | verdict | botanist (rosé / tulip / daisy / iris / 百合) |" in report
    assert "| garden | " in report and "20.0% / 20.0% / 20.0% / 20.0% / 20.0%" in report
    with open(final / "predictions.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["model", "path", *classes, "predicted"] and len(rows) == 6
    assert all(row["predicted"] in classes for row in rows)
    summary = json.loads((final / "summary.json").read_text(encoding="utf-8"))
    assert summary["classes"] == classes
    model = summary["models"][0]["model_dir"]
    assert open(os.path.join(model, "assets", "class_names.txt"), encoding="utf-8").read().splitlines() == classes
    assert json.loads(open(model + ".lineage.json", encoding="utf-8").read())["classes"] == classes
    card = json.loads((work / "processed" / "garden" / "dataset.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in card["classes"]] == classes

    predicted = CliRunner().invoke(app, ["predict", str(tmp_path / "images" / "unseen"), "--workdir",
                                         str(work / "run" / "training"), "--format", "jsonl"])
    assert predicted.exit_code == 0, predicted.output
    lines = [json.loads(line) for line in predicted.output.splitlines()]
    assert len(lines) == 6 and all(list(line["probabilities"]) == classes for line in lines)
    assert all(abs(sum(line["probabilities"].values()) - 1) < 1e-4 and line["top"] in classes for line in lines)
    table = CliRunner().invoke(app, ["predict", str(tmp_path / "images" / "unseen" / "photo 0.jpeg"), "--model", model])
    assert table.exit_code == 0 and "百合" in table.output and len(table.output.splitlines()) == 1, table.output
    for where, text in (("report.md", report), ("predictions.csv", (final / "predictions.csv").read_text("utf-8")),
                        ("summary.json", json.dumps(summary["classes"])), ("predict", predicted.output + table.output)):
        no_demo_names(text, where)


def test_two_classes_twice_each_report_the_spread_across_seeds(shared_images, tmp_path, prefect_server):
    garden(shared_images, tmp_path / "images", {"cat": "food", "dog": "taco", "kitten": "open face sandwich",
                                                "puppy": "hard taco"}, 10, 4)
    path = experiment_file(tmp_path, ["cat", "dog"], {"pets": ["cat", "dog"], "young": ["kitten", "puppy"]},
                           {"pets": ["pets"], "young": ["young"]}, repeats=2)
    work = tmp_path / "work"
    done = CliRunner().invoke(app, ["run", "--experiment", path, "--workdir", str(work)])
    assert done.exit_code == 0, done.output
    summary = json.loads((work / "verdict" / "final" / "summary.json").read_text())
    assert summary["classes"] == ["cat", "dog"] and [m["model"] for m in summary["models"]] == ["pets", "young"]
    stats = summary["repeats"]
    assert stats["seeds"] == 2 and {s["n"] for s in stats["steps"].values()} == {2}
    for step in stats["steps"].values():
        assert abs(sum(c["mean"] for c in step["classes"].values()) - 1) < 1e-4
        assert all(c["sd"] >= 0 for c in step["classes"].values())
    assert stats["shifts"]["young"]["n"] == 2 and set(stats["shifts"]["young"]["classes"]) == {"cat", "dog"}
    again = verdict.run_verdict({m["model"]: m["model_dir"] for m in summary["models"]}, summary["images_dir"],
                                str(tmp_path / "scored again"), summary["title"], None, stats)
    timeless = [{k: v for k, v in m.items() if k != "images_per_second"} for m in summary["models"]]
    assert [{k: v for k, v in m.items() if k != "images_per_second"} for m in again["models"]] == timeless
    assert ((tmp_path / "scored again" / "predictions.csv").read_text()
            == (work / "verdict" / "final" / "predictions.csv").read_text())
    report = (work / "verdict" / "final" / "report.md").read_text()
    assert "## Across 2 seeds" in report and "| young | 2 | " in report and "Shift from `pets`" in report
    assert sorted(os.listdir(work / "run")) == ["training", "training-seed2"]
    seeds = {json.loads(open(m + ".lineage.json").read())["parameters"]["seed"]
             for folder in ("training", "training-seed2")
             for m in [str(work / "run" / folder / "registry" / v)
                       for v in sorted(os.listdir(work / "run" / folder / "registry")) if v.isdigit()]}
    assert seeds == {42, 43}
    no_demo_names(report + json.dumps(summary["classes"]), "report")
