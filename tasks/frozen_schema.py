"""The work folder's frozen schema: what every later run's data must match.

After the first blessed model, the schema SchemaGen inferred for it is written to
``<workdir>/schema/schema.pbtxt`` with the free-form features relaxed: ``image`` and ``label``
(its width: the number of classes) stay required as inferred, the ``class`` names keep their
domain, and every other feature (``sha256``, ``source``, ``category``, ...) may be absent and
take any value. Edit or delete the file on purpose to change what the data root may hold;
a deleted file is frozen again from the next blessed run.
"""
from __future__ import annotations

import hashlib

from tasks import fs

REQUIRED = ("image", "label")
CLOSED_DOMAINS = ("class",)


def path(workdir: str) -> str:
    return fs.join(workdir, "schema", "schema.pbtxt")


def relax(schema_text: str) -> str:
    """The inferred schema with everything but :data:`REQUIRED` optional and open-valued."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(schema_text, schema_pb2.Schema())
    for feature in schema.feature:
        if feature.name in REQUIRED:
            continue
        feature.ClearField("shape")
        feature.ClearField("presence")
        feature.value_count.min = 1
        feature.value_count.max = 1
        if feature.name not in CLOSED_DOMAINS:
            feature.ClearField("domain_info")
    used = {feature.domain for feature in schema.feature if feature.HasField("domain")}
    kept = [domain for domain in schema.string_domain if domain.name in used]
    del schema.string_domain[:]
    schema.string_domain.extend(kept)
    return text_format.MessageToString(schema)


def freeze(workdir: str, inferred_schema_uri: str) -> bool:
    """Write the frozen schema from SchemaGen's output folder unless one exists; True if written."""
    if fs.exists(path(workdir)):
        return False
    text = fs.read_bytes(fs.join(inferred_schema_uri, "schema.pbtxt")).decode()
    fs.write_bytes_atomic(path(workdir), relax(text).encode())
    return True


def pinned_copy(workdir: str, pipeline_root: str) -> str | None:
    """A content-addressed copy of the frozen schema under the pipeline root, for the anomalies
    gate (whose cache is keyed by the path: an edited schema gets a new one); None if unfrozen."""
    if not fs.exists(path(workdir)):
        return None
    data = fs.read_bytes(path(workdir))
    copy = fs.join(pipeline_root, "frozen_schema", hashlib.sha256(data).hexdigest()[:16], "schema.pbtxt")
    if not fs.exists(copy):
        fs.write_bytes_atomic(copy, data)
    return copy
