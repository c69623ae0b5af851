"""The CLI answers help and bad input at once: exit 2 and one line naming the file, field or
option, without starting a Prefect server or importing TensorFlow, Beam or even Prefect."""
import json
import re
import os
import subprocess
import sys
import time

import pytest

from tasks import settings
from tests.conftest import small_tree

PROBE = """
import json, runpy, sys
sys.argv = ["hotdog", *json.loads(sys.argv[1])]
code = 0
try:
    runpy.run_module("flows.cli", run_name="__main__")
except SystemExit as stop:
    code = stop.code
heavy = [m for m in ("tensorflow", "apache_beam", "prefect", "tfx") if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy}), file=sys.__stderr__)
"""


def probe(args, tmp_path):
    env = {**os.environ, "PYTHONPATH": settings.PROJECT_ROOT, "HOTDOG_WORKDIR": str(tmp_path / "work")}
    env.pop("PREFECT_API_URL", None)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, env=env,
                          timeout=120)
    seconds = time.perf_counter() - started
    *lines, last = done.stderr.strip().splitlines()
    return json.loads(last), done.stdout, "\n".join(lines), seconds


@pytest.fixture(scope="module")
def prefect_import_seconds():
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import prefect"], check=True, timeout=120)
    return time.perf_counter() - started


@pytest.mark.parametrize("args", [["--help"], ["ingest", "--help"], ["train", "--help"], ["run", "--help"],
                                  ["data", "fetch", "--help"], ["serve", "--help"],
                                  ["add-data", "--help"], ["serve-model", "--help"], ["models", "pin", "--help"]])
def test_help_is_immediate(args, tmp_path, prefect_import_seconds):
    outcome, out, err, seconds = probe(args, tmp_path)
    assert outcome == {"code": 0, "heavy": []}, err
    assert "Usage" in out
    assert seconds < prefect_import_seconds + 1.0, (seconds, prefect_import_seconds)


def bad_inputs(tmp_path):
    images = small_tree(tmp_path / "images", per_category=1)
    (tmp_path / "bad.yaml").write_text("classes: [a, b\n")
    (tmp_path / "not-a-set").mkdir()
    return [
        (["ingest", str(tmp_path / "missing"), "--out", str(tmp_path / "o")], "source folder not found: .*missing"),
        (["ingest", images, "--out", str(tmp_path / "o"), "--runner", "spark"], "Invalid value for '--runner'"),
        (["ingest", images, "--out", str(tmp_path / "o"), "--runner", "dask", "--dask-address", "scheduler"],
         "--dask-address 'scheduler' is not HOST:PORT"),
        (["ingest", images, "--out", str(tmp_path / "o"), "--project", "p", "--max-workers", "3"],
         "--project, --max-workers: options of --runner dataflow, not --runner direct"),
        (["datasets", images, "--out", "gs://b/sets", "--runner", "dataflow", "--project", "p"],
         "runner 'dataflow' needs --region, --temp-location, --sdk-container-image"),
        (["ingest", images, "--out", "gs://b/o", "--runner", "dataflow", "--project", "p", "--region", "r",
          "--temp-location", "gs://b/t", "--sdk-container-image", "i"], "not gs://: --source"),
        (["ingest", images, "--out", str(tmp_path / "o"), "--review", str(tmp_path / "r.json")],
         "review manifest not found: .*r.json"),
        (["datasets", images, "--out", str(tmp_path / "o"), "--config", str(tmp_path / "bad.yaml")],
         "bad.yaml is not valid YAML"),
        (["datasets", images, "--out", str(tmp_path / "o"), "--name", "nope"], r"unknown data set\(s\) \['nope'\]"),
        (["train", "--data", str(tmp_path / "not-a-set"), "--workdir", str(tmp_path / "w")],
         "not-a-set is not a data set folder"),
        (["train", "--data", str(tmp_path / "not-a-set"), "--workdir", str(tmp_path / "w"), "--backbone", "resnet"],
         "--backbone 'resnet' is not known"),
        (["train", "--data", str(tmp_path / "not-a-set"), "--backend", "kubeflow", "--workdir", "w"],
         "--backend 'kubeflow' is not known"),
        (["verdict", "--model", str(tmp_path / "not-a-set"), "--images", images, "--out", str(tmp_path / "o")],
         "not-a-set is not a SavedModel folder"),
        (["run", "--data", images, "--images", str(tmp_path / "nowhere")], "no images to judge: .*nowhere"),
        (["run", "--strategy", "slow"], "--strategy 'slow' is not known"),
        (["run", "--experiment", str(tmp_path / "gone.yaml")], "experiment file not found: .*gone.yaml"),
        (["run", "--experiment", str(tmp_path / "bad.yaml")], "experiment file .*bad.yaml is not valid YAML"),
        (["run", "--data", images, "--repeats", "0"], "--repeats must be >= 1, got 0"),
        (["predict", str(tmp_path / "gone.jpeg"), "--model", str(tmp_path / "not-a-set")],
         "not-a-set is not a SavedModel folder"),
        (["predict", images, "--workdir", str(tmp_path / "w")], "holds no pushed model"),
        (["add-data", str(tmp_path / "gone.tfrecord"), "--workdir", str(tmp_path / "w")], "gone.tfrecord: no such file"),
        (["add-data", str(tmp_path / "not-a-set"), "--workdir", str(tmp_path / "w")],
         "only \\*.tfrecord or \\*.tfrecord.gz files .*use 'hotdog train --data DIR'"),
        (["serve-model", "--workdir", str(tmp_path / "gone")], "work folder not found: .*gone"),
        (["serve-model", "--workdir", str(tmp_path / "not-a-set"), "--version", "7"],
         "version '7' is not in .*registry \\(versions: none\\)"),
        (["serve-model", "--workdir", str(tmp_path / "not-a-set"), "--max-batch-size", "0"],
         "--max-batch-size must be >= 1, got 0"),
        (["models", "list", "--workdir", str(tmp_path / "gone")], "work folder not found: .*gone"),
        (["models", "pin", "7", "--workdir", str(tmp_path / "not-a-set")], "version '7' is not in"),
        (["models", "rm", "7", "--workdir", str(tmp_path / "not-a-set")], "version '7' is not in"),
    ]


