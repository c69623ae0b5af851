"""`hotdog bridge` as a process against the stack's real Prefect server: killed mid-stream and
restarted, it neither loses nor repeats an upload, in Pub/Sub mode and in polling mode; bad
notifications are logged and skipped. Buckets here match no deployment trigger, so the events
are counted on the server and no retraining runs."""
import signal
import subprocess
import sys
import time

import pytest

from tasks import emulators
from tests.e2e.conftest import PROJECT, TOPIC, server_events

pytestmark = pytest.mark.slow


class BridgeProcess:
    """One `hotdog bridge` process after another, on the same ledger, logging to numbered files."""

    def __init__(self, tmp_path, url, bucket, extra):
        self.args = [sys.executable, "-m", "flows.cli", "bridge", "--bucket", bucket, "--api-url", url,
                     "--ledger", str(tmp_path / "ledger.sqlite"), *extra]
        self.tmp_path, self.logs, self.proc = tmp_path, [], None

    def start(self):
        log = self.tmp_path / f"bridge-{len(self.logs)}.log"
        self.logs.append(log)
        self.proc = subprocess.Popen(self.args, stdout=open(log, "wb"), stderr=subprocess.STDOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def crash(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0
        return self.text()

    def text(self):
        return "".join(log.read_text() for log in self.logs)


def wait_for_events(url, bucket, count, bridge, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = server_events(url, f"gcs.object.{bucket}.")
        if len(events) >= count:
            return events
        time.sleep(1)
    pytest.fail(f"the server holds {len(events)} of {count} events for {bucket}; bridge log:\n{bridge.text()}")


@pytest.mark.parametrize("mode", ["pubsub", "poll"])
def test_a_crashed_bridge_restarts_without_loss_or_repeat(mode, stack, gcs, tmp_path):
    bucket = f"restart-{mode}"
    gcs.mkdir(bucket)
    if mode == "pubsub":  # the subscription exists before the bridge first starts: nothing is missed
        extra = ["--subscription", emulators.create_subscription(PROJECT, TOPIC, bucket)]
        expected = {"before", "a", "b", "c", "d", "e"}
    else:  # polling: what is there at the first start is the baseline
        extra = ["--interval", "0.5"]
        expected = {"a", "b", "c", "d", "e"}
    gcs.pipe(f"{bucket}/before.tfrecord", b"uploaded before the bridge first started")
    with BridgeProcess(tmp_path, stack["url"], bucket, extra) as bridge:
        bridge.start()
        if mode == "poll":
            wait_for_log(bridge, "baseline: 1 object(s)")
        for name in ("a", "b"):
            gcs.pipe(f"{bucket}/{name}.tfrecord", b"record " + name.encode())
        wait_for_events(stack["url"], bucket, len(expected) - 3, bridge)
        bridge.crash()
        for name in ("c", "d"):
            gcs.pipe(f"{bucket}/{name}.tfrecord", b"record " + name.encode())  # while the bridge is down
        bridge.start()
        gcs.pipe(f"{bucket}/e.tfrecord", b"record e")
        # the emulator may first hold c and d for the killed subscriber's stream until their lease runs out
        wait_for_events(stack["url"], bucket, len(expected), bridge, timeout=240)
        time.sleep(3)  # a repeat, if any, would arrive now
        log = bridge.stop()
    events = server_events(stack["url"], f"gcs.object.{bucket}.")
    assert sorted(e["payload"]["name"] for e in events) == sorted(f"{n}.tfrecord" for n in expected)
    for name in expected:
        assert log.count(f"emitted gs://{bucket}/{name}.tfrecord ") == 1, log


def wait_for_log(bridge, text, timeout=60):
    deadline = time.monotonic() + timeout
    while text not in bridge.text():
        assert time.monotonic() < deadline, f"the bridge never logged {text!r}:\n{bridge.text()}"
        time.sleep(0.3)


def test_malformed_notifications_are_logged_and_the_bridge_goes_on(stack, gcs, tmp_path):
    from google.cloud import pubsub_v1

    bucket = "malformed-test"
    gcs.mkdir(bucket)
    subscription = emulators.create_subscription(PROJECT, TOPIC, bucket)
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(PROJECT, TOPIC)
    with BridgeProcess(tmp_path, stack["url"], bucket, ["--subscription", subscription]) as bridge:
        bridge.start()
        publisher.publish(topic, b"{}", note="not from GCS").result(timeout=30)
        publisher.publish(topic, b"not json", eventType="OBJECT_FINALIZE", bucketId=bucket,
                          objectId="x.tfrecord", objectGeneration="5").result(timeout=30)
        publisher.publish(topic, b'{"size": "10"}', eventType="OBJECT_FINALIZE", bucketId=bucket,
                          objectId="../../etc/passwd.tfrecord", objectGeneration="6").result(timeout=30)
        gcs.pipe(f"{bucket}/good.tfrecord", b"a record")
        events = wait_for_events(stack["url"], bucket, 1, bridge)
        time.sleep(2)
        log = bridge.stop()
    assert [e["payload"]["name"] for e in events] == ["good.tfrecord"]
    assert "no 'eventType' attribute" in log and "integer 'size'" in log
    assert "'../../etc/passwd.tfrecord' has an unsafe path segment" in log
