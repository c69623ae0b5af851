"""The one validated way for an uploaded TFRecord file into a data root.

Every record must be a tf.train.Example with one ``image`` (bytes that TensorFlow decodes,
within the ingestion pixel limit) and a one-hot int64 ``label`` as wide as the data root's
labels. A file that passes lands as
``<data root>/uploads/train-<source digest>-<generation>.tfrecord[.gz]``: a name per object and
version, so equal base names never overwrite each other and an upload never replaces a
curated data set; uploads are train-only (``tasks.eval_split``). A file that fails is kept in
``<data root>/../quarantine/`` with a JSON report (file, record index, reason) and never
reaches training.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os

from tasks import eval_split, fs, images
from tasks.errors import HotdogInputError

log = logging.getLogger("hotdog.uploads")
UPLOADS = "uploads"
QUARANTINE = "quarantine"
MAX_BYTES = 2 * 2**30
CHUNK_BYTES = 8 * 2**20
IMAGE_BATCH = 64


def check_source(uri: str, bucket: str, prefix: str = "") -> None:
    """Refuse an event's ``uri`` unless it names an object ``gs://<bucket>/<prefix>...`` with no
    empty, ``.`` or ``..`` segment (an event's payload is not trusted)."""
    head = f"gs://{bucket}/"
    name = uri[len(head):] if uri.startswith(head) else ""
    segments = name.split("/")
    if not name.startswith(prefix) or any(part in ("", ".", "..") for part in segments):
        raise HotdogInputError(f"refusing {uri!r}: uploads are accepted only from gs://{bucket}/{prefix}")


def stage(uri: str, data_root: str, generation: str | None = None, max_bytes: int = MAX_BYTES,
          max_pixels: int = images.DEFAULT_MAX_PIXELS) -> str:
    """Check ``uri`` (gs:// object or path; with ``generation``, that version of the object and
    no other) record by record and copy it into ``data_root``; returns the destination.
    Re-staging the same object and generation is a no-op rewrite. The object is streamed to a
    local scratch file in chunks (memory stays bounded by one chunk and one batch of images).
    Raises HotdogInputError naming the file, the record and the reason (quarantined)."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    if not name or name in (".", "..") or not name.endswith((".tfrecord", ".tfrecord.gz")):
        raise HotdogInputError(f"refusing {uri!r}: only *.tfrecord or *.tfrecord.gz files are training data")
    if name.startswith("."):  # ".tfrecord", hidden and partial files
        raise HotdogInputError(f"refusing {uri!r}: the file name has no usable stem")
    suffix = ".tfrecord.gz" if name.endswith(".gz") else ".tfrecord"
    scratch = fs.local_scratch_file(suffix)
    try:
        content_digest = _download(uri, generation, scratch, max_bytes)
        version = generation or content_digest[:16]
        source_digest = hashlib.sha256(uri.split("#", 1)[0].encode()).hexdigest()[:16]
        try:
            count = check_records(scratch, suffix == ".tfrecord.gz", label_width(data_root), max_pixels)
        except HotdogInputError as err:
            report = _quarantine(scratch, uri, generation, data_root, f"{source_digest}-{version}{suffix}", str(err))
            raise HotdogInputError(f"refusing {uri!r}: {err}; quarantined with its report in {report}") from None
        destination = fs.join(data_root, UPLOADS, f"{eval_split.TRAIN}-{source_digest}-{version}{suffix}")
        fs.put_file_atomic(scratch, destination)
    finally:
        if os.path.exists(scratch):
            os.remove(scratch)
    log.info("staged %s (generation %s, %d records) as %s", uri, generation, count, destination)
    return destination


def _download(uri: str, generation: str | None, local_path: str, max_bytes: int) -> str:
    """Copy ``uri`` (that ``generation``) to ``local_path`` in chunks; returns its sha256.
    HotdogInputError when it passes ``max_bytes`` or that generation is gone."""
    fsys, path = fs.pinned(uri, generation)
    digest, size = hashlib.sha256(), 0
    try:
        declared = fsys.size(path)
        if declared > max_bytes:
            raise HotdogInputError(f"refusing {uri!r}: {declared} bytes is over the {max_bytes}-byte limit")
        with fsys.open(path, "rb") as source, open(local_path, "wb") as target:
            while chunk := source.read(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise HotdogInputError(f"refusing {uri!r}: over the {max_bytes}-byte limit")
                digest.update(chunk)
                target.write(chunk)
    except FileNotFoundError:
        raise HotdogInputError(f"refusing {uri!r}: generation {generation} is gone (overwritten or deleted since "
                               "its event; a newer version arrives as an upload of its own)") from None
    return digest.hexdigest()


def check_records(path: str, gzip: bool, width: int | None, max_pixels: int) -> int:
    """Number of records in the local TFRecord file ``path``; HotdogInputError names the first
    bad one. ``width``: the label width required (None: the first record's)."""
    import tensorflow as tf

    pending: list[tuple[int, bytes]] = []
    count = 0
    try:
        for count, record in enumerate(tf.data.TFRecordDataset(path, "GZIP" if gzip else ""), 1):
            image, label = _fields(record.numpy(), count - 1)
            width = width or len(label)
            if len(label) != width:
                raise HotdogInputError(f"record {count - 1}: label has {len(label)} classes, the data root has "
                                       f"{width}")
            pending.append((count - 1, image))
            if len(pending) == IMAGE_BATCH:
                _check_images(pending, max_pixels)
                pending = []
        _check_images(pending, max_pixels)
    except tf.errors.OpError as err:
        raise HotdogInputError(f"not a readable TFRecord file after {count} records ({err.message.strip()})") \
            from None
    if count == 0:
        raise HotdogInputError("the TFRecord file holds no record")
    return count


def _fields(record: bytes, index: int) -> tuple[bytes, list[int]]:
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    try:
        example = tf.train.Example.FromString(record)
    except DecodeError:
        raise HotdogInputError(f"record {index} is not a tf.train.Example") from None
    features = example.features.feature
    if "image" not in features or len(features["image"].bytes_list.value) != 1:
        raise HotdogInputError(f"record {index} has no single bytes feature 'image'")
    if "label" not in features or not features["label"].int64_list.value:
        raise HotdogInputError(f"record {index} has no int64 feature 'label'")
    label = list(features["label"].int64_list.value)
    if len(label) < 2 or sorted(set(label)) != [0, 1] or sum(label) != 1:
        raise HotdogInputError(f"record {index}: label {label} is not one-hot over at least 2 classes")
    return features["image"].bytes_list.value[0], label


def _check_images(pending: list[tuple[int, bytes]], max_pixels: int) -> None:
    for (index, _), check in zip(pending, images.inspect_images([blob for _, blob in pending], max_pixels)):
        if check.reason:
            raise HotdogInputError(f"record {index}: image is {check.reason}" +
                                   (f" ({check.detail})" if check.detail else ""))


def label_width(data_root: str) -> int | None:
    """Width of the labels ``data_root`` trains on: its class count, else its first TFRecord's
    first label, else None."""
    from tasks import class_names, tfrecords

    classes = class_names.of_data_root(data_root)
    if classes:
        return len(classes)
    for uri in fs.list_files(data_root) if fs.exists(data_root) else []:
        name = uri.rsplit("/", 1)[-1]
        if ".tfrecord" in name and not name.startswith("."):
            first = next(iter(tfrecords.read_file(uri)), None)
            if first is not None:
                return len(tfrecords.parse(first)["label"])
    return None


def _quarantine(local_path: str, uri: str, generation: str | None, data_root: str, name: str, reason: str) -> str:
    """Move the refused file (a local copy) and a JSON report beside the data root; the report's path."""
    folder = fs.join(data_root.rstrip("/").rsplit("/", 1)[0], QUARANTINE)
    fs.put_file_atomic(local_path, fs.join(folder, name))
    report = fs.join(folder, f"{name}.json")
    fs.write_bytes_atomic(report, json.dumps({"uri": uri, "generation": generation, "reason": reason},
                                             indent=2).encode())
    log.warning("quarantined %s: %s", uri, reason)
    return report
