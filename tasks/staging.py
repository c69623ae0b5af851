"""Atomic publication of a folder of outputs (local or gs://).

A job writes into ``<out>/.staging-<id>/``; :func:`commit` then moves each file to its
final name, deletes outputs of an earlier run that the new run did not produce, and
writes the completion marker last. Readers trust a folder only when its marker exists,
so an interrupted run never looks complete.
"""
from __future__ import annotations

import fnmatch
import json
import uuid

from tasks import fs

STAGING_PREFIX = ".staging-"


def begin(out: str, marker: str) -> str:
    """Invalidate ``out/marker``, clear abandoned staging folders, return a new staging URI."""
    fs.remove(fs.join(out, marker))
    fsys, path = fs.filesystem(out)
    if fsys.exists(path):
        for entry in fsys.ls(path, detail=False):
            if entry.rstrip("/").rsplit("/", 1)[-1].startswith(STAGING_PREFIX):
                fsys.rm(entry, recursive=True)
    return fs.join(out, f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}")


def commit(out: str, staging: str, files: list[str], marker: str, marker_doc: dict,
           owned_patterns: tuple[str, ...]) -> None:
    """Publish ``files`` (paths relative to ``staging``) into ``out``, then write the marker.

    Files under ``out`` matching ``owned_patterns`` (glob, relative) that the new run did
    not produce are outputs of an earlier run and are deleted; nothing else is touched.
    """
    new = set(files)
    for uri in list(fs.list_files(out)):
        rel = _relative(out, uri)
        if rel.startswith(STAGING_PREFIX) or rel in new:
            continue
        if any(fnmatch.fnmatch(rel, pattern) for pattern in owned_patterns):
            fs.remove(uri)
    for rel in files:
        fs.move(fs.join(staging, rel), fs.join(out, rel))
    fs.remove(staging, recursive=True)
    fs.write_bytes_atomic(fs.join(out, marker), dump_json(marker_doc))


def dump_json(doc: dict) -> bytes:
    """Canonical JSON (sorted keys, 2-space indent, trailing newline) for stable outputs."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _relative(root: str, uri: str) -> str:
    fsys, root_path = fs.filesystem(root)
    _, path = fs.filesystem(uri)
    return path[len(root_path.rstrip("/")) + 1:]
