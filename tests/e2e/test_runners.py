"""Other runners give byte-identical output: DirectRunner multi_processing and Beam's DaskRunner
on a real dask.distributed cluster started as a user would (`dask scheduler` and two
`dask worker` processes on 127.0.0.1), or started by the command itself; a worker killed in the
middle of a job never leaves output that looks complete."""
import dataclasses
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tasks import dataset_config, datasets, ingest, runners, services, settings
from tests.e2e.test_gcs import local_bytes

pytestmark = pytest.mark.slow


class DaskProcesses:
    """`dask scheduler` + ``workers`` `dask worker` processes (one thread each) on 127.0.0.1."""

    def __init__(self, workers: int):
        dask = os.path.join(os.path.dirname(sys.executable), "dask")
        env = {**os.environ, "PYTHONPATH": settings.PROJECT_ROOT}
        port = services.free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        start = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
        self.scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                           "--no-dashboard"], **start)
        self.workers = [subprocess.Popen([dask, "worker", self.address, "--nthreads", "1", "--host", "127.0.0.1",
                                          "--no-dashboard", "--name", f"w{i}"], **start) for i in range(workers)]
        self.wait_for_workers(workers)

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=60)

    def wait_for_workers(self, count: int, timeout: float = 120) -> None:
        with self.client() as client:
            client.wait_for_workers(count, timeout=timeout)

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            services.stop_process(proc, timeout=10)


@pytest.fixture(scope="module")
def dask_cluster():
    cluster = DaskProcesses(2)
    try:
        yield cluster
    finally:
        cluster.close()


def ingest_and_build(tree, out, options):
    ingest.run_ingest(tree, os.path.join(out, "ingested"), max_per_category=3, options=options)
    specs = dataset_config.select(dataset_config.load_config(), ["baseline"])
    datasets.build_from_ingested(os.path.join(out, "ingested"), specs, os.path.join(out, "sets"), shards=2,
                                 options=options)
    return local_bytes(out)


def assert_same_output(got, expected):
    assert sorted(got) == sorted(expected)
    for name in expected:
        if not name.endswith(("dataset.json", "dataset.md")):  # cards name their input folder
            assert got[name] == expected[name], name


def test_dask_runner_on_a_cluster_matches_direct_runner(dask_cluster, tree, tmp_path):
    direct = ingest_and_build(tree, str(tmp_path / "direct"), runners.pipeline_options())
    with runners.beam_options("dask", dask_address=dask_cluster.address) as options:
        assert_same_output(ingest_and_build(tree, str(tmp_path / "dask"), options), direct)
    with dask_cluster.client() as client:
        assert len(client.scheduler_info()["workers"]) == 2


def test_dask_runner_without_an_address_starts_and_stops_a_local_cluster(tree, tmp_path):
    from apache_beam.runners.dask.dask_runner import DaskOptions
    from distributed import Client
    from distributed.client import _global_clients

    direct = ingest_and_build(tree, str(tmp_path / "direct"), runners.pipeline_options())
    with runners.beam_options("dask", workers=2) as options:
        address = options.view_as(DaskOptions).address
        assert address.startswith("tcp://127.0.0.1:")
        with Client(address) as client:
            assert len(client.scheduler_info()["workers"]) == 2
        assert_same_output(ingest_and_build(tree, str(tmp_path / "dask"), options), direct)
    assert not [c for c in _global_clients.values() if c.scheduler and c.scheduler.address == address]
    with pytest.raises(OSError):
        Client(address, timeout=3)


def test_a_worker_killed_mid_job_leaves_correct_output_or_none(shared_images, tmp_path):
    """The job either completes with every file accounted for, or fails and leaves no summary."""
    direct = os.path.join(tmp_path, "direct")
    expected = ingest.run_ingest(shared_images, direct, max_per_category=40)
    cluster = DaskProcesses(2)
    killed, outcome = [], []
    try:
        out = os.path.join(tmp_path, "dask")

        def run():
            try:
                with runners.beam_options("dask", dask_address=cluster.address) as options:
                    outcome.append(ingest.run_ingest(shared_images, out, max_per_category=40, options=options))
            except Exception as err:  # noqa: BLE001 - judged below
                outcome.append(err)

        job = threading.Thread(target=run)
        job.start()
        with cluster.client() as client:
            deadline = time.monotonic() + 300
            while not killed and job.is_alive() and time.monotonic() < deadline:
                busy = [address for address, keys in client.processing().items() if keys]
                if busy:
                    info = client.scheduler_info()["workers"][busy[0]]
                    index = int(info["name"][1:])
                    os.killpg(cluster.workers[index].pid, signal.SIGKILL)  # the worker and its nanny
                    killed.append(info["name"])
                time.sleep(0.05)
        job.join(timeout=600)
        assert killed, "no task ran on the cluster"
        assert not job.is_alive()
        [result] = outcome
        if isinstance(result, Exception):
            assert not os.path.exists(os.path.join(out, ingest.MARKER)), result
        else:
            assert result["totals"] == expected["totals"]
            assert_same_output(local_bytes(out), local_bytes(direct))
    finally:
        cluster.close()


def test_multi_processing_matches_in_process(tree, tmp_path):
    single = ingest_and_build(tree, str(tmp_path / "one"), runners.pipeline_options())
    multi = ingest_and_build(tree, str(tmp_path / "two"), runners.pipeline_options("direct", workers=2))
    for name in single:
        if not name.endswith(("dataset.json", "dataset.md")):
            assert multi[name] == single[name], name


DATAFLOW = runners.Dataflow(project="p", region="europe-west1", temp_location="gs://b/tmp",
                            sdk_container_image="europe-docker.pkg.dev/p/hotdog/dataflow:1")


