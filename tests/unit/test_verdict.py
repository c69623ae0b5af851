import csv
import json

from tasks import verdict

CLASSES = ["cat", "dog"]
PATHS = ["a.jpg", "b.jpg", "c.jpg"]


def write_part(folder, model: str, model_dir: str, paths=PATHS, images_dir="/images") -> None:
    """A verdict of one model as run_verdict writes it, with made-up probabilities."""
    probabilities = [[0.25 + 0.1 * i, 0.75 - 0.1 * i] for i in range(len(paths))]
    entry = {"model": model, "images": len(paths), "verdict": "dog", "model_dir": model_dir, "images_per_second": 9.0,
             "scores": {c: {"mean": sum(p[k] for p in probabilities) / len(paths), "ci95": [0.1, 0.9]}
                        for k, c in enumerate(CLASSES)}}
    summary = {"title": "step", "images_dir": images_dir, "images": len(paths), "skipped": [], "classes": CLASSES,
               "reference": None, "repeats": None, "models": [entry]}
    rows = [{"model": model, "path": n, **{c: f"{p[i]:.6f}" for i, c in enumerate(CLASSES)}, "predicted": "dog"}
            for n, p in zip(paths, probabilities)]
    verdict._write_outputs(str(folder), rows, summary)


def test_the_steps_verdicts_make_the_report_without_scoring_again(tmp_path):
    write_part(tmp_path / "one", "one", "/models/1")
    write_part(tmp_path / "two", "two", "/models/2")
    reference = {"label": "vet", "models": {"two": {"cat": 0.5, "dog": 0.5}}}
    summary = verdict.combine_verdicts({"one": "/models/1", "two": "/models/2"},
                                       {"one": str(tmp_path / "one"), "two": str(tmp_path / "two")}, "/images",
                                       str(tmp_path / "final"), "Cat or dog?", reference)
    parts = [json.loads((tmp_path / name / "summary.json").read_text())["models"][0] for name in ("one", "two")]
    assert summary["models"] == parts and summary["reference"] == reference and summary["title"] == "Cat or dog?"
    assert json.loads((tmp_path / "final" / "summary.json").read_text()) == summary
    with open(tmp_path / "final" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["model"], r["path"]) for r in rows] == [(m, p) for m in ("one", "two") for p in PATHS]
    report = (tmp_path / "final" / "report.md").read_text()
    assert report.startswith("# Cat or dog?") and "| two | " in report and "50.0% / 50.0%" in report


def test_verdicts_that_do_not_agree_are_not_combined(tmp_path):
    write_part(tmp_path / "one", "one", "/models/1")
    write_part(tmp_path / "other images", "two", "/models/2", paths=PATHS[:2])
    write_part(tmp_path / "other folder", "two", "/models/2", images_dir="/elsewhere")
    write_part(tmp_path / "other model", "two", "/models/3")
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "summary.json").write_text("{")
    for part in ("other images", "other folder", "other model", "damaged", "missing"):
        assert verdict.combine_verdicts({"one": "/models/1", "two": "/models/2"},
                                        {"one": str(tmp_path / "one"), "two": str(tmp_path / part)}, "/images",
                                        str(tmp_path / "final")) is None, part
    assert verdict.combine_verdicts({"one": "/models/1", "two": "/models/2"}, {"one": str(tmp_path / "one")},
                                    "/images", str(tmp_path / "final")) is None
    assert not (tmp_path / "final").exists()
