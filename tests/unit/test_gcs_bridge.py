"""The bridge's decisions without servers: notification parsing, filtering, event ids, the ledger."""
import json

import pytest

from tasks.errors import HotdogInputError
from tasks.gcs_bridge import Bridge
from tasks.gcs_events import Upload, UploadFilter, from_notification, prefect_event
from tasks.upload_ledger import UploadLedger

ATTRS = {"eventType": "OBJECT_FINALIZE", "bucketId": "bkt", "objectId": "data/taco_bias.tfrecord",
         "objectGeneration": "1700000000000001", "payloadFormat": "JSON_API_V1"}
DATA = json.dumps({"name": "data/taco_bias.tfrecord", "bucket": "bkt", "size": "1234"}).encode()


class RecordingEvents:
    """Stands in for the Prefect API: keeps what was posted; fails while ``down``."""

    def __init__(self):
        self.posted, self.down = [], False

    def post(self, event):
        if self.down:
            raise RuntimeError("Prefect API unreachable")
        self.posted.append(event)


def test_a_finalize_notification_becomes_an_upload():
    upload = from_notification(ATTRS, DATA)
    assert upload == Upload("bkt", "data/taco_bias.tfrecord", "1700000000000001", 1234)
    assert upload.uri == "gs://bkt/data/taco_bias.tfrecord"


def test_other_notification_types_are_not_uploads():
    assert from_notification({**ATTRS, "eventType": "OBJECT_DELETE"}, DATA) is None


@pytest.mark.parametrize("attributes, data, message", [
    ({}, DATA, "eventType"),
    ({k: v for k, v in ATTRS.items() if k != "objectId"}, DATA, "'objectId'"),
    ({**ATTRS, "objectGeneration": "abc"}, DATA, "objectGeneration 'abc'"),
    (ATTRS, b"not json", "integer 'size'"),
    (ATTRS, b'{"size": "big"}', "integer 'size'"),
    (ATTRS, b'{"size": null}', "integer 'size'"),
    (ATTRS, b'[1, 2]', "integer 'size'"),
])
def test_malformed_notifications_name_the_field(attributes, data, message):
    with pytest.raises(HotdogInputError, match=message):
        from_notification(attributes, data)


def test_event_ids_are_deterministic_per_version():
    a = Upload("bkt", "x.tfrecord", "1", 3)
    assert a.event_id == Upload("bkt", "x.tfrecord", "1", 99).event_id
    assert a.event_id != Upload("bkt", "x.tfrecord", "2", 3).event_id
    assert a.event_id != Upload("other", "x.tfrecord", "1", 3).event_id
    event = prefect_event(a)
    assert event["id"] == a.event_id and event["event"] == "gcs.object.finalized"
    assert event["resource"]["prefect.resource.id"] == "gcs.object.bkt.x.tfrecord"
    assert event["payload"] == {"uri": "gs://bkt/x.tfrecord", "bucket": "bkt", "name": "x.tfrecord",
                                "generation": "1", "size": 3}


@pytest.mark.parametrize("upload, reason", [
    (Upload("other", "data/a.tfrecord", "1", 10), "not the watched bucket"),
    (Upload("bkt", "elsewhere/a.tfrecord", "1", 10), "outside the prefix"),
    (Upload("bkt", "data/../../etc/a.tfrecord", "1", 10), "unsafe path segment"),
    (Upload("bkt", "data/a.jpeg", "1", 10), "does not end with .tfrecord or .tfrecord.gz"),
    (Upload("bkt", "data/a.tfrecord", "1", 0), "is empty"),
    (Upload("bkt", "data/a.tfrecord", "1", 101), "over the 100-byte limit"),
])
def test_the_filter_gives_a_reason(upload, reason):
    assert reason in UploadFilter("bkt", "data/", max_bytes=100).rejection(upload)


def test_the_filter_accepts_training_data():
    upload_filter = UploadFilter("bkt", "data/", max_bytes=100)
    assert upload_filter.rejection(Upload("bkt", "data/a.tfrecord", "1", 100)) is None
    assert upload_filter.rejection(Upload("bkt", "data/sub/a.tfrecord.gz", "1", 5)) is None


def test_each_upload_is_decided_once_and_survives_a_restart(tmp_path):
    events, path = RecordingEvents(), str(tmp_path / "ledger.sqlite")
    bridge = Bridge(UploadFilter("bkt"), UploadLedger(path), events)
    upload = Upload("bkt", "a.tfrecord", "1", 10)
    assert bridge.handle(upload) == "emitted"
    assert bridge.handle(upload) == "duplicate"
    assert bridge.handle(Upload("bkt", "a.jpeg", "1", 10)) == "skipped"
    bridge.ledger.close()
    restarted = Bridge(UploadFilter("bkt"), UploadLedger(path), events)
    assert restarted.handle(upload) == "duplicate"
    assert restarted.handle(Upload("bkt", "a.tfrecord", "2", 10)) == "emitted"  # a new generation
    assert [e["payload"]["generation"] for e in events.posted] == ["1", "2"]
    assert restarted.ledger.counts() == {"emitted": 2, "skipped": 1}


def test_an_upload_prefect_did_not_accept_is_not_recorded(tmp_path):
    events = RecordingEvents()
    bridge = Bridge(UploadFilter("bkt"), UploadLedger(str(tmp_path / "ledger.sqlite")), events)
    upload = Upload("bkt", "a.tfrecord", "1", 10)
    events.down = True
    with pytest.raises(RuntimeError, match="unreachable"):
        bridge.handle(upload)
    assert bridge.ledger.outcome(upload) is None
    events.down = False
    assert bridge.handle(upload) == "emitted"
