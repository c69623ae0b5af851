"""The vertex backend: the spec compiled by KubeflowV2DagRunner, uploaded to fake-gcs-server,
and submitted with aiplatform.PipelineJob to the FAKE Vertex API of deployments/vertex (a
local stand-in that checks and records requests and runs nothing)."""
import json

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks import vertex
from tasks.errors import HotdogInputError
from tests.conftest import small_datasets
from tests.e2e.conftest import load_fake

pytestmark = pytest.mark.slow
COMPONENTS = {"ImportExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "anomalies_gate", "Transform",
              "Trainer",
              "Evaluator", "Pusher",  # the latest-blessed-model resolver becomes two resolver tasks:
              "latest_blessed_model-model-blessing-resolver", "latest_blessed_model-model-resolver"}
IMAGE = "europe-docker.pkg.dev/my-project/hotdog/tfx-hotdog:1.16.0"


@pytest.fixture
def vertex_env(fake_vertex, monkeypatch):
    env = {"HOTDOG_VERTEX_PROJECT": "my-project", "HOTDOG_VERTEX_REGION": "europe-west4",
           "HOTDOG_VERTEX_ROOT": "gs://vertex-test/hotdog", "HOTDOG_VERTEX_IMAGE": IMAGE,
           "HOTDOG_VERTEX_SERVICE_ACCOUNT": "pipelines@my-project.iam.gserviceaccount.com",
           "HOTDOG_VERTEX_ENDPOINT": f"http://127.0.0.1:{fake_vertex.server_port}"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_cli_train_with_backend_vertex_submits_and_waits_for_the_job(vertex_env, fake_vertex, gcs, shared_images,
                                                                     tmp_path, prefect_server):
    sets = small_datasets(shared_images, tmp_path, 4, ["baseline"])
    specs_before = set(gcs.ls("vertex-test/hotdog/specs")) if gcs.exists("vertex-test/hotdog/specs") else set()
    result = CliRunner().invoke(app, ["train", "--backend", "vertex", "--data", sets["baseline"], "--backbone", "tiny",
                                      "--wait"])
    assert result.exit_code == 0, result.output
    job, link = result.output.strip().splitlines()[-2:]
    assert job.startswith("projects/my-project/locations/europe-west4/pipelineJobs/hotdog-")
    assert job.endswith(" (PIPELINE_STATE_SUCCEEDED)")
    assert link.startswith("https://console.cloud.google.com/vertex-ai/")
    assert gcs.exists("vertex-test/hotdog/data_root/baseline/train-baseline.tfrecord")
    assert gcs.exists("vertex-test/hotdog/data_root/baseline/eval-baseline.tfrecord")
    job_id = job.split()[0].rsplit("/", 1)[1]
    created = [r for r in fake_vertex.requests if r["method"] == "POST" and r["query"]["pipelineJobId"] == [job_id]]
    assert len(created) == 1
    body = created[0]["body"]
    assert body["serviceAccount"] == vertex_env["HOTDOG_VERTEX_SERVICE_ACCOUNT"]
    assert body["runtimeConfig"]["gcsOutputDirectory"] == "gs://vertex-test/hotdog/pipeline"
    assert set(body["pipelineSpec"]["root"]["dag"]["tasks"]) == COMPONENTS
    [spec] = set(gcs.ls("vertex-test/hotdog/specs")) - specs_before  # the uploaded spec the job was made from
    assert_every_component_has_its_executor(json.loads(gcs.cat_file(spec))["pipelineSpec"])


def assert_every_component_has_its_executor(spec):
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == COMPONENTS
    executors = spec["deploymentSpec"]["executors"]
    for name, task in tasks.items():
        component = spec["components"][task["componentRef"]["name"]]
        executor = executors[component["executorLabel"]]
        if "resolver" in name:  # resolved by Vertex AI itself (an importer/resolver executor)
            assert "resolver" in executor, name
        else:
            assert executor["container"]["image"] == IMAGE, name
    text = json.dumps(spec)
    assert "tfx_pipeline.trainer.run_fn" in text and "tfx_pipeline.preprocessing.preprocessing_fn" in text
    assert "gs://vertex-test/hotdog/data_root" in text and "gs://vertex-test/hotdog/registry" in text


SCHEMA = """feature { name: "image" type: BYTES presence { min_fraction: 1.0 min_count: 1 } shape { dim { size: 1 } } }
feature { name: "label" type: INT presence { min_fraction: 1.0 min_count: 1 } shape { dim { size: 3 } } }
feature { name: "sha256" type: BYTES presence { min_fraction: 1.0 min_count: 1 } shape { dim { size: 1 } } }
"""


def test_a_blessed_vertex_run_freezes_the_schema_the_next_run_is_held_to(vertex_env, fake_vertex, gcs,
                                                                          shared_images, tmp_path, prefect_server):
    """Vertex AI reports each task's output artifacts; after a run whose Evaluator blessed the
    model, SchemaGen's schema is frozen under HOTDOG_VERTEX_ROOT and the next spec's gate reads it."""
    run = "gs://vertex-test/hotdog/pipeline/123/hotdog-1"
    gcs.pipe(f"{run[5:]}/SchemaGen_1/schema/schema.pbtxt", SCHEMA.encode())
    gcs.pipe(f"{run[5:]}/Evaluator_1/blessing/BLESSED", b"")
    frozen = "vertex-test/hotdog/schema/schema.pbtxt"
    sets = small_datasets(shared_images, tmp_path, 4, ["baseline"])
    fake_vertex.task_outputs = {"SchemaGen": {"schema": f"{run}/SchemaGen_1/schema"},
                                "Evaluator": {"blessing": f"{run}/Evaluator_1/blessing"}}
    try:
        first = CliRunner().invoke(app, ["train", "--backend", "vertex", "--data", sets["baseline"], "--backbone",
                                         "tiny", "--wait"])
        assert first.exit_code == 0, first.output
        text = gcs.cat_file(frozen).decode()
        assert 'name: "label"' in text and "dim {\n      size: 3" in text  # the label keeps its width
        assert "presence" not in text.split('name: "sha256"')[1]  # the free-form features are relaxed
        second = CliRunner().invoke(app, ["train", "--backend", "vertex", "--data", sets["baseline"], "--backbone",
                                          "tiny", "--wait"])
        assert second.exit_code == 0, second.output
        job_id = second.output.strip().splitlines()[-2].split()[0].rsplit("/", 1)[1]
        [created] = [r for r in fake_vertex.requests if r["method"] == "POST"
                     and r["query"]["pipelineJobId"] == [job_id]]
        assert "gs://vertex-test/hotdog/pipeline/frozen_schema/" in json.dumps(created["body"]["pipelineSpec"])
    finally:
        fake_vertex.task_outputs = {}
        gcs.rm(frozen)


def test_an_unblessed_vertex_run_freezes_nothing(tmp_path):
    from types import SimpleNamespace

    blessing = tmp_path / "blessing"
    blessing.mkdir()
    (blessing / "NOT_BLESSED").write_text("")
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "schema.pbtxt").write_text(SCHEMA)

    def task(name, output, uri):
        return SimpleNamespace(task_name=name, outputs={output: SimpleNamespace(artifacts=[SimpleNamespace(uri=uri)])})

    job = SimpleNamespace(gca_resource=SimpleNamespace(job_detail=SimpleNamespace(task_details=[
        task("SchemaGen", "schema", str(tmp_path / "schema")), task("Evaluator", "blessing", str(blessing))])))
    assert not vertex.freeze_schema(job, str(tmp_path / "root"))
    (blessing / "BLESSED").write_text("")
    assert vertex.freeze_schema(job, str(tmp_path / "root"))
    assert not vertex.freeze_schema(job, str(tmp_path / "root"))  # frozen once


