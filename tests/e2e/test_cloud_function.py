"""The Cloud Function as scripts/build-cloud-function assembles it: in-process through
functions-framework (binary and structured CloudEvents, bad events and bad files, duplicates,
a crash between staging and submitting, its own outputs), and one real local chain:
fake-gcs-server -> Pub/Sub emulator -> a small push bridge (Eventarc's part) -> the function
over HTTP -> the FAKE Vertex API."""
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest

from tasks import emulators, services, settings, tfrecords, training, vertex
from tasks.gcs_events import Upload
from tests.conftest import image_bytes
from tests.e2e.conftest import PROJECT, TOPIC, server_events

pytestmark = pytest.mark.slow
BUCKET = "cf-uploads"
ROOT = "gs://vertex-test/cf"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The deployable folder the build script assembles."""
    dest = tmp_path_factory.mktemp("cf") / "function"
    subprocess.run([os.path.join(settings.PROJECT_ROOT, "scripts", "build-cloud-function"), str(dest)], check=True,
                   capture_output=True, timeout=60)
    return str(dest)


def records(count=2):
    """A valid upload: TFRecord bytes of labelled examples."""
    import tensorflow as tf

    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"cf-{uuid.uuid4().hex}.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(count):
            writer.write(tfrecords.labelled_example(image_bytes(color=(i, 3, 3)), [0, 0, 1]))
    try:
        return open(path, "rb").read()
    finally:
        os.remove(path)


@pytest.fixture(scope="module")
def spec_uri(fake_vertex, gcs):
    """A compiled pipeline spec on fake-gcs-server, as the function's HOTDOG_VERTEX_SPEC."""
    gcs.mkdir(BUCKET)
    os.environ.update(HOTDOG_VERTEX_PROJECT="my-project", HOTDOG_VERTEX_ROOT="gs://vertex-test/cf",
                      HOTDOG_VERTEX_IMAGE="tfx-hotdog:test")
    try:
        uri, _ = vertex.compile_and_upload(vertex.VertexSettings.from_env(), training.TrainSettings(backbone="tiny"))
    finally:
        for key in ("HOTDOG_VERTEX_PROJECT", "HOTDOG_VERTEX_ROOT", "HOTDOG_VERTEX_IMAGE"):
            os.environ.pop(key)
    return uri


