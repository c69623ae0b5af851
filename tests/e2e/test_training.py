"""The TFX pipeline on the local backend, through the Prefect flows, on a small real subset
with the ``tiny`` backbone (plumbing, not accuracy)."""
import json
import os
import re
import time

import pytest
import tensorflow as tf

from flows.train_flow import train
from flows.verdict_flow import verdict
from tasks import frozen_schema, training
from tasks.errors import HotdogInputError
from tests.conftest import progress_lines, small_datasets

pytestmark = pytest.mark.slow
TINY = dict(backbone="tiny", image_size=32, epochs=2, train_steps=3, eval_steps=2)
COMPONENTS = ("ImportExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "AnomaliesGate", "Transform",
              "Trainer", "Resolver", "Evaluator", "Pusher")
CHECKS = ("AnomaliesGate",)  # runs anew once the schema is frozen


@pytest.fixture(scope="module")
def small_sets(shared_images, tmp_path_factory):
    """baseline and taco_bias data sets from 30 images per category of the real data."""
    return small_datasets(shared_images, tmp_path_factory.mktemp("small"), 30, ["baseline", "taco_bias"])


def executions(workdir):
    from ml_metadata.metadata_store import metadata_store

    from tfx_pipeline.backends import local

    store = metadata_store.MetadataStore(training._sqlite_config(
        local.metadata_path(training.paths(workdir)["pipeline_root"])))
    return [(store.get_execution_types_by_id([e.type_id])[0].name.rsplit(".", 1)[-1], e.last_known_state)
            for e in sorted(store.get_executions(), key=lambda e: e.id)]


@pytest.fixture(scope="module")
def trained(small_sets, tmp_path_factory, prefect_server):
    workdir = str(tmp_path_factory.mktemp("training"))
    result = train([small_sets["baseline"]], workdir, min_accuracy=0.0, **TINY)
    return workdir, result


def test_every_component_ran_and_the_model_was_pushed(trained):
    workdir, result = trained
    assert result["blessed"] and result["pushed_model"].startswith(os.path.join(workdir, "registry"))
    ran = executions(workdir)
    assert {name for name, _ in ran} == set(COMPONENTS)
    assert all(state == 3 for _, state in ran)  # COMPLETE
    assert result["metrics"]["example_count"] > 0
    lineage = json.loads(open(result["pushed_model"] + ".lineage.json").read())
    assert lineage["data_sets"] == ["baseline"] and lineage["parameters"]["backbone"] == "tiny"
    assert lineage["examples_fingerprint"]
    assert 'name: "label"' in open(frozen_schema.path(workdir)).read()  # frozen by the first blessed model


def training_stats(model_uri: str) -> dict:
    """The Trainer's training_stats.json of the model artifact at ``model_uri``."""
    run = os.path.join(os.path.dirname(os.path.dirname(model_uri)), "model_run", os.path.basename(model_uri))
    return json.loads(open(os.path.join(run, "training_stats.json")).read())


def test_serving_signature_and_tflite_copy_score_raw_jpeg_and_png(trained, shared_images):
    from tasks.serving.scorer import Scorer

    _, result = trained
    predict = tf.saved_model.load(result["pushed_model"]).signatures["serving_default"]
    scorer = Scorer(result["pushed_model"])
    assert scorer.path == "tflite"
    files = [os.path.join(shared_images, "hot dog", sorted(os.listdir(os.path.join(shared_images, "hot dog")))[0]),
             os.path.join(shared_images, "submarine sandwich", "submarine sandwich_pg_0_pos_48.png")]
    for path in files:
        example = tf.train.Example(features=tf.train.Features(feature={"image": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[open(path, "rb").read()]))}))
        outputs = predict(tf.constant([example.SerializeToString()]))["outputs"].numpy()
        assert outputs.shape == (1, 3)
        assert abs(float(outputs.sum()) - 1.0) < 1e-5 and (outputs >= 0).all()
        assert abs(scorer([example.SerializeToString()]) - outputs).max() < 1e-5


