"""Which examples train and which judge: the split is made once, when data enters the data root.

Each curated data set's images go to ``eval`` or ``train`` by the sha256 of the image bytes
(:data:`EVAL_BUCKETS` of :data:`BUCKETS`): the same image lands in the same split in every data
set and every run, so the examples a blessed model was judged on stay in the eval set, and a
new data set adds its own eval part (the outcome counts it). Uploads (``add-data``, the upload
deployments) are train-only: an upload, however labelled, never changes the yardstick.
A data root holds ``<set>/train-<file>`` and ``<set>/eval-<file>``.
"""
from __future__ import annotations

import hashlib
import logging
import os

from tasks import fs, tfrecords
from tasks.errors import HotdogInputError
from tfx_pipeline.data_layout import SPLIT_PATTERNS

log = logging.getLogger("hotdog.training")
TRAIN, EVAL = "train", "eval"
BUCKETS, EVAL_BUCKETS = 3, 1
RULE = (f"the eval part of each curated data set ({EVAL_BUCKETS} image in {BUCKETS}, by its sha256); uploads are "
        f"train-only")


def split_of(image: bytes) -> str:
    return EVAL if int(hashlib.sha256(image).hexdigest(), 16) % BUCKETS < EVAL_BUCKETS else TRAIN


def split_records(records) -> dict[str, list[bytes]]:
    """Serialized Examples routed to train and eval by their ``image``."""
    tf = tfrecords._tf()
    parts: dict[str, list[bytes]] = {TRAIN: [], EVAL: []}
    for record in records:
        image = tf.train.Example.FromString(record).features.feature["image"].bytes_list.value[0]
        parts[split_of(image)].append(record)
    return parts


def stage_file(source: str, folder: str, name: str) -> dict[str, int]:
    """Split the TFRecord file ``source`` into ``folder/train-<name>`` and ``folder/eval-<name>``
    (a split with no example gets no file); files already holding the same records are kept.
    Returns the example count per split."""
    parts = split_records(tfrecords.read_file(source))
    for split, records in parts.items():
        destination = fs.join(folder, f"{split}-{name}")
        if records and not (fs.exists(destination) and list(tfrecords.read_file(destination)) == records):
            tfrecords.write_file(records, destination, gzip=name.endswith(".gz"))
    return {split: len(records) for split, records in parts.items()}


def split_name(name: str) -> str | None:
    """``train`` or ``eval`` for a data-root file name, None for one of another layout."""
    head = name.split("-", 1)[0]
    return head if head in (TRAIN, EVAL) and "-" in name else None


def migrate(data_root: str, uploads_folder: str) -> list[str]:
    """Bring files of the layout before splits (``<set>/<file>``) to this one: uploads become
    train-only, curated files are split; returns what was migrated."""
    if not os.path.isdir(data_root):
        return []
    moved = []
    for folder in sorted(os.listdir(data_root)):
        path = os.path.join(data_root, folder)
        if not os.path.isdir(path):
            continue
        for name in sorted(os.listdir(path)):
            if ".tfrecord" not in name or name.startswith(".") or split_name(name):
                continue
            if folder == uploads_folder:
                os.replace(os.path.join(path, name), os.path.join(path, f"{TRAIN}-{name}"))
            else:
                try:
                    stage_file(os.path.join(path, name), path, name)
                except Exception as err:  # noqa: BLE001 - whatever TensorFlow raises for a broken file
                    raise HotdogInputError(f"{os.path.join(path, name)}: cannot split this file of the earlier "
                                           f"layout into train-/eval- files ({type(err).__name__}: "
                                           f"{str(err).strip()[:200]}); move it out of the data root") from None
                os.remove(os.path.join(path, name))
            moved.append(f"{folder}/{name}")
    if moved:
        log.info("data root %s: split %d file(s) of the earlier layout into train-/eval- files: %s", data_root,
                 len(moved), ", ".join(moved))
    return moved
