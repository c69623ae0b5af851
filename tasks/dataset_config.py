"""The data-set config file: named data sets as class -> source categories."""
from __future__ import annotations

import dataclasses
import os

import yaml

from tasks import fs
from tasks.errors import HotdogInputError

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "datasets.yaml")
POLICIES = ("truncate", "keep_all")
COMPAT_MODES = ("original",)
CARD = "dataset.json"  # a data set's card, written last: the folder is complete when it exists


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One data set: ``classes[i]`` (label index i) draws from ``categories[i]``."""

    name: str
    classes: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]
    seed: int
    policy: str


def read_yaml(path: str, what: str):
    """The YAML document at ``path`` and a ``fail(field, problem)`` raising HotdogInputError
    naming ``what``, the file and the field; a missing or unparsable file is named too."""
    try:
        doc = yaml.safe_load(fs.read_bytes(path))
    except FileNotFoundError:
        raise HotdogInputError(f"{what} not found: {path}") from None
    except yaml.YAMLError as err:
        raise HotdogInputError(f"{what} {path} is not valid YAML: {err}") from None

    def fail(field: str, problem: str):
        raise HotdogInputError(f"{what} {path}: field '{field}' {problem}")

    return doc, fail


def load_config(path: str | None = None) -> dict[str, DatasetSpec]:
    """Parse and validate the config at ``path`` (default: data/datasets.yaml)."""
    path = path or DEFAULT_CONFIG
    doc, fail = read_yaml(path, "data-set config")

    if not isinstance(doc, dict):
        fail("(top level)", "must be a mapping with 'classes' and 'datasets'")
    classes = doc.get("classes")
    if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) for c in classes)
            and len(set(classes)) == len(classes)):
        fail("classes", "must list at least two distinct class names in label order")
    bad = [c for c in classes if not c.strip() or "\n" in c or "\r" in c]
    if bad:
        fail("classes", f"must be names on one line, not empty: {bad}")
    seed, policy = doc.get("seed", 123), doc.get("policy", "truncate")
    if not isinstance(seed, int):
        fail("seed", f"must be an integer, got {seed!r}")
    if policy not in POLICIES:
        fail("policy", f"must be one of {', '.join(POLICIES)}, got {policy!r}")
    datasets = doc.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        fail("datasets", "must map data-set names to class -> categories")
    specs = {}
    for name, mapping in datasets.items():
        if not isinstance(mapping, dict) or set(mapping) != set(classes):
            fail(f"datasets.{name}", f"must give categories for exactly the classes {classes}")
        categories = []
        for cls in classes:
            cats = mapping[cls]
            if not (isinstance(cats, list) and cats and all(isinstance(c, str) and c for c in cats)):
                fail(f"datasets.{name}.{cls}", "must be a non-empty list of category folder names")
            categories.append(tuple(cats))
        specs[str(name)] = DatasetSpec(str(name), tuple(classes), tuple(categories), seed, policy)
    return specs


def select(specs: dict[str, DatasetSpec], names: list[str] | None) -> list[DatasetSpec]:
    """The specs named in ``names`` (all when empty), with an error naming unknown ones."""
    if not names:
        return list(specs.values())
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise HotdogInputError(f"unknown data set(s) {unknown}; the config defines {sorted(specs)}")
    return [specs[n] for n in names]