def test_bad_input_fails_at_once_with_one_line(tmp_path, prefect_import_seconds):
    for args, message in bad_inputs(tmp_path):
        outcome, out, err, seconds = probe(args, tmp_path)
        assert outcome == {"code": 2, "heavy": []}, (args, err)
        assert re.search(message, err), (args, err)
        assert seconds < prefect_import_seconds + 1.0, (args, seconds, prefect_import_seconds)
    assert not (tmp_path / "work").exists()  # no log, no server state: nothing was started


def test_run_refuses_a_work_folder_with_pushed_models(tmp_path, prefect_import_seconds):
    images = small_tree(tmp_path / "images", per_category=1)
    model = tmp_path / "old" / "run" / "training" / "registry" / "1700000000"
    model.mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"model")
    outcome, _, err, seconds = probe(["run", "--data", images, "--images", images, "--workdir",
                                      str(tmp_path / "old")], tmp_path)
    assert outcome == {"code": 2, "heavy": []}, err
    assert re.search(r"old/run/training holds 1 pushed model\(s\) in .*registry; .*pass --fresh", err), err
    assert (model / "saved_model.pb").read_bytes() == b"model"


HOLDER = """
import sys
from tasks import work_lock
with work_lock.held(sys.argv[1], "holder"):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_run_on_a_busy_work_folder_fails_fast_when_asked(tmp_path, prefect_import_seconds):
    images = small_tree(tmp_path / "images", per_category=1)
    folder = tmp_path / "work" / "run" / "training"
    env = {**os.environ, "PYTHONPATH": settings.PROJECT_ROOT}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline() == "held\n"
        outcome, _, err, seconds = probe(["run", "--data", images, "--images", images, "--fail-if-busy"], tmp_path)
    finally:
        holder.communicate("", timeout=60)
    assert outcome["code"] == 3, err
    assert f"is in use by pid {holder.pid} (holder, since " in err, err
    assert seconds < prefect_import_seconds + 1.0, (seconds, prefect_import_seconds)
