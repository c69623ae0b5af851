"""A work folder's model registry as TF Serving sees it, plus what serving adds beside it.

    <workdir>/registry/<version>/               a pushed (blessed) SavedModel; TFX's Pusher names
                                                versions by the push's Unix time and copies
                                                ``saved_model.pb`` last, so a version is complete
                                                once that file exists (TF Serving's rule)
    <workdir>/registry/<version>.lineage.json   what produced it (tasks.training.lineage)
    <workdir>/serving/pin.json                  the version every model server serves instead of
                                                the latest (``hotdog models pin``)
    <workdir>/serving/served-<host>-<port>.json the version a running server serves (its own record)

Paths are local or gs:// (tasks.fs).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import socket

from tasks import fs, training
from tasks.errors import HotdogInputError

PIN_FILE = "pin.json"
SERVED_PREFIX = "served-"


def registry_dir(workdir: str) -> str:
    return training.paths(workdir)["registry"]


def serving_dir(workdir: str) -> str:
    return fs.join(workdir, "serving")


def version_dir(workdir: str, version: str) -> str:
    return fs.join(registry_dir(workdir), version)


def is_complete(workdir: str, version: str) -> bool:
    """Whether the Pusher has finished copying ``version`` (its saved_model.pb exists)."""
    return fs.exists(fs.join(version_dir(workdir, version), "saved_model.pb"))


def complete_versions(workdir: str) -> list[str]:
    """The registry's complete versions, oldest first."""
    return [v for v in training.pushed_versions(workdir) if is_complete(workdir, v)]


def lineage(workdir: str, version: str) -> dict | None:
    path = version_dir(workdir, version) + ".lineage.json"
    return json.loads(fs.read_bytes(path)) if fs.exists(path) else None


def pushed_at(version: str) -> str:
    """The push time encoded in a Pusher version (Unix seconds), ISO 8601 UTC."""
    return datetime.datetime.fromtimestamp(int(version), datetime.timezone.utc).isoformat(timespec="seconds")


def pinned(workdir: str) -> str | None:
    path = fs.join(serving_dir(workdir), PIN_FILE)
    return json.loads(fs.read_bytes(path))["version"] if fs.exists(path) else None


def check_version(workdir: str, version: str) -> None:
    """HotdogInputError unless ``version`` is a complete version of the registry."""
    versions = training.pushed_versions(workdir)
    if version not in versions:
        listed = ", ".join(versions) or "none"
        raise HotdogInputError(f"version {version!r} is not in {registry_dir(workdir)} (versions: {listed})")
    if not is_complete(workdir, version):
        raise HotdogInputError(f"version {version} in {registry_dir(workdir)} is incomplete (no saved_model.pb)")


def pin(workdir: str, version: str) -> None:
    """Make every model server of ``workdir`` serve ``version`` (they follow within seconds)."""
    check_version(workdir, version)
    fs.write_bytes_atomic(fs.join(serving_dir(workdir), PIN_FILE),
                          (json.dumps({"version": version, "pinned_at": utc_now()}) + "\n").encode())


def unpin(workdir: str) -> str | None:
    """Remove the pin; the servers go back to the latest version. Returns the version that was pinned."""
    was = pinned(workdir)
    fs.remove(fs.join(serving_dir(workdir), PIN_FILE))
    return was


@dataclasses.dataclass(frozen=True)
class ServedRecord:
    """One running server's own record of what it serves."""

    version: str
    model_name: str
    url: str
    host: str
    pid: int
    since: str

    def alive(self) -> bool:
        """False only when the server ran on this host and its process is gone."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True


def served_record_path(workdir: str, port: int) -> str:
    return fs.join(serving_dir(workdir), f"{SERVED_PREFIX}{socket.gethostname()}-{port}.json")


def write_served(workdir: str, port: int, record: ServedRecord) -> None:
    fs.write_bytes_atomic(served_record_path(workdir, port), (json.dumps(dataclasses.asdict(record)) + "\n").encode())


def served(workdir: str) -> list[ServedRecord]:
    """The records of the servers of ``workdir`` that are still running."""
    folder = serving_dir(workdir)
    if not fs.exists(folder):
        return []
    records = []
    for uri in fs.list_files(folder):
        if uri.rsplit("/", 1)[-1].startswith(SERVED_PREFIX) and uri.endswith(".json"):
            try:
                records.append(ServedRecord(**json.loads(fs.read_bytes(uri))))
            except (OSError, ValueError, TypeError):
                continue  # a record being replaced or left by another version of the server
    return [r for r in records if r.alive()]


def describe(workdir: str) -> list[dict]:
    """One row per version, oldest first: pushed at, data sets, accuracy, the evaluation that
    blessed it, served, pinned."""
    serving = {r.version for r in served(workdir)}
    pin_version = pinned(workdir)
    rows = []
    for version in training.pushed_versions(workdir):
        info = lineage(workdir, version) or {}
        rows.append({"version": version, "pushed_at": pushed_at(version), "complete": is_complete(workdir, version),
                     "data_sets": info.get("data_sets"), "classes": info.get("classes"),
                     "accuracy": info.get("accuracy"), "blessed_by": blessed_by(info),
                     "served": version in serving, "pinned": version == pin_version})
    return rows


def blessed_by(info: dict) -> str | None:
    """The evaluation that blessed a model, from its lineage, as a phrase."""
    evaluated, parameters = info.get("evaluated_on"), info.get("parameters") or {}
    if not evaluated:
        return None
    gate = [f"accuracy >= {parameters['min_accuracy']:g}" if "min_accuracy" in parameters else None,
            f"<= {parameters['max_regression']:g} below the previous" if "max_regression" in parameters else None]
    return (f"{evaluated.get('examples'):g} eval examples of {', '.join(evaluated.get('data_sets') or [])}"
            + (f" ({', '.join(g for g in gate if g)})" if any(gate) else ""))


def remove(workdir: str, version: str) -> None:
    """Delete ``version`` and its lineage; refused for the pinned version and for one a running
    server serves. The folder is renamed out of the version namespace first, so no server ever
    loads a half-deleted model."""
    check_version(workdir, version)
    if version == pinned(workdir):
        raise HotdogInputError(f"version {version} is pinned: 'hotdog models unpin' first")
    serving = [r for r in served(workdir) if r.version == version]
    if serving:
        raise HotdogInputError(f"version {version} is served by {serving[0].url} (pid {serving[0].pid}): pin another "
                               f"version first ('hotdog models pin VERSION')")
    doomed = fs.join(registry_dir(workdir), f".removing-{version}")
    fs.move(version_dir(workdir, version), doomed)
    fs.remove(doomed, recursive=True)
    fs.remove(version_dir(workdir, version) + ".lineage.json")


def utc_now() -> str:
    """Now, ISO 8601 UTC to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
