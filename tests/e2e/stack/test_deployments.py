"""The deployments on a real local stack (`hotdog serve`: server, worker and Pub/Sub bridge on
127.0.0.1): `prefect deployment run` from the CLI, the nightly schedule, and retraining on
uploads to fake-gcs-server, whose notifications reach the bridge through the Pub/Sub emulator."""
import datetime
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prefect.client.schemas.filters import FlowFilter, FlowFilterName

from tasks import training
from tests.conftest import small_tree
from tests.e2e.conftest import PROJECT, TOPIC, UPLOAD_BUCKET, UPLOAD_PREFIX, client_call, deployment_runs
from tests.e2e.test_cli import hotdog

pytestmark = pytest.mark.slow


def test_the_three_deployments_exist_on_the_retraining_queue(stack):
    deployments = client_call(stack["url"], lambda c: c.read_deployments())
    by_name = {d.name: d for d in deployments}
    assert set(by_name) == {"manual", "nightly", "retrain-on-upload"}
    assert {(d.work_pool_name, d.work_queue_name) for d in deployments} == {("hotdog", "retraining")}
    assert [getattr(d.global_concurrency_limit, "limit", d.concurrency_limit) for d in deployments] == [1, 1, 1]
    queue = client_call(stack["url"], lambda c: c.read_work_queue_by_name("retraining", work_pool_name="hotdog"))
    assert queue.concurrency_limit == 1


def test_nightly_schedule_plans_runs_at_three_utc(stack):
    deadline = time.monotonic() + 90
    scheduled = []
    while time.monotonic() < deadline and not scheduled:
        scheduled = [r for r in deployment_runs(stack["url"], "nightly") if r.state_type.value == "SCHEDULED"]
        time.sleep(2)
    assert scheduled, "the scheduler planned no nightly run"
    for run in scheduled:
        start = run.expected_start_time.astimezone(datetime.timezone.utc)
        assert (start.hour, start.minute) == (3, 0)


def test_prefect_deployment_run_from_the_cli_completes(stack):
    env = {**os.environ, "PREFECT_API_URL": stack["url"]}
    prefect = os.path.join(os.path.dirname(sys.executable), "prefect")
    done = subprocess.run([prefect, "deployment", "run", "train/nightly", "--watch", "--watch-timeout", "600"],
                          env=env, capture_output=True, text=True, timeout=660)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Completed" in done.stdout
    registry = training.paths(str(stack["root"] / "training"))["registry"]
    assert [v for v in os.listdir(registry) if v.isdigit()]


TERMINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def wait_for_runs(url, count, timeout=600):
    """The retrain-on-upload runs once ``count`` of them have ended (oldest first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = deployment_runs(url, "retrain-on-upload")
        if len(runs) >= count and all(r.state_type.value in TERMINAL for r in runs):
            return sorted(runs, key=lambda r: r.start_time or r.created)
        time.sleep(3)
    pytest.fail(f"fewer than {count} retrain-on-upload runs ended within {timeout} s: "
                f"{[(r.name, r.state_type.value) for r in runs]}")


def model_versions(root):
    registry = training.paths(str(root / "training"))["registry"]
    return sorted(v for v in os.listdir(registry) if v.isdigit()) if os.path.isdir(registry) else []


def republish_last_notification(gcs, name):
    """Deliver the notification of gs://UPLOAD_BUCKET/name a second time (Pub/Sub is at-least-once)."""
    import json

    from google.cloud import pubsub_v1

    info = gcs.info(f"{UPLOAD_BUCKET}/{name}")
    publisher = pubsub_v1.PublisherClient()
    publisher.publish(publisher.topic_path(PROJECT, TOPIC), json.dumps({"size": str(info["size"])}).encode(),
                      eventType="OBJECT_FINALIZE", bucketId=UPLOAD_BUCKET, objectId=name,
                      objectGeneration=str(info["generation"]), payloadFormat="JSON_API_V1").result(timeout=30)


