"""Cloud Function (2nd gen, CloudEvent): retrain when a TFRecord is uploaded to the bucket.

Trigger: ``google.cloud.storage.object.v1.finalized``. For each upload whose name is under
HOTDOG_CF_PREFIX and ends with one of HOTDOG_CF_SUFFIXES (and is not one of the pipeline's own
outputs, HOTDOG_CF_IGNORE), by HOTDOG_CF_MODE:

- ``vertex`` (default, as the original): adds that generation of the object to the data root
  under HOTDOG_VERTEX_ROOT through ``tasks.uploads.stage`` (the one validated way in: a bad
  file is quarantined with its report and not retried), then submits the compiled pipeline
  HOTDOG_VERTEX_SPEC (gs://) as job ``hotdog-<event id>`` with HOTDOG_VERTEX_PROJECT / _REGION /
  _SERVICE_ACCOUNT / _ENDPOINT. Both steps are idempotent (the staged name and the job id
  follow from the object and its generation), so a redelivery after a crash at any point
  finishes the work and a duplicate delivery finds the job already there;
- ``prefect``: posts a ``gcs.object.finalized`` event to HOTDOG_PREFECT_API_URL (auth:
  PREFECT_API_KEY or PREFECT_API_AUTH_STRING), as `hotdog bridge` does, then writes the marker
  ``<HOTDOG_CF_MARKERS>/<event id>`` so that later deliveries do nothing; a crash between the
  two posts the event again, and the upload flow stages idempotently.

Infrastructure errors fail the function (HTTP 500) so that Eventarc retries; malformed events
get HTTP 400 with the reason. Deploy the folder that ``scripts/build-cloud-function`` assembles
(this file and the project's ``tasks`` package).
"""
from __future__ import annotations

import json
import logging
import os

import flask
import functions_framework
from google.api_core import exceptions
from google.cloud import aiplatform, storage  # imported at start: the first event should not pay for it

from tasks import uploads
from tasks.errors import HotdogInputError
from tasks.gcs_bridge import PrefectEvents
from tasks.gcs_events import Upload, UploadFilter, prefect_event

log = logging.getLogger("hotdog.cloud_function")
IGNORED = "pipeline/,registry/,specs/,_markers/"


def _setting(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        raise RuntimeError(f"the function's setting {name} is not set")
    return value


def _upload(data) -> Upload:
    """The storage object of an event's data; 400 if malformed."""
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError:
            flask.abort(400, description="event data is not JSON object metadata")
    if not isinstance(data, dict):
        flask.abort(400, description="event data is not a storage object (expected a JSON object)")
    missing = [k for k in ("bucket", "name", "generation") if not data.get(k)]
    if missing:
        flask.abort(400, description=f"event data lacks {', '.join(missing)}: not a storage object event")
    try:
        size = int(data.get("size", 0))
    except (TypeError, ValueError):
        flask.abort(400, description=f"event data has a non-integer size {data.get('size')!r}")
    return Upload(data["bucket"], data["name"], str(data["generation"]), size)


def skip_reason(upload: Upload) -> str | None:
    ignored = tuple(p for p in os.environ.get("HOTDOG_CF_IGNORE", IGNORED).split(",") if p)
    if ignored and upload.name.startswith(ignored):
        return "one of the pipeline's own outputs"
    suffixes = tuple(os.environ.get("HOTDOG_CF_SUFFIXES", ".tfrecord,.tfrecord.gz").split(","))
    return UploadFilter(upload.bucket, os.environ.get("HOTDOG_CF_PREFIX", ""), suffixes).rejection(upload)


def _marker(upload: Upload):
    markers = os.environ.get("HOTDOG_CF_MARKERS", f"gs://{upload.bucket}/_markers").rstrip("/")
    marker_bucket, _, marker_prefix = markers[len("gs://"):].partition("/")
    name = f"{marker_prefix}/{upload.event_id}" if marker_prefix else upload.event_id
    return storage.Client().bucket(marker_bucket).blob(name)


def submit_vertex(upload: Upload) -> str:
    """Submit the compiled spec as job ``hotdog-<event id>``; a job of that id already there is this
    upload's, submitted by an earlier delivery."""
    init = {"project": _setting("HOTDOG_VERTEX_PROJECT"), "location": os.environ.get("HOTDOG_VERTEX_REGION",
                                                                                     "us-central1")}
    if os.environ.get("HOTDOG_VERTEX_ENDPOINT"):
        from google.auth.credentials import AnonymousCredentials

        init.update(api_endpoint=os.environ["HOTDOG_VERTEX_ENDPOINT"], api_transport="rest",
                    credentials=AnonymousCredentials())
    aiplatform.init(**init)
    job_id = f"hotdog-{upload.event_id}"
    job = aiplatform.PipelineJob(display_name="hotdog", template_path=_setting("HOTDOG_VERTEX_SPEC"),
                                 pipeline_root=_setting("HOTDOG_VERTEX_ROOT").rstrip("/") + "/pipeline",
                                 job_id=job_id, labels={"trigger": "gcs-upload"})
    try:
        job.submit(service_account=os.environ.get("HOTDOG_VERTEX_SERVICE_ACCOUNT") or None)
    except exceptions.Conflict:  # 409 ALREADY_EXISTS
        return f"job {job_id} (submitted by an earlier delivery)"
    return job.resource_name


def stage_and_submit(upload: Upload) -> str:
    """Add the upload to the data root, then submit; a bad file is refused and not retried."""
    data_root = _setting("HOTDOG_VERTEX_ROOT").rstrip("/") + "/data_root"
    try:
        staged = uploads.stage(upload.uri, data_root, upload.generation)
    except HotdogInputError as err:
        log.error("refused %s#%s: %s", upload.uri, upload.generation, err)
        return f"refused ({err})"
    return f"{staged}, {submit_vertex(upload)}"


def post_to_prefect(upload: Upload) -> str:
    events = PrefectEvents(_setting("HOTDOG_PREFECT_API_URL"), timeout=30)
    try:
        events.post(prefect_event(upload))
    finally:
        events.close()
    return f"prefect event {upload.event_id}"


@functions_framework.cloud_event
def on_upload(cloud_event) -> None:
    """Entry point (``--entry-point on_upload``)."""
    upload = _upload(cloud_event.data)
    reason = skip_reason(upload)
    if reason:
        log.warning("ignored %s: %s", upload.uri, reason)
        return
    if os.environ.get("HOTDOG_CF_MODE", "vertex") != "prefect":
        log.info("%s#%s -> %s", upload.uri, upload.generation, stage_and_submit(upload))
        return
    marker = _marker(upload)
    if marker.exists():
        log.info("duplicate delivery of %s#%s: already handled", upload.uri, upload.generation)
        return
    done = post_to_prefect(upload)
    marker.upload_from_string(json.dumps({"uri": upload.uri, "generation": upload.generation, "done": done}))
    log.info("%s#%s -> %s", upload.uri, upload.generation, done)
