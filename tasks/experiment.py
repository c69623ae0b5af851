"""An experiment file: what `hotdog run --experiment FILE` ingests, builds, trains step by
step (continuous training) and judges, and how its report is titled.

Relative paths in the file are relative to the file's folder, except ``judge``, which is
relative to the image source (typically one of its category folders).
"""
from __future__ import annotations

import dataclasses
import os

from tasks import dataset_config, fs
from tasks.errors import HotdogInputError
from tfx_pipeline.settings import DEFAULTS, TrainSettings

DEFAULT_EXPERIMENT = os.path.join(os.path.dirname(dataset_config.DEFAULT_CONFIG), "experiments", "hotdog.yaml")
FIELDS = ("title", "source", "review", "datasets", "judge", "steps", "repeats", "train", "reference")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """``steps``: step name -> data sets entering the data root at that step, in order;
    ``source`` None: the CLI's default image tree; ``judge``: images to judge, as written."""

    path: str
    title: str
    source: str | None
    review: str | None
    datasets_config: str
    judge: str
    steps: dict[str, tuple[str, ...]]
    repeats: int
    train: TrainSettings
    reference: dict | None

    def judged(self, source: str) -> str:
        """The images to judge, for the image tree ``source``."""
        return self.judge if os.path.isabs(self.judge) or fs.is_remote(self.judge) else fs.join(source, self.judge)

    def data_sets(self) -> list[str]:
        return list(dict.fromkeys(name for names in self.steps.values() for name in names))


def load(path: str | None = None) -> Experiment:
    """Parse and check the experiment at ``path`` (default: data/experiments/hotdog.yaml); a bad
    field raises HotdogInputError naming the file and the field."""
    path = path or DEFAULT_EXPERIMENT
    doc, fail = dataset_config.read_yaml(path, "experiment file")

    if not isinstance(doc, dict):
        fail("(top level)", "must be a mapping with at least 'datasets', 'judge' and 'steps'")
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        fail(unknown[0], f"is not known; the fields are {', '.join(FIELDS)}")
    here = os.path.dirname(os.path.abspath(path)) if not fs.is_remote(path) else path.rsplit("/", 1)[0]

    def located(field: str) -> str | None:
        value = doc.get(field)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            fail(field, f"must be a path, got {value!r}")
        return value if os.path.isabs(value) or fs.is_remote(value) else fs.join(here, value)

    config = located("datasets") or fail("datasets", "is required: the data-set config file")
    specs = dataset_config.load_config(config)
    judge = doc.get("judge")
    if not isinstance(judge, str) or not judge:
        fail("judge", "must name the folder of images to judge (relative to the image source, or absolute)")
    steps = doc.get("steps")
    if not isinstance(steps, dict) or not steps:
        fail("steps", "must map each step's name to the data sets entering the data root at that step")
    for step, names in steps.items():
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            fail(f"steps.{step}", "must be a non-empty list of data-set names")
        missing = [n for n in names if n not in specs]
        if missing:
            fail(f"steps.{step}", f"names data set(s) {missing} that {config} does not define "
                                  f"(it defines {sorted(specs)})")
    repeats = doc.get("repeats", 1)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        fail("repeats", f"must be an integer >= 1, got {repeats!r}")
    train = _train_settings(doc.get("train") or {}, fail)
    classes = next(iter(specs.values())).classes
    reference = _reference(doc.get("reference"), list(steps), classes, fail)
    title = doc.get("title", os.path.splitext(os.path.basename(path))[0])
    if not isinstance(title, str) or not title.strip():
        fail("title", f"must be a non-empty string, got {title!r}")
    return Experiment(path, title.strip(), located("source"), located("review"), config, judge,
                      {str(k): tuple(v) for k, v in steps.items()}, repeats, train, reference)


def _train_settings(values, fail) -> TrainSettings:
    if not isinstance(values, dict):
        fail("train", "must map training settings to values")
    known = [f.name for f in dataclasses.fields(TrainSettings)]
    for key in values:
        if key not in known:
            fail(f"train.{key}", f"is not a training setting; they are {', '.join(known)}")
    settings = DEFAULTS.replace(**values)
    problems = settings.problems()
    if problems:
        fail("train", problems[0])
    return settings


def _reference(value, steps: list[str], classes: tuple[str, ...], fail) -> dict | None:
    """``{label, models: {step: {class: probability}}}``, numbers printed beside ours."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("label"), str) or not isinstance(
            value.get("models"), dict):
        fail("reference", "must have a 'label' (e.g. the original project) and 'models': step -> class -> probability")
    for step, numbers in value["models"].items():
        if step not in steps:
            fail(f"reference.models.{step}", f"is not a step; the steps are {steps}")
        if not isinstance(numbers, dict) or sorted(numbers) != sorted(classes) or not all(
                isinstance(p, (int, float)) and 0 <= p <= 1 for p in numbers.values()):
            fail(f"reference.models.{step}", f"must give a probability in [0, 1] for each class of {list(classes)}")
    return {"label": value["label"], "models": value["models"]}


def check_images(experiment: Experiment, judged: str) -> None:
    """The images to judge must exist before any work starts."""
    if not fs.exists(judged):
        raise HotdogInputError(f"experiment file {experiment.path}: field 'judge': no images to judge at {judged} "
                               f"(or pass --images DIR)")
