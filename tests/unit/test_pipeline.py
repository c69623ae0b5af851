"""create_pipeline: module files read in place and keyed by the code's fingerprint, an import
that leaves the Vertex AI SDK out, and an Evaluator that runs models by their signature."""
import os
import shutil
import subprocess
import sys

from tasks import settings
from tfx_pipeline import pipeline
from tfx_pipeline.settings import TrainSettings


def build(tmp_path, **kwargs):
    return pipeline.create_pipeline("p", str(tmp_path / "root"), str(tmp_path / "data"), str(tmp_path / "reg"),
                                    ["--runner=DirectRunner"], settings=TrainSettings(backbone="tiny"), **kwargs)


def components(built):
    return {component.id: component for component in built.components}


def test_module_files_are_read_in_place_and_carry_the_code_fingerprint(tmp_path):
    built = components(build(tmp_path))
    fingerprint = pipeline.code_fingerprint()
    for name, module in (("Transform", pipeline.PREPROCESSING_MODULE), ("Trainer", pipeline.TRAINER_MODULE)):
        component = built[name]
        assert component.exec_properties["module_file"] == module
        assert not component.exec_properties.get("module_path"), name
        assert not component._pip_dependencies, name  # no user-code wheel to build and install
        assert f'"code": "{fingerprint}"' in component.exec_properties["custom_config"], name
    assert "UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES" not in os.environ


def test_the_fingerprint_follows_the_code_the_components_run(tmp_path):
    package = tmp_path / "tfx_pipeline"
    shutil.copytree(pipeline.HERE, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = pipeline.code_fingerprint(str(package))
    assert before == pipeline.code_fingerprint()
    (package / "backends" / "local.py").write_text("# a backend does not change what components compute\n")
    assert pipeline.code_fingerprint(str(package)) == before
    with open(package / "models" / "tiny.py", "a") as handle:
        handle.write("\n# changed\n")
    assert pipeline.code_fingerprint(str(package)) != before


def test_building_a_pipeline_does_not_import_the_vertex_sdk():
    probe = ("import sys, tfx_pipeline.pipeline, tfx_pipeline.backends.local; "
             "print(sorted(m for m in sys.modules if m.startswith('google.cloud.aiplatform')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": settings.PROJECT_ROOT})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_evaluator_runs_models_by_their_signature_without_loading_them_as_keras(monkeypatch, tmp_path):
    """Left to guess, TFMA loads each model with Keras first (~1.6 s for Lite0, candidate and
    baseline alike) and then evaluates it through Keras."""
    import tensorflow as tf
    import tensorflow_model_analysis as tfma

    keras_loads = []
    monkeypatch.setattr(tf.keras.models, "load_model", lambda *args, **kwargs: keras_loads.append(args))
    shared = tfma.default_eval_shared_model(str(tmp_path), eval_config=pipeline.accuracy_eval_config(0.5, 0.0))
    assert (shared.model_type, keras_loads) == (tfma.TF_GENERIC, [])
