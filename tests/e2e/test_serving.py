"""`hotdog serve-model` as a real server on 127.0.0.1 over a registry the TFX pipeline pushed to
(tiny backbone): TF Serving's REST API against `hotdog predict`, bad input, the web pages in a
real browser, a version that does not load, a hot swap under load, pins and removal."""
import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import httpx
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.train_flow import train
from tasks import services, settings, tfrecords
from tasks.serving import predict, registry
from tests.conftest import image_bytes, png_claiming, small_datasets

pytestmark = pytest.mark.slow
TINY = dict(backbone="tiny", image_size=32, epochs=2, train_steps=3, eval_steps=2, min_accuracy=0.0,
            max_regression=1.0)
ARTIFACTS = os.environ.get("HOTDOG_TEST_ARTIFACTS", os.path.join(settings.PROJECT_ROOT, "build", "test-artifacts"))


def photos(shared_images, category, count):
    folder = os.path.join(shared_images, category)
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))[:count]]


def status(url):
    return httpx.get(f"{url}/v1/models/default", timeout=10).json()["model_version_status"]


def serving_version(url):
    return next((s["version"] for s in status(url) if s["state"] == "AVAILABLE"), None)


def wait_until(condition, what, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def served(shared_images, tmp_path_factory, prefect_server):
    """A registry with one tiny model, a verdict report of it, and `hotdog serve-model` on both."""
    from tasks.verdict import run_verdict

    root = tmp_path_factory.mktemp("serving")
    sets = small_datasets(shared_images, root, 30, ["baseline", "taco_bias"])
    workdir = str(root / "training")
    first = train([sets["baseline"]], workdir, **TINY)
    judged = root / "hot dogs"
    judged.mkdir()
    for path in photos(shared_images, "hot dog", 6):
        shutil.copy(path, judged)
    run_verdict({"baseline": first["pushed_model"]}, str(judged), str(root / "report"), "Served model")
    port = services.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": settings.PROJECT_ROOT, "TF_USE_LEGACY_KERAS": "1"}
    with open(root / "server.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve-model", "--workdir", workdir, "--port",
                                 str(port), "--poll-seconds", "0.3", "--report", str(root / "report")],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        services.wait_http(f"{url}/v1/models/default", "the model server", timeout=180, proc=proc)
        yield {"url": url, "workdir": workdir, "sets": sets, "first": first, "log": root / "server.log",
               "version": os.path.basename(first["pushed_model"]), "port": port}
    finally:
        services.stop_process(proc)
    assert not os.path.exists(registry.served_record_path(workdir, port)), "the server left its record behind"


def b64_example(path):
    with open(path, "rb") as handle:
        return {"b64": base64.b64encode(tfrecords.image_example(handle.read())).decode()}


def test_tf_serving_predict_gives_what_hotdog_predict_gives(served, shared_images):
    files = photos(shared_images, "hot dog", 3) + photos(shared_images, "taco", 2)
    response = httpx.post(f"{served['url']}/v1/models/default:predict",
                          json={"instances": [b64_example(f) for f in files]}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["X-Model-Version"] == served["version"]
    names, rows = predict.predict(files, served["first"]["pushed_model"])
    for served_row, local in zip(response.json()["predictions"], rows):
        assert served_row == pytest.approx([local["probabilities"][n] for n in names], abs=1e-5)
    columnar = httpx.post(f"{served['url']}/v1/models/default/versions/{served['version']}:predict",
                          json={"inputs": {"examples": [b64_example(files[0])]}}, timeout=60).json()
    assert columnar["outputs"][0] == pytest.approx(response.json()["predictions"][0], abs=1e-6)
    classify = httpx.post(f"{served['url']}/v1/models/default:predict",
                          json={"signature_name": "classify", "instances": [b64_example(files[0])]}, timeout=60)
    assert classify.json()["predictions"][0]["classes"] == names == ["food", "sandwich", "taco"]
    meta = httpx.get(f"{served['url']}/v1/models/default/metadata", timeout=10).json()
    assert meta["model_spec"]["version"] == served["version"] and meta["metadata"]["class_names"] == names
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["examples"]["dtype"] == "DT_STRING"
    assert signature["outputs"]["outputs"]["tensor_shape"]["dim"][1]["size"] == "3"
    with open(files[3], "rb") as handle:
        upload = httpx.post(f"{served['url']}/v1/models/default:classify-image",
                            files={"image": ("taco.jpg", handle, "image/jpeg")}, timeout=60).json()
    assert upload["model_version"] == served["version"] and upload["top"] == rows[3]["top"]
    assert upload["probabilities"] == pytest.approx(rows[3]["probabilities"], abs=1e-5)


def test_bad_input_gets_its_status_and_the_server_keeps_serving(served, shared_images):
    url = f"{served['url']}/v1/models/default"
    good = photos(shared_images, "food", 1)[0]
    jpeg = open(good, "rb").read()
    bad = [
        (f"{url}:classify-image", b"not an image at all", 400, "not_an_image"),
        (f"{url}:classify-image", b"", 400, "empty"),
        (f"{url}:classify-image", jpeg[:len(jpeg) // 2], 400, "truncated"),
        (f"{url}:classify-image", png_claiming(10_000, 10_000), 400, "too_large"),
        (f"{url}:classify-image", b"\xff" * (10 * 2**20 + 1), 413, "limit is 10485760"),
        (f"{url}:predict", b"{instances", 400, "not valid JSON"),
        (f"{url}:predict", json.dumps({"instances": [{"b64": base64.b64encode(jpeg).decode()}]}).encode(), 400,
         "not a serialized tf.Example"),
        (f"{served['url']}/v1/models/other:predict", json.dumps({"instances": [b64_example(good)]}).encode(), 404,
         "no model named 'other'"),
        (f"{url}/versions/1:predict", json.dumps({"instances": [b64_example(good)]}).encode(), 404,
         "version 1 of model 'default' is not served"),
    ]
    for target, body, code, message in bad:
        response = httpx.post(target, content=body, timeout=60)
        assert response.status_code == code and message in response.json()["error"], (target, response.text)
        ok = httpx.post(f"{url}:classify-image", content=jpeg, timeout=60)
        assert ok.status_code == 200 and ok.json()["model_version"] == served["version"]
    mixed = httpx.post(f"{url}:predict", json={"instances": [b64_example(good), {"b64": base64.b64encode(
        tfrecords.image_example(image_bytes("PNG")[:20])).decode()}]}, timeout=60)
    assert mixed.status_code == 400 and mixed.json()["error"].startswith("instance 1: ")


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if subprocess.run([os.path.join(settings.PROJECT_ROOT, "scripts", "ensure-chromium")]).returncode != 0:
        pytest.fail("Chromium is missing and could not be installed (scripts/ensure-chromium)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def test_the_web_pages_in_a_real_browser(served, shared_images):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = photos(shared_images, "hot dog", 8)[7]
    names, rows = predict.predict([photo], served["first"]["pushed_model"])
    os.makedirs(ARTIFACTS, exist_ok=True)
    browser = chromium()
    try:
        browser.get(served["url"] + "/")
        WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"))
        browser.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(photo)
        WebDriverWait(browser, 60).until(lambda b: "probability" in b.find_element(By.ID, "probability-table").text)
        cells = browser.find_element(By.ID, "probability-table").text.split()[2:]
        shown = {cells[i]: float(cells[i + 1]) for i in range(0, len(cells), 2)}
        assert shown == pytest.approx(rows[0]["probabilities"], abs=1e-6)
        bars = browser.find_element(By.ID, "probability-bars").text
        assert all(name in bars for name in names) and "%" in bars
        assert f"scored by version {served['version']}" in browser.find_element(By.ID, "model-line").text
        browser.save_screenshot(os.path.join(ARTIFACTS, "serving-page.png"))
        browser.get(served["url"] + "/report")
        WebDriverWait(browser, 60).until(lambda b: "Served model" in b.find_element(By.ID, "report").text)
        report = browser.find_element(By.ID, "report").text
        assert "baseline" in report and all(name in report for name in names)
        WebDriverWait(browser, 30).until(lambda b: served["version"] in b.find_element(By.ID, "versions").text)
        assert "yes" in browser.find_element(By.ID, "versions").text
        WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#report-chart img"))
        browser.save_screenshot(os.path.join(ARTIFACTS, "serving-report.png"))
    finally:
        browser.quit()


def test_a_version_that_fails_to_load_is_reported_and_the_old_one_keeps_serving(served):
    broken = str(int(served["version"]) + 1)
    folder = registry.version_dir(served["workdir"], broken)
    os.makedirs(os.path.join(folder, "variables"))
    with open(os.path.join(folder, "saved_model.pb"), "wb") as handle:
        handle.write(b"not a SavedModel")
    try:
        failed = wait_until(lambda: [s for s in status(served["url"]) if s["version"] == broken
                                     and s["state"] == "END"], "the broken version's status")
        assert failed[0]["status"]["error_message"]
        assert serving_version(served["url"]) == served["version"]
        assert f"version {broken} of model 'default' failed to load" in served["log"].read_text()
    finally:
        registry.remove(served["workdir"], broken)


def test_a_push_under_load_swaps_versions_without_a_failed_or_mixed_request_and_a_pin_rolls_back(
        served, shared_images):
    url, workdir, old = served["url"], served["workdir"], served["version"]
    images = [open(p, "rb").read() for p in photos(shared_images, "sandwich", 4)]
    seen, stop = {k: [] for k in range(2)}, threading.Event()

    def client(k):
        with httpx.Client(timeout=60) as session:
            while not stop.is_set():
                response = session.post(f"{url}/v1/models/default:predict", json={"instances": [
                    {"b64": base64.b64encode(tfrecords.image_example(image)).decode()} for image in images]})
                seen[k].append((response.status_code, response.headers.get("X-Model-Version")))

    clients = [threading.Thread(target=client, args=(k,)) for k in seen]
    for thread in clients:
        thread.start()
    try:
        second = train([served["sets"]["baseline"], served["sets"]["taco_bias"]], workdir, **TINY)
        new = os.path.basename(second["pushed_model"])
        wait_until(lambda: all(sum(v == new for _, v in seen[k]) >= 3 for k in seen), "requests to the new version")
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    for k, answers in seen.items():
        assert {code for code, _ in answers} == {200}, answers
        versions = [v for _, v in answers]
        assert versions == sorted(versions, key=[old, new].index), f"client {k} went back: {versions}"
        assert old in versions and new in versions
    assert serving_version(url) == new

    runner = CliRunner()
    assert runner.invoke(app, ["models", "pin", old, "--workdir", workdir]).exit_code == 0
    wait_until(lambda: serving_version(url) == old, "the pinned version", timeout=30)
    listed = {row["version"]: row for row in map(json.loads, runner.invoke(
        app, ["models", "list", "--workdir", workdir, "--json"]).output.splitlines())}
    assert listed[old]["pinned"] and listed[old]["served"] and not listed[new]["served"]
    refused = runner.invoke(app, ["models", "rm", old, "--workdir", workdir])
    assert refused.exit_code == 2 and "pinned" in refused.output
    assert runner.invoke(app, ["models", "unpin", "--workdir", workdir]).exit_code == 0
    wait_until(lambda: serving_version(url) == new, "the latest version after unpinning", timeout=30)
    refused = runner.invoke(app, ["models", "rm", new, "--workdir", workdir])
    assert refused.exit_code == 2 and f"served by {url}" in refused.output
    removed = runner.invoke(app, ["models", "rm", old, "--workdir", workdir])
    assert removed.exit_code == 0, removed.output
    assert registry.complete_versions(workdir) == [new]
    assert json.loads(runner.invoke(app, ["models", "show", new, "--workdir", workdir]).output)["lineage"][
        "data_sets"] == ["baseline", "taco_bias"]


def test_a_gs_registry_is_served_through_a_local_copy(served, gcs, shared_images):
    import asyncio

    from tasks.serving.models import ModelManager

    version = registry.complete_versions(served["workdir"])[-1]
    local = registry.version_dir(served["workdir"], version)
    gcs.mkdir("serving-test")
    gcs.put(local, f"serving-test/work/registry/{version}", recursive=True)
    manager = ModelManager("gs://serving-test/work")
    manager.start()
    try:
        photo = photos(shared_images, "taco", 1)[0]
        rows, servable = asyncio.run(manager.predict([tfrecords.image_example(open(photo, "rb").read())]))
        assert servable.version == version and servable.local_copy and os.path.isdir(servable.local_copy)
        names, expected = predict.predict([photo], local)
        assert list(rows[0]) == pytest.approx([expected[0]["probabilities"][n] for n in names], abs=1e-5)
    finally:
        manager.stop()
    assert not os.path.exists(servable.local_copy), "the local copy outlived its version"
