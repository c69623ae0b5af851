"""`hotdog serve --runs-in serve`: the deployments served from one process on a real local
Prefect server keep what the worker stack has (names, limits, schedule, trigger) and run one
at a time."""
import datetime as dt
import uuid

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.serve import api_url, deployment_names
from tasks import gcs_bridge, services
from tasks.gcs_events import EVENT_NAME
from tests.e2e.conftest import client_call
from tests.e2e.stack.test_deployments import wait_for_runs

pytestmark = pytest.mark.slow
BUCKET, PREFIX = "served-uploads", "in/"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    (root / "images").mkdir()
    port = services.free_port()
    started = CliRunner().invoke(app, ["serve", "--runs-in", "serve", "--workdir", str(root), "--port", str(port),
                                       "--data", str(root / "images"), "--images", str(root / "images"),
                                       "--bucket", BUCKET, "--prefix", PREFIX, "--backbone", "tiny"])
    assert started.exit_code == 0, started.output
    assert "deployments served" in started.output
    yield {"root": root, "url": api_url(port)}
    stopped = CliRunner().invoke(app, ["stop", "--workdir", str(root)])
    assert "stopped: runner, server" in stopped.output


def test_the_served_deployments_have_the_limits_and_schedule_of_the_worker_ones(served):
    deployments = {d.name: d for d in client_call(served["url"], lambda c: c.read_deployments())}
    assert sorted(deployments) == deployment_names()
    assert all(d.work_pool_name is None and d.status.value == "READY" for d in deployments.values())
    assert [getattr(d.global_concurrency_limit, "limit", d.concurrency_limit) for d in deployments.values()] == [1, 1, 1]
    [schedule] = deployments["nightly"].schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 3 * * *", "UTC")


def test_events_trigger_runs_that_run_one_at_a_time(served, tmp_path):
    """Two events at once: two runs of the flow (each refuses an object outside the bucket), never
    both RUNNING."""
    events = gcs_bridge.PrefectEvents(served["url"])
    for i in range(2):
        events.post({"id": str(uuid.uuid4()), "occurred": dt.datetime.now(dt.timezone.utc).isoformat(),
                     "event": EVENT_NAME, "resource": {"prefect.resource.id": f"gcs.object.{BUCKET}.{PREFIX}{i}"},
                     "payload": {"uri": str(tmp_path / f"elsewhere-{i}.tfrecord"), "generation": str(i)}})
    first, second = wait_for_runs(served["url"], 2, timeout=300)
    for run in (first, second):
        assert run.state_type.value == "FAILED"
        assert f"uploads are accepted only from gs://{BUCKET}/{PREFIX}" in run.state.message
    assert first.end_time <= second.start_time