def test_the_fake_rejects_a_spec_without_executors():
    fake = load_fake()
    assert fake.spec_problems({"pipelineSpec": {"root": {"dag": {"tasks": {"A": {"componentRef": {"name": "c"}}}}},
                                                "components": {"c": {"executorLabel": "e"}}},
                               "runtimeConfig": {"gcsOutputDirectory": "/local"}}) == [
        "task A has no executor", "runtimeConfig.gcsOutputDirectory '/local' is not a gs:// path"]


@pytest.mark.parametrize("unset, value, message", [
    ("HOTDOG_VERTEX_PROJECT", None, "--backend vertex needs HOTDOG_VERTEX_PROJECT"),
    ("HOTDOG_VERTEX_IMAGE", None, "needs HOTDOG_VERTEX_IMAGE"),
    ("HOTDOG_VERTEX_ROOT", "/tmp/local", "HOTDOG_VERTEX_ROOT must be a gs:// prefix"),
    ("HOTDOG_VERTEX_TRAINER_ACCELERATOR", "NVIDIA_TESLA_T4", "ACCELERATOR needs HOTDOG_VERTEX_TRAINER_MACHINE_TYPE"),
    ("HOTDOG_VERTEX_BEAM_RUNNER", "spark", "HOTDOG_VERTEX_BEAM_RUNNER must be 'direct' or 'dataflow'"),
    ("HOTDOG_VERTEX_DATAFLOW_MAX_WORKERS", "many", "HOTDOG_VERTEX_DATAFLOW_MAX_WORKERS must be a whole number"),
])
def test_missing_vertex_settings_are_named(vertex_env, monkeypatch, unset, value, message):
    if value is None:
        monkeypatch.delenv(unset)
    else:
        monkeypatch.setenv(unset, value)
    with pytest.raises(HotdogInputError, match=message):
        vertex.VertexSettings.from_env()


