"""Experiment files: the demo is one, and every bad field is named in one line."""
import re

import pytest
import yaml

from tasks import dataset_config, experiment
from tasks.errors import HotdogInputError


def test_the_demo_is_an_experiment_file():
    demo = experiment.load()
    assert demo.path == experiment.DEFAULT_EXPERIMENT
    assert list(demo.steps) == ["baseline", "taco_bias", "sandwich_bias"]
    assert demo.data_sets() == ["baseline", "taco_bias", "sandwich_bias"]
    assert demo.datasets_config.endswith("data/experiments/../datasets.yaml")
    assert demo.judged("/images") == "/images/hot dog"
    assert demo.reference["models"]["taco_bias"]["taco"] == 0.749
    assert demo.train.max_regression == 0.01 and demo.train.epochs == 20
    assert demo.repeats == 1


def write(tmp_path, **fields):
    doc = {"datasets": dataset_config.DEFAULT_CONFIG, "judge": "hot dog", "steps": {"baseline": ["baseline"]},
           **fields}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in doc.items() if v is not None}, allow_unicode=True))
    return str(path)


@pytest.mark.parametrize("fields, field, problem", [
    ({"steps": {"one": ["nope"]}}, "steps.one", r"names data set\(s\) \['nope'\] that .* does not define"),
    ({"steps": {"one": []}}, "steps.one", "must be a non-empty list"),
    ({"steps": None}, "steps", "must map each step"),
    ({"repeats": 0}, "repeats", "must be an integer >= 1, got 0"),
    ({"repeats": "five"}, "repeats", "must be an integer >= 1"),
    ({"judge": None}, "judge", "must name the folder of images to judge"),
    ({"datasets": "missing.yaml"}, None, "data-set config not found: .*missing.yaml"),
    ({"train": {"epochs": 0}}, "train", "--epochs must be an integer >= 1"),
    ({"train": {"learning": 1}}, "train.learning", "is not a training setting"),
    ({"reference": {"label": "x", "models": {"baseline": {"food": 2}}}}, "reference.models.baseline",
     "must give a probability"),
    ({"reference": {"label": "x", "models": {"other": {}}}}, "reference.models.other", "is not a step"),
    ({"colour": "red"}, "colour", "is not known"),
])
def test_a_bad_field_is_named_with_the_file(tmp_path, fields, field, problem):
    path = write(tmp_path, **fields)
    with pytest.raises(HotdogInputError) as err:
        experiment.load(path)
    prefix = f"experiment file {path}: field '{field}' " if field else ""
    assert str(err.value).startswith(prefix), str(err.value)
    assert re.search(problem, str(err.value)), str(err.value)


def test_paths_are_relative_to_the_file_and_judge_to_the_source(tmp_path):
    (tmp_path / "sets.yaml").write_bytes(open(dataset_config.DEFAULT_CONFIG, "rb").read())
    path = write(tmp_path, datasets="sets.yaml", source="images", judge="judge me")
    plan = experiment.load(path)
    assert plan.datasets_config == str(tmp_path / "sets.yaml")
    assert plan.source == str(tmp_path / "images")
    assert plan.judged(plan.source) == str(tmp_path / "images" / "judge me")
    assert plan.title == "exp"


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(HotdogInputError, match="experiment file not found: .*nope.yaml"):
        experiment.load(str(tmp_path / "nope.yaml"))