def test_rerun_without_changes_executes_nothing(trained, small_sets):
    """The first re-run re-evaluates once (the Evaluator now has a blessed baseline to compare
    with); from then on a run with nothing new is served entirely from the cache."""
    workdir, first = trained
    before = len(executions(workdir))
    second_result = train([small_sets["baseline"]], workdir, min_accuracy=0.0, **TINY)
    second = executions(workdir)[before:]
    assert {name for name, state in second if state != 5} <= {*CHECKS, "Resolver", "Evaluator", "Pusher"}, second
    assert {name for name, state in second if state == 3} >= set(CHECKS), second
    before = len(executions(workdir))
    with progress_lines() as lines:
        again = train([small_sets["baseline"]], workdir, min_accuracy=0.0, **TINY)
    third = executions(workdir)[before:]
    assert third and all(state == 5 for name, state in third if name != "Resolver"), third  # CACHED
    components = [line.split() for line in lines if re.match(r"\s+\d+/10 ", line)]
    assert [how for _, name, how, *_ in components if name != "Resolver"] == ["cached"] * 9, lines
    assert again["model_uri"] == second_result["model_uri"] == first["model_uri"]  # never retrained
    assert again["pushed_model"] == second_result["pushed_model"]


def test_new_tfrecord_file_trains_a_new_model_version(trained, small_sets):
    workdir, first = trained

    def versions():
        return {v for v in os.listdir(training.paths(workdir)["registry"]) if v.isdigit()}

    before = versions()
    result = train([small_sets["taco_bias"]], workdir, min_accuracy=0.0, max_regression=1.0, **TINY)
    assert result["model_uri"] != first["model_uri"]  # retrained
    before_stats, stats = training_stats(first["model_uri"]), training_stats(result["model_uri"])
    seen = before_stats["train_images"] + before_stats["eval_images"]
    assert before_stats["features_computed"] == seen and before_stats["features_cached"] == 0
    total = stats["train_images"] + stats["eval_images"]
    assert stats["features_cached"] >= seen  # only the new data set's images went through the backbone
    assert 0 < stats["features_computed"] == total - stats["features_cached"] <= total - seen
    assert versions() - before == {os.path.basename(result["pushed_model"])}
    assert sorted(os.listdir(training.paths(workdir)["data_root"])) == ["baseline", "classes.json", "taco_bias"]
    assert json.loads(open(result["pushed_model"] + ".lineage.json").read())["data_sets"] == ["baseline", "taco_bias"]


def test_unblessed_model_says_why(trained, small_sets):
    """A stricter Evaluator on the same work folder: only the Evaluator and Pusher run again."""
    workdir, _ = trained
    before = os.listdir(training.paths(workdir)["registry"])
    result = train([small_sets["baseline"]], workdir, min_accuracy=1.0, max_regression=1.0, **TINY)
    assert not result["blessed"] and result["pushed_model"] is None
    assert os.listdir(training.paths(workdir)["registry"]) == before
    assert "categorical_accuracy" in result["reason"] and "below the minimum 1" in result["reason"]


