"""The deployments on a real local stack (`hotdog serve`): server + worker on 127.0.0.1,
`prefect deployment run` from the CLI, the nightly schedule, and the upload trigger fed
with a gcs.object.finalized event (what the GCS bridge will post)."""
import asyncio
import datetime
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.serve import api_url
from tasks import training
from tests.conftest import small_datasets

pytestmark = pytest.mark.slow
BUCKET = "test-uploads"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def stack(shared_images, tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    small_datasets(shared_images, root, 20, ["baseline", "taco_bias"])
    training.stage_data([str(root / "sets" / "baseline")], training.paths(str(root / "training"))["data_root"])
    hot_dogs = root / "hot dogs"
    hot_dogs.mkdir()
    for name in sorted(os.listdir(os.path.join(shared_images, "hot dog")))[:8]:
        shutil.copy(os.path.join(shared_images, "hot dog", name), hot_dogs / name)
    port = free_port()
    os.environ["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = "2"
    result = CliRunner().invoke(app, ["serve", "--workdir", str(root), "--port", str(port), "--data", shared_images,
                                      "--images", str(hot_dogs), "--bucket", BUCKET, "--backbone", "tiny",
                                      "--epochs", "2", "--min-accuracy", "0", "--max-regression", "1"])
    assert result.exit_code == 0, result.output
    try:
        yield {"root": root, "url": api_url(port)}
    finally:
        stopped = CliRunner().invoke(app, ["stop", "--workdir", str(root)])
        assert "worker, server" in stopped.output


def client_call(url, fn):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def run():
        async with get_client() as client:
            return await fn(client)

    with temporary_settings({PREFECT_API_URL: url}):
        return asyncio.run(run())


def deployment_runs(url, name):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    return client_call(url, lambda c: c.read_flow_runs(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))))


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


def post_event(url: str, resource_id: str, payload: dict) -> None:
    """POST one event to the Prefect API, as the GCS bridge and the Cloud Function do."""
    import datetime
    import uuid

    import httpx

    event = {"id": str(uuid.uuid4()), "occurred": datetime.datetime.now(datetime.timezone.utc).isoformat(),
             "event": "gcs.object.finalized", "resource": {"prefect.resource.id": resource_id}, "payload": payload}
    httpx.post(f"{url}/events", json=[event], timeout=30).raise_for_status()


def test_upload_event_triggers_one_retraining_with_its_parameters(stack):
    upload = str(stack["root"] / "sets" / "taco_bias" / "taco_bias.tfrecord")
    post_event(stack["url"], f"gcs.object.{BUCKET}.taco_bias", {"uri": upload, "generation": "1700000000000001"})
    post_event(stack["url"], "gcs.object.another-bucket.taco_bias", {"uri": upload, "generation": "2"})
    deadline = time.monotonic() + 400
    runs = []
    while time.monotonic() < deadline:
        runs = deployment_runs(stack["url"], "retrain-on-upload")
        if runs and runs[0].state_type.value in ("COMPLETED", "FAILED", "CRASHED"):
            break
        time.sleep(3)
    assert len(runs) == 1  # the other bucket's event matched nothing
    run = runs[0]
    assert run.state_type.value == "COMPLETED", run.state
    assert run.parameters["object_uri"] == upload and run.parameters["generation"] == "1700000000000001"
    data_root = training.paths(str(stack["root"] / "training"))["data_root"]
    assert os.path.exists(os.path.join(data_root, "taco_bias", "taco_bias.tfrecord"))
