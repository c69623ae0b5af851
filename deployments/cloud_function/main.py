"""Cloud Function (2nd gen, CloudEvent): retrain when a TFRecord is uploaded to the bucket.

Trigger: ``google.cloud.storage.object.v1.finalized``. For each upload whose name is under
HOTDOG_CF_PREFIX and ends with one of HOTDOG_CF_SUFFIXES (and is not one of the pipeline's own
outputs, HOTDOG_CF_IGNORE), it claims a marker object ``<HOTDOG_CF_MARKERS>/<event id>`` (created
only if absent: delivery is at-least-once, so a repeat finds the marker and does nothing), then:

- HOTDOG_CF_MODE=vertex (default, as the original): submits the compiled pipeline
  HOTDOG_VERTEX_SPEC (gs://) with HOTDOG_VERTEX_PROJECT / _REGION / _ROOT /
  _SERVICE_ACCOUNT / _ENDPOINT;
- HOTDOG_CF_MODE=prefect: posts a ``gcs.object.finalized`` event to HOTDOG_PREFECT_API_URL
  (auth: PREFECT_API_KEY or PREFECT_API_AUTH_STRING), as `hotdog bridge` does.

If the action fails, the marker is removed and the error returned (HTTP 500), so the
delivery is retried. Malformed events get HTTP 400 with the reason.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import uuid

import flask
import functions_framework
import httpx
from google.api_core import exceptions
from google.cloud import aiplatform, storage  # imported at start: the first event should not pay for it

log = logging.getLogger("hotdog.cloud_function")
# This folder is deployed on its own, so the event id and event below repeat tasks/gcs_events.py;
# tests/e2e/test_cloud_function.py checks that the two agree.
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/hotdog-flows/gcs-object-finalized")


def event_id(bucket: str, name: str, generation: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{bucket}/{name}#{generation}"))


def _setting(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        raise RuntimeError(f"the function's setting {name} is not set")
    return value


def _upload(data) -> tuple[str, str, str, int]:
    """bucket, name, generation, size of a storage object event's data; 400 if malformed."""
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
    return data["bucket"], data["name"], str(data["generation"]), size


def skip_reason(name: str, size: int) -> str | None:
    prefix = os.environ.get("HOTDOG_CF_PREFIX", "")
    suffixes = tuple(os.environ.get("HOTDOG_CF_SUFFIXES", ".tfrecord,.tfrecord.gz").split(","))
    ignored = tuple(p for p in os.environ.get("HOTDOG_CF_IGNORE", "pipeline/,registry/,specs/,_markers/").split(",")
                    if p)
    if ignored and name.startswith(ignored):
        return "one of the pipeline's own outputs"
    if not name.startswith(prefix):
        return f"outside the prefix {prefix!r}"
    if name.startswith("/") or ".." in name.split("/"):
        return "unsafe path segment"
    if not name.endswith(suffixes):
        return f"does not end with {' or '.join(suffixes)}"
    if size <= 0:
        return "empty"
    return None


def _marker(bucket: str, ident: str):
    markers = os.environ.get("HOTDOG_CF_MARKERS", f"gs://{bucket}/_markers").rstrip("/")
    marker_bucket, _, marker_prefix = markers[len("gs://"):].partition("/")
    name = f"{marker_prefix}/{ident}" if marker_prefix else ident
    return storage.Client().bucket(marker_bucket).blob(name)


def submit_vertex(uri: str, ident: str) -> str:
    init = {"project": _setting("HOTDOG_VERTEX_PROJECT"), "location": os.environ.get("HOTDOG_VERTEX_REGION",
                                                                                     "us-central1")}
    if os.environ.get("HOTDOG_VERTEX_ENDPOINT"):
        from google.auth.credentials import AnonymousCredentials

        init.update(api_endpoint=os.environ["HOTDOG_VERTEX_ENDPOINT"], api_transport="rest",
                    credentials=AnonymousCredentials())
    aiplatform.init(**init)
    job = aiplatform.PipelineJob(display_name="hotdog", template_path=_setting("HOTDOG_VERTEX_SPEC"),
                                 pipeline_root=_setting("HOTDOG_VERTEX_ROOT").rstrip("/") + "/pipeline",
                                 job_id=f"hotdog-{ident}", labels={"trigger": "gcs-upload"})
    job.submit(service_account=os.environ.get("HOTDOG_VERTEX_SERVICE_ACCOUNT") or None)
    return job.resource_name


def prefect_event(bucket: str, name: str, generation: str, size: int) -> dict:
    """The ``gcs.object.finalized`` event (Prefect REST JSON) for an upload, as the bridge posts it."""
    return {"id": event_id(bucket, name, generation),
            "occurred": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "event": "gcs.object.finalized",
            "resource": {"prefect.resource.id": f"gcs.object.{bucket}.{name}", "gcs.bucket": bucket, "gcs.name": name},
            "payload": {"uri": f"gs://{bucket}/{name}", "bucket": bucket, "name": name, "generation": generation,
                        "size": size}}


def post_prefect_event(bucket: str, name: str, generation: str, size: int) -> str:
    api = _setting("HOTDOG_PREFECT_API_URL").rstrip("/")
    headers = {"Authorization": f"Bearer {os.environ['PREFECT_API_KEY']}"} if os.environ.get("PREFECT_API_KEY") else {}
    auth_string = os.environ.get("PREFECT_API_AUTH_STRING", "")
    auth = tuple(auth_string.split(":", 1)) if ":" in auth_string else None
    event = prefect_event(bucket, name, generation, size)
    httpx.post(f"{api}/events", json=[event], headers=headers, auth=auth, timeout=30).raise_for_status()
    return f"prefect event {event['id']}"


@functions_framework.cloud_event
def on_upload(cloud_event) -> None:
    """Entry point (``--entry-point on_upload``)."""
    bucket, name, generation, size = _upload(cloud_event.data)
    reason = skip_reason(name, size)
    if reason:
        log.warning("ignored gs://%s/%s: %s", bucket, name, reason)
        return
    ident = event_id(bucket, name, generation)
    marker = _marker(bucket, ident)
    try:
        marker.upload_from_string(json.dumps({"uri": f"gs://{bucket}/{name}", "generation": generation}),
                                  if_generation_match=0)
    except exceptions.PreconditionFailed:
        log.info("duplicate delivery of gs://%s/%s#%s: already handled", bucket, name, generation)
        return
    try:
        if os.environ.get("HOTDOG_CF_MODE", "vertex") == "prefect":
            done = post_prefect_event(bucket, name, generation, size)
        else:
            done = submit_vertex(f"gs://{bucket}/{name}", ident)
    except Exception:
        marker.delete()  # let the retried delivery try again
        raise
    log.info("gs://%s/%s#%s -> %s", bucket, name, generation, done)