def test_verdict_report(trained, shared_images, tmp_path):
    _, result = trained
    images = tmp_path / "hot dogs"
    images.mkdir()
    for name in sorted(os.listdir(os.path.join(shared_images, "hot dog")))[:20]:
        (images / name).write_bytes(open(os.path.join(shared_images, "hot dog", name), "rb").read())
    (images / "broken.jpeg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    summary = verdict({"tiny": result["pushed_model"]}, str(images), str(tmp_path / "out"))
    entry = summary["models"][0]
    assert summary["images"] == 20 and summary["skipped"] == [{"path": "broken.jpeg", "reason": "truncated"}]
    assert summary["classes"] == list(entry["scores"]) == ["food", "sandwich", "taco"]  # data/datasets.yaml's
    assert abs(sum(s["mean"] for s in entry["scores"].values()) - 1) < 1e-4
    for score in entry["scores"].values():
        low, high = score["ci95"]
        assert low <= score["mean"] <= high
    assert sorted(os.listdir(tmp_path / "out")) == ["predictions.csv", "report.md", "summary.json", "verdict.png"]
    assert (tmp_path / "out" / "verdict.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((tmp_path / "out" / "predictions.csv").read_text().splitlines()) == 21


def test_predict_scores_what_it_can_and_names_what_it_cannot(trained, shared_images, tmp_path):
    from tasks.serving import predict

    _, result = trained
    photo = os.path.join(shared_images, "hot dog", sorted(os.listdir(os.path.join(shared_images, "hot dog")))[0])
    (tmp_path / "notes.txt").write_text("not an image")
    names, rows = predict.predict([photo, str(tmp_path)], result["pushed_model"])
    assert names == ["food", "sandwich", "taco"]
    assert rows[0]["path"] == photo and rows[0]["top"] == max(rows[0]["probabilities"],
                                                              key=rows[0]["probabilities"].get)
    assert rows[1]["path"].endswith("notes.txt") and "error" in rows[1] and "probabilities" not in rows[1]
    table = predict.render(names, rows, "table").splitlines()
    assert len(table) == 2 and "error: " in table[1]
    assert predict.render(names, rows, "csv").splitlines()[0] == "path,top,food,sandwich,taco,error"
    assert predict.predict([str(tmp_path)], result["pushed_model"])[0] == []  # nothing scored


def test_a_data_set_of_other_classes_is_refused_before_any_training(trained, tmp_path):
    workdir, _ = trained
    folder = tmp_path / "pets"
    folder.mkdir()
    (folder / "dataset.json").write_text(json.dumps({"name": "pets", "files": [], "classes": [
        {"name": "cat", "label_index": 0, "categories": ["cat"]}, {"name": "dog", "label_index": 1,
                                                                   "categories": ["dog"]}]}))
    ran = executions(workdir)
    with pytest.raises(HotdogInputError, match=r"data set 'pets' has classes \['cat', 'dog'\] but data set "
                                               r"'baseline' \(already in the data root .*\) has \['food', "
                                               r"'sandwich', 'taco'\]"):
        train([str(folder)], workdir, min_accuracy=0.0, **TINY)
    assert executions(workdir) == ran and "pets" not in os.listdir(training.paths(workdir)["data_root"])


def two_class_data_set(small_sets, root):
    """A data-set folder like ``baseline`` whose labels have 2 classes, not 3."""
    card = json.loads(open(os.path.join(small_sets["baseline"], "dataset.json")).read())
    folder = os.path.join(str(root), "two_classes")
    os.makedirs(folder)
    with tf.io.TFRecordWriter(os.path.join(folder, "two_classes.tfrecord")) as writer:
        for record in tf.data.TFRecordDataset(os.path.join(small_sets["baseline"], card["files"][0]["file"])):
            example = tf.train.Example.FromString(record.numpy())
            label = example.features.feature["label"].int64_list.value
            example.features.feature["label"].int64_list.value[:] = [label[0], 1 - label[0]]
            writer.write(example.SerializeToString())
    card.update(name="two_classes", files=[{"file": "two_classes.tfrecord"}])
    open(os.path.join(folder, "dataset.json"), "w").write(json.dumps(card))
    return folder


def test_data_that_breaks_the_frozen_schema_stops_training_naming_the_feature(trained, small_sets, tmp_path):
    import shutil

    workdir = str(tmp_path / "copy")
    shutil.copytree(trained[0], workdir)
    registry = sorted(os.listdir(training.paths(workdir)["registry"]))
    with pytest.raises(HotdogInputError, match=r"does not match its schema: train: feature 'label'.*frozen schema"):
        train([two_class_data_set(small_sets, tmp_path)], workdir, min_accuracy=0.0, **TINY)
    assert sorted(os.listdir(training.paths(workdir)["registry"])) == registry
    ran = executions(workdir)
    assert ran[-1] == ("AnomaliesGate", 4) and "Transform" not in {name for name, _ in ran[-3:]}  # FAILED


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "kubeflow"}, "--backend 'kubeflow' is not known"),
    ({"backbone": "resnet"}, "--backbone 'resnet' is not known"),
    ({"strategy": "slow"}, "--strategy 'slow' is not known"),
])
def test_bad_training_options(small_sets, tmp_path, kwargs, message):
    settings = training.TrainSettings(**{k: v for k, v in kwargs.items() if k != "backend"})
    with pytest.raises(HotdogInputError, match=message):
        training.train([small_sets["baseline"]], str(tmp_path), settings, kwargs.get("backend", "local"))


