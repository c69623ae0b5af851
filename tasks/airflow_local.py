"""A local Apache Airflow for the airflow backend: scheduler + webserver (REST API) on
127.0.0.1, SQLite, SequentialExecutor, run from the project's own Airflow environment
(``.venv-airflow``, created from deployments/airflow/requirements.lock).

The DAG folder is deployments/airflow/dags; the DAG is configured by HOTDOG_AIRFLOW_* variables
(see hotdog_dag.py). Credentials: user ``admin``, password from $HOTDOG_AIRFLOW_PASSWORD, else
generated once and kept in ``<airflow_home>/admin-password`` (mode 600).
"""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess

from tasks import services, settings, training
from tasks.errors import HotdogInputError

AIRFLOW_ENV = os.path.join(settings.PROJECT_ROOT, ".venv-airflow")
DAGS_FOLDER = os.path.join(settings.PROJECT_ROOT, "deployments", "airflow", "dags")
# TFX makes parsing the DAG file cost ~20 s of CPU (imports + user-code wheel): parse it rarely.
PARSE_INTERVAL_SECONDS = 600
SERVICES = ("scheduler", "webserver")


def ensure_environment() -> str:
    """The Airflow environment's bin folder, created from its lock file on first use."""
    script = os.path.join(settings.PROJECT_ROOT, "scripts", "ensure-env")
    lock = os.path.join("deployments", "airflow", "requirements.lock")
    done = subprocess.run([script, lock, ".venv-airflow"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"creating the Airflow environment failed:\n{done.stderr[-3000:]}")
    return os.path.join(AIRFLOW_ENV, "bin")


def password(home: str) -> str:
    """$HOTDOG_AIRFLOW_PASSWORD, else the one generated for ``home``. The admin user keeps the
    password of the first start."""
    if os.environ.get("HOTDOG_AIRFLOW_PASSWORD"):
        return os.environ["HOTDOG_AIRFLOW_PASSWORD"]
    path = os.path.join(home, "admin-password")
    if not os.path.exists(path):
        os.makedirs(home, exist_ok=True)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(secrets.token_urlsafe(18))
    with open(path) as handle:
        return handle.read().strip()


def environment(home: str, port: int, workdir: str, train_settings, schedule: str | None,
                parse_interval: int = PARSE_INTERVAL_SECONDS) -> dict[str, str]:
    bin_dir = os.path.join(AIRFLOW_ENV, "bin")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PREFECT_"))},
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": settings.PROJECT_ROOT, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": DAGS_FOLDER,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{os.path.join(home, 'airflow.db')}",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "180",
            "AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT": "240",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": str(parse_interval),
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": str(parse_interval),
            "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
            "AIRFLOW__API__AUTH_BACKENDS": "airflow.providers.fab.auth_manager.api.auth.backend.basic_auth",
            "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__WEBSERVER__WORKERS": "1",
            "AIRFLOW__WEBSERVER__EXPOSE_CONFIG": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "HOTDOG_AIRFLOW_WORKDIR": workdir,
            "HOTDOG_AIRFLOW_SETTINGS": json.dumps(dataclasses.asdict(train_settings)),
            "HOTDOG_AIRFLOW_SCHEDULE": schedule or ""}


def api_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/api/v1"


def start(home: str, port: int, workdir: str, train_settings, schedule: str | None = None,
          parse_interval: int = PARSE_INTERVAL_SECONDS) -> dict:
    """Start scheduler and webserver, or the one of them that is not running (a webserver that
    died or was stopped under a running scheduler: give the same options); returns url, user and
    password. Creates the environment, the metadata database and the admin user on first use.
    ``parse_interval``: seconds between re-parses of the DAG file."""
    missing = [name for name in SERVICES if not services.running(home, name)]
    if not missing:
        raise HotdogInputError(f"an Airflow is already running from {home}; run 'hotdog airflow stop' first")
    training.check_settings(train_settings)
    bin_dir = ensure_environment()
    env = environment(home, port, workdir, train_settings, schedule, parse_interval)
    secret = password(home)
    airflow = os.path.join(bin_dir, "airflow")
    if "scheduler" in missing:
        for args in (["db", "migrate"],
                     ["users", "create", "--username", "admin", f"--password={secret}", "--role", "Admin",
                      "--firstname", "hotdog", "--lastname", "flows", "--email", "admin@localhost"]):
            done = subprocess.run([airflow, *args], env=env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0 and "already exist" not in done.stdout + done.stderr:
                raise RuntimeError(f"airflow {args[0]} {args[1]} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        # --skip-serve-logs: Airflow's log server binds all interfaces; task logs are local files here
        services.spawn("scheduler", home, env, [airflow, "scheduler", "--skip-serve-logs"])
    if "webserver" in missing:
        services.spawn("webserver", home, env, [airflow, "webserver", "--hostname", "127.0.0.1", "--port",
                                                str(port), "--workers", "1"])
    try:
        services.wait_http(f"http://127.0.0.1:{port}/health", "the Airflow webserver", timeout=180)
    except RuntimeError:
        stop(home)
        raise
    return {"url": api_url(port), "user": "admin", "password": secret}


def stop(home: str) -> list[str]:
    """Stop the scheduler (it finishes no new task), then the webserver."""
    return services.stop(home, list(SERVICES), timeout=60)
