"""Download the original project's public image set (rseeto/mlops_hot_dog_classifier, MIT).

Every file of the shipped checksum list (``data/hotdog-images.sha256``: ``<sha256>  ./<category>/<file>``)
is fetched from ``<base URL>/data/intermediary/<category>/<file>`` in parallel, verified, and
renamed into ``<dest>/<category>/<file>``; a file already there with the right checksum is
not fetched again. ``<dest>/.complete`` is written last, only when every file is verified.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import os
import threading
import time
import urllib.parse
import uuid
from typing import Callable

DEFAULT_BASE_URL = ("https://raw.githubusercontent.com/rseeto/mlops_hot_dog_classifier/"
                    "f70ea8746d57b0ea2f4c7440d4dded4d65dede1e")
CHECKSUMS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "hotdog-images.sha256")
REMOTE_PREFIX = "data/intermediary"
COMPLETE = ".complete"
CHECKSUM_ATTEMPTS = 2  # a file whose bytes do not match is fetched once more, then reported
TRANSPORT_ATTEMPTS = 4  # connection errors, time-outs and 5xx answers: retried with back-off


class FetchError(RuntimeError):
    """The download could not be completed; the message names the files or the server."""


@dataclasses.dataclass
class FetchResult:
    dest: str
    files: int
    downloaded: int
    already_present: int
    retried: list[str]
    seconds: float


def read_checksums(path: str = CHECKSUMS) -> dict[str, str]:
    """``<category>/<file>`` -> sha256 from a ``sha256sum`` listing."""
    sums = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            digest, _, rel = line.rstrip("\n").partition("  ")
            rel = rel[2:] if rel.startswith("./") else rel
            parts = rel.split("/")
            if len(digest) != 64 or len(parts) != 2 or any(p in ("", ".", "..") for p in parts):
                raise FetchError(f"{path}:{number}: not a '<sha256>  ./<category>/<file>' line: {line.strip()!r}")
            sums[rel] = digest
    return sums


def is_complete(dest: str, checksums: str = CHECKSUMS) -> bool:
    """True when ``dest`` holds a verified download of the list ``checksums``."""
    try:
        with open(os.path.join(dest, COMPLETE)) as handle:
            return handle.read().strip() == _file_sha256(checksums)
    except OSError:
        return False


def _file_sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _matches(path: str, digest: str) -> bool:
    try:
        return _file_sha256(path) == digest
    except OSError:
        return False


def fetch(dest: str, base_url: str = DEFAULT_BASE_URL, checksums: str = CHECKSUMS, workers: int = 8,
          on_file: Callable[[str], None] | None = None, timeout: float = 30) -> FetchResult:
    """Make ``dest`` a verified copy of the image set; ``on_file(rel)`` is called as each file is done.
    Raises FetchError naming the files that stayed wrong or the server that could not be reached."""
    import httpx

    started = time.monotonic()
    sums = read_checksums(checksums)
    marker = os.path.join(dest, COMPLETE)
    if os.path.exists(marker):
        os.remove(marker)
    todo = [rel for rel in sorted(sums) if not _matches(os.path.join(dest, rel), sums[rel])]
    for rel in sorted(set(sums) - set(todo)):
        if on_file:
            on_file(rel)
    retried, failures, lock = [], {}, threading.Lock()
    unreachable = threading.Event()

    def get(client, rel: str) -> None:
        url = f"{base_url.rstrip('/')}/{REMOTE_PREFIX}/{urllib.parse.quote(rel)}"
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        for attempt in range(1, CHECKSUM_ATTEMPTS + 1):
            if unreachable.is_set():
                return
            scratch = f"{target}.part-{uuid.uuid4().hex}"
            try:
                data = _download(client, url)
                if hashlib.sha256(data).hexdigest() == sums[rel]:
                    with open(scratch, "wb") as handle:
                        handle.write(data)
                    os.replace(scratch, target)
                    break
                problem = f"checksum mismatch ({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]}..., " \
                          f"expected {sums[rel][:12]}...)"
            except _Unreachable as err:
                unreachable.set()
                problem = str(err)
            finally:
                if os.path.exists(scratch):
                    os.remove(scratch)
            if attempt < CHECKSUM_ATTEMPTS and not unreachable.is_set():
                with lock:
                    retried.append(rel)
                continue
            with lock:
                failures[rel] = problem
            return
        if on_file:
            on_file(rel)

    with httpx.Client(timeout=timeout, follow_redirects=True) as client, \
            concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        for future in [pool.submit(get, client, rel) for rel in todo]:
            future.result()
    if failures:
        if unreachable.is_set():
            reason = next(iter(failures.values()))
            raise FetchError(f"cannot download the image set from {base_url}: {reason}")
        listed = "; ".join(f"{rel}: {why}" for rel, why in sorted(failures.items())[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        raise FetchError(f"{len(failures)} of {len(sums)} files could not be verified{more}: {listed}")
    tmp = f"{marker}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "w") as handle:
        handle.write(_file_sha256(checksums) + "\n")
    os.replace(tmp, marker)
    return FetchResult(dest=dest, files=len(sums), downloaded=len(todo), already_present=len(sums) - len(todo),
                       retried=sorted(retried), seconds=round(time.monotonic() - started, 1))


class _Unreachable(Exception):
    """The server did not answer usefully after every transport retry."""


def _download(client, url: str) -> bytes:
    """The body of ``url``; transport errors and 5xx answers are retried with back-off."""
    import httpx

    for attempt in range(1, TRANSPORT_ATTEMPTS + 1):
        try:
            response = client.get(url)
            if response.status_code < 500:
                if response.status_code != 200:
                    raise _Unreachable(f"{url} answered HTTP {response.status_code}")
                return response.content
            problem = f"{url} answered HTTP {response.status_code}"
        except httpx.TransportError as err:
            problem = f"{url}: {type(err).__name__}: {err}"
        if attempt < TRANSPORT_ATTEMPTS:
            time.sleep(0.2 * 2 ** attempt)
    raise _Unreachable(problem)
