"""What a process pays before the first TFX component runs: importing TFX and building the
pipeline (every `hotdog train`, every Airflow task, every deployment flow run), with
``tfx.v1`` (the baseline) against the module-by-module imports of tfx_pipeline, and the
user-code wheels TFX would build for Transform and Trainer against module files read in
place. Medians of 3 fresh processes.

    PYTHONPATH=. .venv/bin/python bench/pipeline_build.py
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = """
import sys, tempfile, time
started = time.perf_counter()
if sys.argv[1] == "v1":
    from tfx import v1  # noqa: F401
from tfx_pipeline import pipeline
from tfx_pipeline.backends import local  # noqa: F401
root = tempfile.mkdtemp()
built = pipeline.create_pipeline("bench", root, root + "/data", root + "/registry", ["--runner=DirectRunner"])
print("SECONDS", time.perf_counter() - started)
if sys.argv[2] == "wheels":
    import os
    from tfx.components.util import udf_utils
    os.environ.pop("UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES", None)
    started = time.perf_counter()
    for component in built.components:
        if component.id in ("Transform", "Trainer"):
            udf_utils.UserModuleFilePipDependency(component, "module_file", "module_path").resolve(root)
    print("SECONDS", time.perf_counter() - started)
"""


def run(*args: str) -> list[float]:
    done = subprocess.run([sys.executable, "-c", BUILD, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return [float(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("SECONDS ")]


def main() -> None:
    baseline = statistics.median(run("v1", "none")[0] for _ in range(3))
    modules = statistics.median(run("modules", "none")[0] for _ in range(3))
    wheels = statistics.median(run("modules", "wheels")[1] for _ in range(3))
    print(f"import + build, with tfx.v1 (baseline): {baseline:.1f} s")
    print(f"import + build, module by module: {modules:.1f} s ({modules / baseline:.2f}x the baseline)")
    print(f"user-code wheels for Transform and Trainer, built per run when packaging: {wheels:.1f} s "
          "(read in place: 0 s; each run also pip-installs them before Transform and Trainer)")


if __name__ == "__main__":
    main()
