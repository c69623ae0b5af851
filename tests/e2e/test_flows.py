"""Flows and CLI through a real Prefect server: artifacts, bad options, the end-to-end job."""
import json
import os

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.ingest_flow import ingest_images
from flows.run_flow import hotdog_run
from tasks.errors import HotdogInputError

pytestmark = pytest.mark.slow


def test_ingest_flow_publishes_a_summary_artifact(tree, tmp_path, prefect_server):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    state = ingest_images(tree, str(tmp_path / "out"), return_state=True)
    assert state.result()["totals"]["accepted"] == 12

    async def this_runs_table():
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["ingest-summary"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))

    (artifact,) = asyncio.run(this_runs_table())
    table = artifact.data if isinstance(artifact.data, list) else json.loads(artifact.data)
    assert {row["category"]: row["accepted"] for row in table} == {"food": 4, "sandwich": 4, "taco": 4}


def test_unknown_runner_fails_before_any_work(tree, tmp_path, prefect_server):
    with pytest.raises(HotdogInputError, match="--runner 'spark' is not supported"):
        ingest_images(tree, str(tmp_path / "out"), runner="spark")
    assert not (tmp_path / "out").exists()


CATEGORIES = ["food", "sandwich", "taco", "open face sandwich", "hard taco", "submarine sandwich", "flat taco",
              "hot dog"]


def photo_tree(root, per_category=6):
    from tests.conftest import image_bytes, write_tree

    files = {f"{c}/{i}.jpeg": image_bytes(color=(k * 30, i * 40, 5)) for k, c in enumerate(CATEGORIES)
             for i in range(per_category)}
    return write_tree(root, files)


def test_end_to_end_job_checks_the_images_to_judge_first(tmp_path, prefect_server):
    source = photo_tree(tmp_path / "photos", per_category=1)
    with pytest.raises(HotdogInputError, match="no images to judge: .*nowhere"):
        hotdog_run(source, str(tmp_path / "work"), images=str(tmp_path / "nowhere"))
    assert not (tmp_path / "work").exists()


def test_cli_ingest_and_datasets(tree, tmp_path, prefect_server):
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", tree, "--out", str(tmp_path / "ing"), "--max-per-category", "3"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["over_cap"] == 3
    result = runner.invoke(app, ["datasets", str(tmp_path / "ing"), "--out", str(tmp_path / "sets"),
                                 "--name", "baseline", "--shards", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1]) == {"baseline": 9}


def test_cli_add_data_accounts_for_every_file_and_quarantines_the_bad_one(tmp_path, prefect_server):
    import tensorflow as tf

    from tasks import tfrecords
    from tests.conftest import image_bytes

    good, bad = str(tmp_path / "good.tfrecord"), str(tmp_path / "bad.tfrecord")
    with tf.io.TFRecordWriter(good) as writer:
        writer.write(tfrecords.labelled_example(image_bytes(), [0, 1]))
    with tf.io.TFRecordWriter(bad) as writer:
        writer.write(tfrecords.labelled_example(b"not an image", [0, 1]))
    work = tmp_path / "work"
    result = CliRunner().invoke(app, ["add-data", good, bad, "--workdir", str(work)])
    assert result.exit_code == 2, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [entry["uri"] for entry in lines] == [good, bad]
    assert lines[0]["staged"].startswith(str(work / "data_root" / "uploads") + "/")
    assert "record 0: image is" in lines[1]["refused"] and "quarantined" in lines[1]["refused"]
    assert os.listdir(work / "data_root") == ["uploads"] and len(os.listdir(work / "data_root" / "uploads")) == 1
    assert any(name.endswith(".json") for name in os.listdir(work / "quarantine"))
    assert "1 file(s) refused and quarantined: " + bad in result.stderr


def test_cli_reports_bad_input_in_one_line(tmp_path, prefect_server):
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "error: source folder not found" in result.output


@pytest.mark.parametrize("command", ["ingest", "datasets", "run"])
def test_every_command_has_help(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
