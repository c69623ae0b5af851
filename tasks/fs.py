"""One filesystem layer for local paths and gs:// URIs (fsspec/gcsfs).

All paths in the project are strings: a local path, ``file://...`` or ``gs://bucket/...``.
Writes go to a temporary name first and are renamed (local) or uploaded whole (GCS),
so a reader never sees a half-written file.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
import uuid
from typing import Iterator

import fsspec


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the filesystem for ``uri`` and the path inside it (no protocol for local)."""
    fs, path = fsspec.core.url_to_fs(uri, **(_gcs_options() if uri.startswith("gs://") else {}))
    return fs, path


def _gcs_options(**extra) -> dict:
    options = {"use_listings_cache": False, **extra}  # several processes write: never trust a cached listing
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        options["token"] = "anon"  # emulators (fake-gcs-server) take no credentials
    return options


def pinned(uri: str, generation: str | None) -> tuple[fsspec.AbstractFileSystem, str]:
    """Like :func:`filesystem`, but a gs:// path names object version ``generation``: size and
    reads then refer to those bytes, or raise FileNotFoundError once that version is gone."""
    if not (uri.startswith("gs://") and generation):
        return filesystem(uri)
    fs, path = fsspec.core.url_to_fs(uri, **_gcs_options(version_aware=True))
    return fs, f"{path}#{generation}"


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def join(base: str, *parts: str) -> str:
    """Join path parts with '/', keeping a ``gs://`` prefix intact."""
    return posixpath.join(base.rstrip("/"), *parts)


def to_uri(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """Inverse of :func:`filesystem`: the URI for ``path`` on ``fs``."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        return path
    return f"{protocol}://{path}" if protocol != "gs" else f"gs://{path}"


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with fs.open(path, "rb") as handle:
        return handle.read()


def read_many(uris: list[str]) -> list[bytes | Exception]:
    """The bytes of each of ``uris`` (all on one filesystem), or the exception reading it raised,
    in order. One filesystem lookup for all; on gs:// the reads run concurrently."""
    if not uris:
        return []
    if not is_remote(uris[0]):  # plain reads: a third of the time of fsspec's per-file wrapper here
        return [_read_local(fsspec.core.strip_protocol(uri)) for uri in uris]
    fsys, _ = filesystem(uris[0])
    paths = [fsspec.core.strip_protocol(uri) for uri in uris]
    return fsys.cat_ranges(paths, None, None, on_error="return")


def _read_local(path: str) -> bytes | OSError:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        return error


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)


def partial_name(path: str) -> str:
    """A hidden temporary name beside ``path`` that keeps none of its name, so no data glob
    (``*/*.tfrecord*``) ever matches a file a killed writer left behind."""
    return os.path.join(os.path.dirname(path), f".partial-{uuid.uuid4().hex}")


def write_bytes_atomic(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri`` so that readers see either the old or the whole new file."""
    fs, path = filesystem(uri)
    if is_remote(uri):
        fs.pipe_file(path, data)  # a GCS object appears only once the upload completes
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = partial_name(path)
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def put_file_atomic(local_path: str, uri: str) -> None:
    """Move a finished local file to ``uri`` (rename locally, upload to GCS)."""
    fs, path = filesystem(uri)
    if is_remote(uri):
        fs.put_file(local_path, path)
        os.remove(local_path)
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = partial_name(path)
    shutil.move(local_path, tmp)  # a rename on one device, a copy across devices
    os.replace(tmp, path)


def local_scratch_file(suffix: str = "") -> str:
    """A fresh, unguessable local temporary file name, not created yet (the caller creates it, then
    removes or moves it): ext4 starts writing back a file that is truncated and written again
    as soon as it is closed (its auto_da_alloc), 0.15-0.3 s for 200 MB."""
    return os.path.join(tempfile.gettempdir(), f"hotdog-{uuid.uuid4().hex}{suffix}")


def scratch_for(uri: str, suffix: str = "") -> str:
    """Where to write a file bound for ``uri`` before :func:`put_file_atomic` moves it there: a
    partial name beside a local destination (the move is a rename on one device), else a
    local scratch file."""
    if is_remote(uri):
        return local_scratch_file(suffix)
    path = filesystem(uri)[1]
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return partial_name(path)


def move(src_uri: str, dst_uri: str) -> None:
    """Rename ``src_uri`` to ``dst_uri`` on the same filesystem (atomic locally)."""
    fs, src = filesystem(src_uri)
    _, dst = filesystem(dst_uri)
    if is_remote(src_uri):
        fs.mv(src, dst, recursive=True)
        return
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    os.replace(src, dst)


def remove(uri: str, recursive: bool = False) -> None:
    fs, path = filesystem(uri)
    if fs.exists(path):
        fs.rm(path, recursive=recursive)


def list_files(uri: str) -> Iterator[str]:
    """Every file (not folder) under ``uri``, recursively, as URIs in sorted order."""
    fs, path = filesystem(uri)
    for found in sorted(fs.find(path)):
        yield to_uri(fs, found)