@pytest.mark.parametrize("kwargs, message", [
    ({"runner": "dask", "dask_address": "127.0.0.1"}, "is not HOST:PORT"),
    ({"runner": "dataflow"}, "needs --project, --region, --temp-location, --sdk-container-image"),
    ({"runner": "dataflow", "dataflow": runners.Dataflow("p", "r", "/tmp", "img")}, "--temp-location must be a gs://"),
    ({"runner": "dataflow", "dataflow": dataclasses.replace(DATAFLOW, staging_location="s3://x")},
     "--staging-location must be a gs://"),
    ({"runner": "dataflow", "workers": 4, "dataflow": dataclasses.replace(DATAFLOW, max_workers=2)},
     r"--max-workers \(2\) must be >= --workers \(4\)"),
    ({"runner": "dataflow", "dataflow": dataclasses.replace(DATAFLOW, service_account="robot")},
     "--service-account must be an e-mail address"),
    ({"runner": "direct", "workers": 0}, "--workers must be >= 1"),
])
def test_runner_options_are_validated(kwargs, message):
    from tasks.errors import HotdogInputError

    with pytest.raises(HotdogInputError, match=message):
        runners.pipeline_options(**kwargs)


def test_dataflow_options_are_complete():
    settings_ = dataclasses.replace(DATAFLOW, service_account="sa@p.iam.gserviceaccount.com", max_workers=8,
                                    machine_type="n2-standard-4")
    options = runners.pipeline_options("dataflow", 4, dataflow=settings_).get_all_options()
    assert {key: options[key] for key in ("runner", "project", "region", "temp_location", "staging_location",
                                          "sdk_container_image", "num_workers", "max_num_workers",
                                          "machine_type", "service_account_email")} == {
        "runner": "DataflowRunner", "project": "p", "region": "europe-west1", "temp_location": "gs://b/tmp",
        "staging_location": "gs://b/tmp/staging", "sdk_container_image": DATAFLOW.sdk_container_image,
        "num_workers": 4, "max_num_workers": 8, "machine_type": "n2-standard-4",
        "service_account_email": "sa@p.iam.gserviceaccount.com"}


@pytest.fixture
def fake_dataflow():
    path = os.path.join(settings.PROJECT_ROOT, "deployments", "dataflow", "fake_dataflow_api.py")
    spec = importlib.util.spec_from_file_location("fake_dataflow_api", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server = module.FakeDataflow(("127.0.0.1", services.free_port()))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, module
    server.shutdown()


def test_cli_ingest_on_dataflow_submits_the_job_to_the_fake_api(fake_dataflow, gcs, tree, monkeypatch):
    """`hotdog ingest --runner dataflow` up to the job's creation: files staged to fake-gcs-server,
    CreateJob with the worker image and options on the FAKE Dataflow API, which runs nothing: the
    command then fails, naming the job, and commits no output."""
    from apache_beam.portability.api import beam_runner_api_pb2
    from typer.testing import CliRunner

    from flows.cli import app

    server, module = fake_dataflow
    gcs.mkdir("dataflow-test")
    gcs.put(tree + "/", "dataflow-test/images/", recursive=True)
    # Beam accepts no port in --dataflow_endpoint: the fake answers as an HTTP proxy for a made-up host
    monkeypatch.setenv("HOTDOG_BEAM_ARGS", "--dataflow_endpoint=http://dataflow.fake --no_auth")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    local = CliRunner().invoke(app, ["ingest", tree, "--out", "gs://dataflow-test/x", "--runner", "dataflow",
                                     "--project", "p", "--region", "r", "--temp-location", "gs://dataflow-test/tmp",
                                     "--sdk-container-image", "i"])
    assert local.exit_code == 2 and "not gs://: --source" in local.output
    out = "gs://dataflow-test/ingested"
    result = CliRunner().invoke(app, [
        "ingest", "gs://dataflow-test/images", "--out", out, "--runner", "dataflow", "--workers", "2", "--project", "hotdog-test",
        "--region", "europe-west1", "--temp-location", "gs://dataflow-test/tmp", "--sdk-container-image",
        DATAFLOW.sdk_container_image, "--max-workers", "5", "--machine-type", "n2-standard-4",
        "--service-account", "workers@hotdog-test.iam.gserviceaccount.com"])
    assert result.exit_code != 0
    assert module.NOTHING_RAN in str(result.exception) + result.output
    assert not gcs.exists(f"dataflow-test/ingested/{ingest.MARKER}")

    [created] = [r for r in server.requests if r["method"] == "POST"]
    assert created["path"] == "/v1b3/projects/hotdog-test/locations/europe-west1/jobs"
    job = created["body"]
    environment = job["environment"]
    [pool] = environment["workerPools"]
    assert [i["containerImage"] for i in pool["sdkHarnessContainerImages"]] == [DATAFLOW.sdk_container_image]
    assert (pool["numWorkers"], pool["machineType"]) == (2, "n2-standard-4")
    assert pool["autoscalingSettings"]["maxNumWorkers"] == 5
    assert environment["serviceAccountEmail"] == "workers@hotdog-test.iam.gserviceaccount.com"
    staged = {path.rsplit("/", 1)[-1]: path for path in gcs.find("dataflow-test/tmp/staging")}
    assert "pipeline.pb" in staged, sorted(staged)
    pipeline = beam_runner_api_pb2.Pipeline.FromString(gcs.cat(staged["pipeline.pb"]))
    names = {t.unique_name for t in pipeline.components.transforms.values()}
    assert {"Inspect", "GroupByShard", "WriteShards", "Done"} <= names
