"""Servers shared by the end-to-end tests, each started once per session on 127.0.0.1:
the Pub/Sub emulator, fake-gcs-server publishing to it, and the `hotdog serve` stack."""
import asyncio
import importlib.util
import os
import shutil
import threading

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.serve import api_url
from tasks import emulators, fs, services, settings, training
from tests.conftest import small_datasets

PROJECT, TOPIC = "hotdog-test", "uploads"
UPLOAD_BUCKET, UPLOAD_PREFIX = "test-uploads", "uploads/"


@pytest.fixture(scope="session")
def gcs():
    """fake-gcs-server whose finalized objects are published to PROJECT/TOPIC on the Pub/Sub emulator."""
    with emulators.pubsub_emulator():
        emulators.create_topic(PROJECT, TOPIC)
        emulators.create_subscription(PROJECT, TOPIC, "stack-bridge")
        with emulators.fake_gcs(PROJECT, TOPIC):
            gcs_fs, _ = fs.filesystem("gs://")
            yield gcs_fs


@pytest.fixture(scope="session")
def stack(shared_images, gcs, tmp_path_factory):
    """`hotdog serve` with the tiny backbone, the Pub/Sub bridge on gs://UPLOAD_BUCKET/UPLOAD_PREFIX and a
    model server on the deployments' registry."""
    root = tmp_path_factory.mktemp("stack")
    small_datasets(shared_images, root, 20, ["baseline", "taco_bias", "sandwich_bias"])
    training.stage_data([str(root / "sets" / "baseline")], training.paths(str(root / "training"))["data_root"])
    hot_dogs = root / "hot dogs"
    hot_dogs.mkdir()
    for name in sorted(os.listdir(os.path.join(shared_images, "hot dog")))[:8]:
        shutil.copy(os.path.join(shared_images, "hot dog", name), hot_dogs / name)
    gcs.mkdir(UPLOAD_BUCKET)
    port, model_port = emulators.free_port(), emulators.free_port()
    os.environ["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = "2"
    result = CliRunner().invoke(app, [
        "serve", "--workdir", str(root), "--port", str(port), "--data", shared_images, "--images", str(hot_dogs),
        "--bucket", UPLOAD_BUCKET, "--prefix", UPLOAD_PREFIX, "--bridge", "pubsub",
        "--subscription", f"projects/{PROJECT}/subscriptions/stack-bridge",
        "--backbone", "tiny", "--epochs", "2", "--min-accuracy", "0", "--max-regression", "1",
        "--model-server", "--model-port", str(model_port)])
    assert result.exit_code == 0, result.output
    try:
        yield {"root": root, "url": api_url(port), "state": root / "prefect",
               "model_url": f"http://127.0.0.1:{model_port}"}
    finally:
        stopped = CliRunner().invoke(app, ["stop", "--workdir", str(root)])
        assert "bridge, model-server, worker, server" in stopped.output


def load_fake():
    """deployments/vertex/fake_vertex_api.py as a module (it is a script, not a package member)."""
    path = os.path.join(settings.PROJECT_ROOT, "deployments", "vertex", "fake_vertex_api.py")
    spec = importlib.util.spec_from_file_location("fake_vertex_api", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_project_number(project_id, credentials=None):
    """FAKE Resource Manager lookup, unreachable at once: the SDK's check of the pipeline bucket's
    owner (PipelineJob.submit) otherwise retries cloudresourcemanager.googleapis.com for 60 s
    offline before it logs the failure and submits anyway."""
    from google.api_core import exceptions

    raise exceptions.ServiceUnavailable(f"FAKE Resource Manager: no lookup of {project_id} offline")


@pytest.fixture(scope="session")
def fake_vertex(gcs):
    """The FAKE Vertex AI API on 127.0.0.1 (records requests, runs nothing) and a bucket for it;
    in this process, the FAKE Resource Manager lookup."""
    from google.cloud.aiplatform.utils import resource_manager_utils

    server = load_fake().FakeVertex(("127.0.0.1", services.free_port()))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gcs.mkdir("vertex-test")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resource_manager_utils, "get_project_number", fake_project_number)
        yield server
    server.shutdown()


def client_call(url, fn):
    """Run ``fn(client)`` with a Prefect client on ``url``."""
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


def server_events(url, resource_prefix):
    """gcs.object.finalized events the server stored for resources starting with ``resource_prefix``."""
    body = {"filter": {"event": {"name": ["gcs.object.finalized"]}, "resource": {"id_prefix": [resource_prefix]}},
            "limit": 50}
    response = client_call(url, lambda c: c.request("POST", "/events/filter", json=body))
    response.raise_for_status()
    return response.json()["events"]