def test_the_spec_runs_the_trainer_as_a_custom_job_and_the_beam_steps_on_dataflow(vertex_env, gcs, monkeypatch):
    from tasks import training

    gcs.makedirs("vertex-test/hotdog", exist_ok=True)
    plain, _ = vertex.compile_and_upload(vertex.VertexSettings.from_env(), training.TrainSettings(backbone="tiny"))
    for key, value in {"HOTDOG_VERTEX_TRAINER_MACHINE_TYPE": "n1-standard-8",
                       "HOTDOG_VERTEX_TRAINER_ACCELERATOR": "NVIDIA_TESLA_T4:2",
                       "HOTDOG_VERTEX_BEAM_RUNNER": "dataflow", "HOTDOG_VERTEX_DATAFLOW_MAX_WORKERS": "10"}.items():
        monkeypatch.setenv(key, value)
    scaled, _ = vertex.compile_and_upload(vertex.VertexSettings.from_env(), training.TrainSettings(backbone="tiny"))

    def trainer_and_beam_args(uri):
        spec = json.loads(gcs.cat_file(uri.removeprefix("gs://")))["pipelineSpec"]
        assert_every_component_has_its_executor(spec)
        label = spec["components"][spec["root"]["dag"]["tasks"]["Trainer"]["componentRef"]["name"]]["executorLabel"]
        trainer = json.dumps(spec["deploymentSpec"]["executors"][label])
        statistics = spec["components"][spec["root"]["dag"]["tasks"]["StatisticsGen"]["componentRef"]["name"]]
        return trainer, json.dumps(spec["deploymentSpec"]["executors"][statistics["executorLabel"]])

    trainer, beam = trainer_and_beam_args(plain)
    assert "google_cloud_ai_platform" not in trainer and "--runner=DirectRunner" in beam
    trainer, beam = trainer_and_beam_args(scaled)
    assert "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor" in trainer
    spec_text = json.dumps(json.loads(gcs.cat_file(scaled.removeprefix("gs://"))))
    for expected in ('\\"machine_type\\": \\"n1-standard-8\\"', '\\"accelerator_type\\": \\"NVIDIA_TESLA_T4\\"',
                     '\\"accelerator_count\\": 2', '\\"image_uri\\": \\"' + IMAGE):
        assert expected in spec_text, expected
    for flag in ("--runner=DataflowRunner", "--project=my-project", "--region=europe-west4",
                 "--temp_location=gs://vertex-test/hotdog/dataflow-tmp", f"--sdk_container_image={IMAGE}",
                 "--max_num_workers=10", "--service_account_email=pipelines@my-project.iam.gserviceaccount.com"):
        assert flag in beam, flag
