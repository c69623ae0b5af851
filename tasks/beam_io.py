"""Beam writers that put each output file under its final name from a DoFn.

No sink finalisation is involved (Beam's file sinks do not finalise on the Dask runner),
and every file is written whole and renamed/uploaded atomically, so re-runs are
idempotent and the same code runs on every runner.
"""
from __future__ import annotations

import hashlib
import json

import apache_beam as beam

from tasks import fs, tfrecords


def write_sorted_records(keyed, gzip: bool = False, batched: bool = False):
    """Group (destination URI, [(sort_key, record), ...]) -> one TFRecord file, sorted by key.

    With ``batched`` the group holds lists of (sort_key, record)."""
    uri, items = keyed
    if batched:
        items = [item for batch in items for item in batch]
    items = sorted(items, key=lambda item: item[0])
    count = tfrecords.write_file((record for _, record in items), uri, gzip=gzip)
    yield {"uri": uri, "records": count}


def write_json_lines(keyed, uri: str, sort_key: str, batched: bool = False):
    """Group (any key, [dict, ...]) -> JSON-lines file at ``uri`` sorted by ``sort_key``.

    With ``batched`` the group holds lists of dicts.
    """
    _, rows = keyed
    if batched:
        rows = [row for batch in rows for row in batch]
    lines = [json.dumps(row, sort_keys=True, ensure_ascii=False) for row in sorted(rows, key=lambda r: r[sort_key])]
    fs.write_bytes_atomic(uri, ("\n".join(lines) + "\n").encode() if lines else b"")
    yield uri


def collect_json_lines(pcoll, label: str, uri: str, sort_key: str, batched: bool = False):
    """Write every dict of ``pcoll`` (lists of dicts if ``batched``) into one JSON-lines file."""
    return (pcoll | f"{label}Key" >> beam.Map(lambda row: (None, row))
            | f"{label}Group" >> beam.GroupByKey()
            | f"{label}Write" >> beam.FlatMap(write_json_lines, uri, sort_key, batched))


def join_leaves(*pcolls):
    """Merge the pipeline's final outputs into one last transform.

    Beam's DaskRunner (2.74) computes only the graph behind the last transform applied,
    so every write must feed this single leaf or it silently never runs there.
    """
    return pcolls | "AllWritten" >> beam.Flatten() | "Done" >> beam.Map(lambda written: written)


def digest(values) -> str:
    """sha256 over sorted strings, one per line: an order-independent fingerprint."""
    return hashlib.sha256("\n".join(sorted(values)).encode()).hexdigest()


def select(kind):
    """FlatMap fn keeping the payloads of ('kind', payload) pairs tagged ``kind``."""
    return lambda tagged: [tagged[1]] if tagged[0] == kind else []
