"""Class names as data: data-set card -> data root -> model.

A data root records its class list (label order) in ``<data root>/classes.json`` when its
first curated data set enters; every later data set must carry the same list. A model keeps
the names in its SavedModel (``assets/class_names.txt``, the ``classify`` signature) and its
lineage.
"""
from __future__ import annotations

import json

from tasks import fs
from tasks.errors import HotdogInputError

FILE = "classes.json"
MODEL_ASSET = "class_names.txt"  # tfx_pipeline.trainer.CLASS_NAMES_ASSET, without importing TensorFlow


def of_card(card: dict) -> list[str]:
    """The class names of a data-set card, in label order."""
    return [entry["name"] for entry in sorted(card["classes"], key=lambda c: c["label_index"])]


def of_data_root(data_root: str) -> list[str] | None:
    """The class list the data root holds, or None before its first data set."""
    path = fs.join(data_root, FILE)
    return json.loads(fs.read_bytes(path))["classes"] if fs.exists(path) else None


def admit(data_root: str, cards: list[dict]) -> list[str]:
    """Check that ``cards`` and the data root share one class list, record it; returns it.
    HotdogInputError names both data sets and their lists when they differ."""
    path = fs.join(data_root, FILE)
    recorded = json.loads(fs.read_bytes(path)) if fs.exists(path) else None
    first = (recorded["data_set"], recorded["classes"]) if recorded else None
    for card in cards:
        classes = of_card(card)
        if first is None:
            first = (card["name"], classes)
        elif classes != first[1]:
            where = f"already in the data root {data_root}" if recorded else "given with it"
            raise HotdogInputError(
                f"data set {card['name']!r} has classes {classes} but data set {first[0]!r} ({where}) has "
                f"{first[1]}: one data root trains one label order; build both from one data-set config, or "
                f"train them in different work folders")
    if first and not recorded:
        fs.write_bytes_atomic(path, (json.dumps({"classes": first[1], "data_set": first[0]}, ensure_ascii=False,
                                                indent=2) + "\n").encode())
    return first[1] if first else []


def of_model(model_dir: str, outputs: int) -> list[str]:
    """A SavedModel's class names (its asset; else its lineage file; else ``0``..``outputs-1``)."""
    asset = fs.join(model_dir, "assets", MODEL_ASSET)
    if fs.exists(asset):
        names = fs.read_bytes(asset).decode("utf-8").splitlines()
    else:
        lineage = model_dir.rstrip("/") + ".lineage.json"
        names = json.loads(fs.read_bytes(lineage)).get("classes") if fs.exists(lineage) else None
        names = names or [str(i) for i in range(outputs)]
    if len(names) != outputs:
        raise HotdogInputError(f"{model_dir}: {len(names)} class names for {outputs} outputs")
    return names