def test_uploads_retrain_once_each_and_one_at_a_time(stack, gcs):
    """Two uploads at once, one of them notified twice (Pub/Sub is at-least-once), beside objects
    the bridge must skip: exactly two retraining runs, serialized by the limit-1 queue."""
    versions_before = model_versions(stack["root"])
    before = len(deployment_runs(stack["url"], "retrain-on-upload"))
    sets = stack["root"] / "sets"
    uploads = {UPLOAD_PREFIX + "taco_bias.tfrecord": sets / "taco_bias" / "taco_bias.tfrecord",
               UPLOAD_PREFIX + "sandwich_bias.tfrecord": sets / "sandwich_bias" / "sandwich_bias.tfrecord"}
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda item: gcs.put(str(item[1]), f"{UPLOAD_BUCKET}/{item[0]}"), uploads.items()))
    gcs.pipe(f"{UPLOAD_BUCKET}/elsewhere/taco_bias.tfrecord", b"outside the prefix")
    gcs.pipe(f"{UPLOAD_BUCKET}/{UPLOAD_PREFIX}notes.txt", b"not training data")
    twice = UPLOAD_PREFIX + "taco_bias.tfrecord"
    republish_last_notification(gcs, twice)
    runs = wait_for_runs(stack["url"], before + 2)[before:]
    time.sleep(5)  # a third run, if any, would have been created by now
    assert len(deployment_runs(stack["url"], "retrain-on-upload")) == before + 2
    assert sorted(r.parameters["object_uri"] for r in runs) == sorted(f"gs://{UPLOAD_BUCKET}/{n}" for n in uploads)
    assert [r.state_type.value for r in runs] == ["COMPLETED", "COMPLETED"], [r.state for r in runs]
    assert runs[0].end_time <= runs[1].start_time, "the two retraining runs overlapped"
    for run in runs:
        name = run.parameters["object_uri"][len(f"gs://{UPLOAD_BUCKET}/"):]
        assert run.parameters["generation"] == str(gcs.info(f"{UPLOAD_BUCKET}/{name}")["generation"])
    assert len(model_versions(stack["root"])) == len(versions_before) + 2
    data_root = training.paths(str(stack["root"] / "training"))["data_root"]
    staged = sorted(os.listdir(os.path.join(data_root, "uploads")))
    generations = sorted(f"-{run.parameters['generation']}.tfrecord" for run in runs)
    assert sorted(name[name.rindex("-"):] for name in staged) == generations, staged
    assert sorted(os.path.getsize(os.path.join(data_root, "uploads", n)) for n in staged) == sorted(
        os.path.getsize(path) for path in uploads.values())
    bridge_log = (stack["state"] / "bridge.log").read_text()
    assert f"duplicate gs://{UPLOAD_BUCKET}/{twice}" in bridge_log
    assert "outside the prefix" in bridge_log and "notes.txt' does not end with" in bridge_log
    assert_served(stack["model_url"], model_versions(stack["root"])[-1])


def assert_served(url, version, timeout=60):
    """The stack's model server serves ``version`` within ``timeout`` seconds, without a restart."""
    import httpx

    deadline, available = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            statuses = httpx.get(f"{url}/v1/models/default", timeout=5).json()["model_version_status"]
            available = [s["version"] for s in statuses if s["state"] == "AVAILABLE"]
        except httpx.TransportError as err:
            available = f"not answering ({err})"
        if available == [version]:
            return
        time.sleep(0.5)
    raise AssertionError(f"the model server does not serve {version}: {available}")


def test_a_command_reuses_the_running_stack(stack, tmp_path):
    """A command run on the stack's work folder talks to its server instead of starting one."""
    images = small_tree(tmp_path / "images")
    done = hotdog(["ingest", images, "--out", str(tmp_path / "out")], tmp_path / "home", stack["root"], timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"Prefect: using the running 'hotdog serve' server at {stack['url']}" in done.stderr
    assert "temporary server" not in done.stderr
    runs = client_call(stack["url"], lambda c: c.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=["ingest-images"]))))
    assert [r.state_type.value for r in runs if r.parameters.get("source") == images] == ["COMPLETED"]


def test_an_event_naming_an_object_outside_the_bucket_stages_nothing(stack, tmp_path):
    """The trigger matches on the resource id; the payload's uri is not trusted."""
    import datetime as dt
    import uuid

    from tasks import gcs_bridge
    from tasks.gcs_events import EVENT_NAME

    outside = tmp_path / "elsewhere.tfrecord"
    outside.write_bytes(b"not from the bucket")
    data_root = training.paths(str(stack["root"] / "training"))["data_root"]
    files_before = training.data_files(data_root)
    before = len(deployment_runs(stack["url"], "retrain-on-upload"))
    name = f"{UPLOAD_PREFIX}spoofed.tfrecord"
    event = {"id": str(uuid.uuid4()), "occurred": dt.datetime.now(dt.timezone.utc).isoformat(), "event": EVENT_NAME,
             "resource": {"prefect.resource.id": f"gcs.object.{UPLOAD_BUCKET}.{name}"},
             "payload": {"uri": str(outside), "generation": "1"}}
    gcs_bridge.PrefectEvents(stack["url"]).post(event)
    [run] = wait_for_runs(stack["url"], before + 1)[before:]
    assert run.parameters["object_uri"] == str(outside)
    assert run.state_type.value == "FAILED"
    assert f"uploads are accepted only from gs://{UPLOAD_BUCKET}/{UPLOAD_PREFIX}" in run.state.message
    assert training.data_files(data_root) == files_before


def test_the_api_takes_no_state_change_without_a_csrf_token_nor_calls_from_other_origins(stack):
    import httpx

    refused = httpx.post(f"{stack['url']}/events", json=[], timeout=30)
    assert refused.status_code == 403 and "CSRF" in refused.text
    preflight = httpx.options(f"{stack['url']}/events", timeout=30, headers={
        "Origin": "https://attacker.example", "Access-Control-Request-Method": "POST"})
    assert preflight.headers.get("access-control-allow-origin") != "https://attacker.example"
    ui = stack["url"][:-len("/api")]
    allowed = httpx.options(f"{stack['url']}/events", timeout=30, headers={
        "Origin": ui, "Access-Control-Request-Method": "POST"})
    assert allowed.headers.get("access-control-allow-origin") == ui
