"""The `hotdog` command as a new user runs it: a fresh HOME (no ~/.prefect), no PREFECT_API_URL,
a process of its own. It must start its temporary Prefect server even with both cores busy,
print a few progress lines and keep the full log in the work folder."""
import contextlib
import json
import os
import re
import subprocess
import sys

import pytest

from tasks import settings
from tests.conftest import small_tree
from tests.e2e.test_flows import photo_tree

pytestmark = pytest.mark.slow


def hotdog(args, home, workdir, timeout):
    os.makedirs(home, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(HOME=str(home), PYTHONPATH=settings.PROJECT_ROOT, TF_USE_LEGACY_KERAS="1", HOTDOG_WORKDIR=str(workdir))
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@contextlib.contextmanager
def busy_cores():
    """One spinning process per core for the duration of the block."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def log_of(stderr: str, workdir) -> str:
    first = stderr.splitlines()[0]
    match = re.fullmatch(r"hotdog \w+: full log in (\S+) \(--verbose shows it here\)", first)
    assert match, first
    assert match.group(1).startswith(os.path.join(str(workdir), "logs") + os.sep)
    return open(match.group(1)).read()


def test_a_fresh_home_on_busy_cores_gets_a_temporary_server(tmp_path):
    images = small_tree(tmp_path / "images")
    home, work = tmp_path / "home", tmp_path / "work"
    with busy_cores():
        done = hotdog(["ingest", images, "--out", str(tmp_path / "out")], home, work, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[1].startswith("Prefect: starting a temporary server on 127.0.0.1:")
    assert re.fullmatch(r"Prefect: server ready in [\d.]+ s", lines[2])
    assert re.fullmatch(r"ingest: 15 files in 3 categories: 12 accepted, 3 duplicate, 0 review_rejected, "
                        r"0 over_cap, 0 invalid \([\d.]+ s\) -> .*out", lines[3])
    assert len(lines) == 4, done.stderr
    assert json.loads(done.stdout)["accepted"] == 12
    assert (home / ".prefect").is_dir()  # Prefect's state went to the fresh HOME
    log = log_of(done.stderr, work)
    assert " ERROR " not in log and "Traceback" not in log


def test_end_to_end_job_says_what_it_does(tmp_path):
    """...and trains in its own folder, leaving the deployments' training/ as it was."""
    source = photo_tree(tmp_path / "photos")
    work = tmp_path / "work"
    deployed = work / "training" / "registry" / "1700000000"
    deployed.mkdir(parents=True)
    (deployed / "saved_model.pb").write_bytes(b"a model the nightly deployment pushed")
    done = hotdog(["run", "--data", source, "--backbone", "tiny", "--epochs", "2", "--min-accuracy", "0",
                   "--max-regression", "1"], tmp_path / "home", work, timeout=1200)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) < 70, done.stderr  # 3 steps x 10 component lines, and about 30 more
    assert "data sets: baseline 18, taco_bias 18, sandwich_bias 18 examples" in done.stderr
    assert [line for line in lines if line.startswith("step ")] == [
        "step 1/3: baseline", "step 2/3: baseline + taco_bias", "step 3/3: baseline + taco_bias + sandwich_bias"]
    components = [line.split()[:3] for line in lines if re.match(r"\s+\d+/10 ", line)]
    names = {"ImportExampleGen", "Resolver", "StatisticsGen", "SchemaGen", "ExampleValidator", "AnomaliesGate",
             "Transform", "Trainer", "Evaluator", "Pusher"}
    assert [index for index, _, _ in components] == [f"{i}/10" for i in range(1, 11)] * 3, lines
    assert all({name for _, name, _ in components[i:i + 10]} == names for i in (0, 10, 20))
    assert {how for _, name, how in components if name == "Trainer"} == {"executed"}
    assert len(re.findall(r"\d+ of at most 2 epochs.*best val_accuracy", done.stderr)) == 3
    assert len(re.findall(r"train: model \d+ blessed \(accuracy [\d.]+\), pushed to ", done.stderr)) == 3
    report = work / "verdict" / "final" / "report.md"
    assert done.stdout.strip() == str(report)
    assert "| taco_bias |" in report.read_text() and "13.8% / 11.3% / 74.9%" in report.read_text()
    assert sorted(os.listdir(work / "run" / "training" / "data_root")) == ["baseline", "classes.json", "sandwich_bias",
                                                                           "taco_bias"]
    assert (work / "run" / "training" / "schema" / "schema.pbtxt").exists()
    assert (deployed / "saved_model.pb").read_bytes() == b"a model the nightly deployment pushed"
    log = log_of(done.stderr, work)
    assert "Component Trainer is running." in log  # the detail is in the log, not on the terminal
    assert " ERROR " not in log and "Traceback" not in log