def test_data_folder_without_card(tmp_path):
    with pytest.raises(HotdogInputError, match="is not a data set folder"):
        training.train([str(tmp_path)], str(tmp_path / "w"), training.TrainSettings())


def test_finetune_strategy_trains_the_whole_network(small_sets, tmp_path, prefect_server):
    result = train([small_sets["baseline"]], str(tmp_path), strategy="finetune", min_accuracy=0.0,
                   **{**TINY, "epochs": 1})
    assert result["pushed_model"]
    stats_files = [os.path.join(d, f) for d, _, files in os.walk(tmp_path / "pipeline" / "Trainer")
                   for f in files if f == "training_stats.json"]
    stats = json.loads(open(stats_files[0]).read())
    assert stats["strategy"] == "finetune" and stats["epochs_run"] == 1 and stats["train_images_per_second"] > 0


def hotdog_train(args, env):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "flows.cli", "train", *args], capture_output=True, text=True,
                          env=env, timeout=900)


def test_two_trains_on_one_work_folder_run_one_after_the_other(trained, small_sets, tmp_path):
    import shutil
    import threading

    from prefect.settings import PREFECT_API_URL

    from tasks import settings, work_lock

    workdir = str(tmp_path / "copy")
    shutil.copytree(trained[0], workdir)
    env = {**os.environ, "PYTHONPATH": settings.PROJECT_ROOT, "PREFECT_API_URL": PREFECT_API_URL.value()}
    args = ["--data", small_sets["taco_bias"], "--workdir", workdir, "--backbone", "tiny", "--image-size", "32",
            "--epochs", "2", "--train-steps", "3", "--eval-steps", "2", "--min-accuracy", "0", "--max-regression", "1"]
    outcome = {}
    first = threading.Thread(target=lambda: outcome.update(train([small_sets["taco_bias"]], workdir,
                                                                  min_accuracy=0.0, max_regression=1.0, **TINY)))
    first.start()
    lock = os.path.join(workdir, work_lock.LOCK_FILE)
    deadline = time.monotonic() + 120
    while f'"pid": {os.getpid()}' not in open(lock).read():
        assert time.monotonic() < deadline and first.is_alive(), "the first run never held the work folder"
        time.sleep(0.2)
    busy = hotdog_train([*args, "--fail-if-busy"], env)
    assert busy.returncode == 3, busy.stderr[-3000:]
    assert f"is in use by pid {os.getpid()} (train, since " in busy.stderr
    assert first.is_alive()  # the second one below starts while the first still trains
    waited = hotdog_train(args, env)
    first.join(timeout=600)
    assert waited.returncode == 0, waited.stderr[-3000:]
    assert f"waiting for pid {os.getpid()} (train, since " in waited.stderr
    second = waited.stdout.strip().splitlines()[-1]  # the same model, pushed again after a re-evaluation
    assert outcome["pushed_model"] and int(os.path.basename(second)) > int(os.path.basename(outcome["pushed_model"]))