@pytest.fixture
def function_env(spec_uri, fake_vertex, monkeypatch):
    env = {"HOTDOG_CF_PREFIX": "data/", "HOTDOG_VERTEX_PROJECT": "my-project", "HOTDOG_VERTEX_REGION": "us-central1",
           "HOTDOG_VERTEX_ROOT": ROOT, "HOTDOG_VERTEX_SPEC": spec_uri,
           "HOTDOG_VERTEX_ENDPOINT": f"http://127.0.0.1:{fake_vertex.server_port}"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def client(function_env, built):
    import functions_framework

    source = os.path.join(built, "main.py")
    return functions_framework.create_app(target="on_upload", source=source, signature_type="cloudevent").test_client()


def object_data(gcs, name, payload=None):
    payload = records() if payload is None else payload
    gcs.pipe(f"{BUCKET}/{name}", payload)
    info = gcs.info(f"{BUCKET}/{name}")
    return {"bucket": BUCKET, "name": name, "generation": str(info["generation"]), "size": str(info["size"])}


def binary_event(data):
    headers = {"ce-id": uuid.uuid4().hex, "ce-specversion": "1.0", "ce-source": f"//storage.googleapis.com/"
               f"projects/_/buckets/{BUCKET}", "ce-type": "google.cloud.storage.object.v1.finalized",
               "ce-subject": f"objects/{data.get('name')}", "Content-Type": "application/json"}
    return headers, json.dumps(data)


def submissions(fake_vertex, data):
    ident = Upload(data["bucket"], data["name"], data["generation"], 0).event_id
    return [r for r in fake_vertex.requests if r["method"] == "POST" and r["query"]["pipelineJobId"] == [
        f"hotdog-{ident}"]]


def staged_uploads(gcs, data):
    digest_part = f"-{data['generation']}.tfrecord"
    return [f for f in gcs.find("vertex-test/cf/data_root/uploads") if f.endswith(digest_part)]


def test_a_binary_event_stages_then_submits_once_even_when_delivered_twice(client, gcs, fake_vertex):
    data = object_data(gcs, "data/taco_bias.tfrecord")
    for _ in range(2):
        headers, body = binary_event(data)
        response = client.post("/", headers=headers, data=body)
        assert response.status_code == 200, response.data
    jobs = submissions(fake_vertex, data)
    assert len(jobs) == 2  # the second is answered 409 ALREADY_EXISTS
    assert len([name for name in fake_vertex.jobs if name.endswith(jobs[0]["query"]["pipelineJobId"][0])]) == 1
    assert jobs[0]["body"]["runtimeConfig"]["gcsOutputDirectory"] == f"{ROOT}/pipeline"
    staged = staged_uploads(gcs, data)
    assert len(staged) == 1 and staged[0].rsplit("/", 1)[-1].startswith("train-")
    assert gcs.cat(staged[0]) == gcs.cat(f"{BUCKET}/{data['name']}")


def test_a_bad_file_is_quarantined_and_never_submitted(client, gcs, fake_vertex):
    data = object_data(gcs, "data/not_examples.tfrecord", b"plain text, not TFRecord framing\n" * 4)
    headers, body = binary_event(data)
    assert client.post("/", headers=headers, data=body).status_code == 200  # not retried: it stays bad
    assert submissions(fake_vertex, data) == [] and staged_uploads(gcs, data) == []
    reports = [f for f in gcs.find("vertex-test/cf/quarantine") if f.endswith(f"-{data['generation']}.tfrecord.json")]
    assert len(reports) == 1 and "not a readable TFRecord" in json.loads(gcs.cat(reports[0]))["reason"]


def test_a_crash_after_staging_loses_nothing(client, gcs, fake_vertex, monkeypatch):
    data = object_data(gcs, "data/crash.tfrecord")
    headers, body = binary_event(data)
    monkeypatch.setenv("HOTDOG_VERTEX_ENDPOINT", f"http://127.0.0.1:{services.free_port()}")  # Vertex unreachable
    assert client.post("/", headers=headers, data=body).status_code == 500
    assert len(staged_uploads(gcs, data)) == 1 and submissions(fake_vertex, data) == []
    monkeypatch.setenv("HOTDOG_VERTEX_ENDPOINT", f"http://127.0.0.1:{fake_vertex.server_port}")
    assert client.post("/", headers=headers, data=body).status_code == 200  # Eventarc's retry
    assert len(submissions(fake_vertex, data)) == 1 and len(staged_uploads(gcs, data)) == 1


def test_a_structured_event_posts_to_prefect(client, gcs, monkeypatch, prefect_server):
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("HOTDOG_CF_MODE", "prefect")
    monkeypatch.setenv("HOTDOG_PREFECT_API_URL", PREFECT_API_URL.value())
    data = object_data(gcs, "data/sandwich_bias.tfrecord")
    event = {"specversion": "1.0", "id": "1", "source": "//storage.googleapis.com/projects/_/buckets/" + BUCKET,
             "type": "google.cloud.storage.object.v1.finalized", "data": data}
    response = client.post("/", headers={"Content-Type": "application/cloudevents+json"}, data=json.dumps(event))
    assert response.status_code == 200, response.data
    ident = Upload(BUCKET, data["name"], data["generation"], 0).event_id
    deadline = time.monotonic() + 30
    while not (events := server_events(PREFECT_API_URL.value(), f"gcs.object.{BUCKET}.data/sandwich")):
        assert time.monotonic() < deadline, "the event never reached the Prefect server"
        time.sleep(1)
    assert [e["id"] for e in events] == [ident]
    assert events[0]["payload"]["generation"] == data["generation"]


@pytest.mark.parametrize("name", ["specs/hotdog.json", "pipeline/Trainer/model.tfrecord", "other/x.tfrecord",
                                  "data/notes.txt", "data/../../x.tfrecord"])
def test_outputs_and_other_objects_are_ignored(client, gcs, fake_vertex, name):
    data = {"bucket": BUCKET, "name": name, "generation": "7", "size": "10"}
    headers, body = binary_event(data)
    assert client.post("/", headers=headers, data=body).status_code == 200
    assert submissions(fake_vertex, data) == []


@pytest.mark.parametrize("data, message", [
    ({"bucket": BUCKET, "generation": "1"}, b"lacks name"),
    ({"bucket": BUCKET, "name": "data/a.tfrecord", "generation": "1", "size": "big"}, b"non-integer size"),
    ("[1, 2]", b"not a storage object"),
])
def test_malformed_events_get_400_with_the_reason(client, data, message):
    headers, body = binary_event(data if isinstance(data, dict) else {})
    response = client.post("/", headers=headers, data=body if isinstance(data, dict) else data)
    assert response.status_code == 400 and message in response.data


def test_not_a_cloudevent_gets_400(client):
    response = client.post("/", headers={"Content-Type": "application/json"}, data="{}")
    assert response.status_code == 400


def test_the_built_folder_imports_on_its_own(built):
    probe = "import main, tasks.gcs_events as e; print(main.prefect_event is e.prefect_event)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=built, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "True", done.stderr[-2000:]


def push_bridge(subscription, url, stop):
    """Eventarc's part in the chain: Pub/Sub notifications -> binary CloudEvents POSTed to ``url``."""
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    while not stop.is_set():
        response = subscriber.pull(subscription=subscription, max_messages=10, timeout=5)
        for received in response.received_messages:
            message = received.message
            if message.attributes.get("eventType") != "OBJECT_FINALIZE":
                continue
            headers = {"ce-id": message.message_id, "ce-specversion": "1.0", "ce-type":
                       "google.cloud.storage.object.v1.finalized", "ce-source": "//storage.googleapis.com/projects/"
                       f"_/buckets/{message.attributes['bucketId']}", "Content-Type": "application/json"}
            if httpx.post(url, headers=headers, content=message.data, timeout=60).status_code < 500:
                subscriber.acknowledge(subscription=subscription, ack_ids=[received.ack_id])


FAKE_RESOURCE_MANAGER = """
from google.cloud.aiplatform.utils import resource_manager_utils
from google.api_core import exceptions


def fake_project_number(project_id, credentials=None):
    raise exceptions.ServiceUnavailable(f"FAKE Resource Manager: no lookup of {project_id} offline")


resource_manager_utils.get_project_number = fake_project_number
"""


def test_real_chain_from_upload_to_vertex_submission(function_env, built, gcs, fake_vertex, tmp_path):
    port = services.free_port()
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(FAKE_RESOURCE_MANAGER)  # as conftest's fake_vertex does
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(tmp_path / "site")}
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "functions-framework"), "--target",
                               "on_upload", "--source", "main.py", "--signature-type", "cloudevent", "--host",
                               "127.0.0.1", "--port", str(port)], stdout=open(tmp_path / "function.log", "wb"),
                              stderr=subprocess.STDOUT, cwd=built, env=env)
    stop = threading.Event()
    subscription = emulators.create_subscription(PROJECT, TOPIC, "cloud-function")
    bridge = threading.Thread(target=push_bridge, args=(subscription, f"http://127.0.0.1:{port}/", stop))
    try:
        services.wait_http(f"http://127.0.0.1:{port}/", "functions-framework", ok=(200, 400, 405), timeout=180)
        bridge.start()
        data = object_data(gcs, "data/chain.tfrecord")
        deadline = time.monotonic() + 180  # a loaded 2-core CI machine is slow
        while not submissions(fake_vertex, data):
            assert time.monotonic() < deadline, (tmp_path / "function.log").read_text()[-3000:]
            time.sleep(1)
        time.sleep(3)
        assert len(submissions(fake_vertex, data)) == 1
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=30)
        if bridge.is_alive():
            bridge.join(timeout=30)
