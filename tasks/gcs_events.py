"""GCS object notifications -> Prefect ``gcs.object.finalized`` events.

An upload is identified by bucket, object name and generation; its Prefect event id is a
uuid5 of those three, so every delivery of the same upload yields the same event id.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import uuid

from tasks.errors import HotdogInputError

EVENT_NAME = "gcs.object.finalized"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/hotdog-flows/gcs-object-finalized")


@dataclasses.dataclass(frozen=True)
class Upload:
    """One finalized object version: ``size`` in bytes, ``generation`` as GCS reports it."""
    bucket: str
    name: str
    generation: str
    size: int

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"

    @property
    def event_id(self) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"{self.bucket}/{self.name}#{self.generation}"))


@dataclasses.dataclass(frozen=True)
class UploadFilter:
    """Which uploads are training data: one bucket, a name prefix, name suffixes, a size cap."""
    bucket: str
    prefix: str = ""
    suffixes: tuple[str, ...] = (".tfrecord", ".tfrecord.gz")
    max_bytes: int = 2 * 2**30

    def rejection(self, upload: Upload) -> str | None:
        """Why ``upload`` must not trigger retraining, or None when it should."""
        if upload.bucket != self.bucket:
            return f"bucket {upload.bucket!r} is not the watched bucket {self.bucket!r}"
        if not upload.name.startswith(self.prefix):
            return f"{upload.name!r} is outside the prefix {self.prefix!r}"
        if unsafe_name(upload.name):
            return f"{upload.name!r} has an unsafe path segment"
        if not upload.name.endswith(self.suffixes):
            return f"{upload.name!r} does not end with {' or '.join(self.suffixes)}"
        if upload.size <= 0:
            return f"{upload.name!r} is empty"
        if upload.size > self.max_bytes:
            return f"{upload.name!r} is {upload.size} bytes, over the {self.max_bytes}-byte limit"
        return None


def unsafe_name(name: str) -> bool:
    """True for names that could escape a folder if ever joined to a local path."""
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or "\0" in name or any(p in (".", "..") for p in parts)


def from_notification(attributes: dict[str, str], data: bytes) -> Upload | None:
    """The upload a GCS Pub/Sub notification (JSON_API_V1) reports; None for other event types.

    Raises HotdogInputError naming the missing or malformed field.
    """
    event_type = attributes.get("eventType")
    if event_type is None:
        raise HotdogInputError("notification has no 'eventType' attribute: not a GCS notification")
    if event_type != "OBJECT_FINALIZE":
        return None
    try:
        bucket, name, generation = (attributes[k] for k in ("bucketId", "objectId", "objectGeneration"))
    except KeyError as missing:
        raise HotdogInputError(f"notification lacks the {missing} attribute") from None
    size = 0
    if data:
        try:
            size = int(json.loads(data).get("size", 0))
        except (ValueError, AttributeError, TypeError):
            raise HotdogInputError(f"notification for {bucket}/{name}: its data is not object metadata "
                                   "JSON with an integer 'size'") from None
    if not generation.isdigit():
        raise HotdogInputError(f"notification for {bucket}/{name}: objectGeneration {generation!r} "
                               "is not a number")
    return Upload(bucket, name, generation, size)


def prefect_event(upload: Upload, occurred: datetime.datetime | None = None) -> dict:
    """The Prefect event (REST API JSON) announcing ``upload``."""
    occurred = occurred or datetime.datetime.now(datetime.timezone.utc)
    return {"id": upload.event_id, "occurred": occurred.isoformat(), "event": EVENT_NAME,
            "resource": {"prefect.resource.id": f"gcs.object.{upload.bucket}.{upload.name}",
                         "gcs.bucket": upload.bucket, "gcs.name": upload.name},
            "payload": {"uri": upload.uri, "bucket": upload.bucket, "name": upload.name,
                        "generation": upload.generation, "size": upload.size}}
