"""The GCS -> Prefect bridge: turns new objects in a bucket into Prefect events.

Two sources feed one :class:`Bridge`: a Pub/Sub subscription to the bucket's notifications
(a Pub/Sub message is acknowledged only after its event was accepted, or after it was
recorded as filtered or malformed), or polling the bucket's listing by generation. The
:class:`~tasks.upload_ledger.UploadLedger` makes restarts lose and repeat nothing; the event
id (uuid5 of bucket/name/generation) lets Prefect drop a repeat of the one upload in flight
during a crash.
"""
from __future__ import annotations

import logging
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from tasks import fs
from tasks.errors import HotdogInputError
from tasks.gcs_events import Upload, UploadFilter, from_notification, prefect_event
from tasks.upload_ledger import UploadLedger

log = logging.getLogger("hotdog.bridge")
RETRY_SECONDS = 2.0
LEASE_SECONDS = 10
"""Pub/Sub lease of a message in hand: after a crash its messages come back this soon, not in 60 s."""


class PrefectEvents:
    """POSTs events to ``{api_url}/events``; auth from PREFECT_API_AUTH_STRING or PREFECT_API_KEY,
    and the CSRF token of a server that asks for one (as Prefect's own client does)."""

    def __init__(self, api_url: str, timeout: float = 10.0):
        auth_string, api_key = os.environ.get("PREFECT_API_AUTH_STRING"), os.environ.get("PREFECT_API_KEY")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        auth = tuple(auth_string.split(":", 1)) if auth_string and ":" in auth_string else None
        self.api = api_url.rstrip("/")
        self.url = f"{self.api}/events"
        self._client = httpx.Client(timeout=timeout, headers=headers, auth=auth)
        self._csrf_client = str(uuid.uuid4())
        self._csrf: dict[str, str] | None = None

    def _csrf_headers(self) -> dict[str, str]:
        """Prefect's CSRF headers; {} for a server without CSRF protection."""
        if self._csrf is None:
            response = self._client.get(f"{self.api}/csrf-token", params={"client": self._csrf_client})
            if response.status_code == 200:
                self._csrf = {"Prefect-Csrf-Token": response.json()["token"],
                              "Prefect-Csrf-Client": self._csrf_client}
            else:  # 422: protection is off; 404: a server without it
                self._csrf = {}
        return self._csrf

    def post(self, event: dict) -> None:
        """Raises RuntimeError unless the API accepted the event."""
        try:
            response = self._client.post(self.url, json=[event], headers=self._csrf_headers())
            if response.status_code == 403 and "Invalid CSRF token" in response.text:  # expired
                self._csrf = None
                response = self._client.post(self.url, json=[event], headers=self._csrf_headers())
        except httpx.HTTPError as err:
            raise RuntimeError(f"Prefect API {self.url} unreachable: {err}") from None
        if response.status_code in (401, 403):
            raise RuntimeError(f"Prefect API {self.url} refused the credentials (HTTP {response.status_code}): "
                               "set PREFECT_API_AUTH_STRING or PREFECT_API_KEY")
        if response.status_code >= 300:
            raise RuntimeError(f"Prefect API {self.url} answered HTTP {response.status_code}: {response.text[:300]}")

    def close(self) -> None:
        self._client.close()


class Bridge:
    """Decides on each upload once: emit its event, or skip it with a logged reason."""

    def __init__(self, upload_filter: UploadFilter, ledger: UploadLedger, events: PrefectEvents):
        self.filter, self.ledger, self.events = upload_filter, ledger, events

    def handle(self, upload: Upload) -> str:
        """``emitted``, ``skipped`` or ``duplicate``; raises RuntimeError when Prefect did not accept it."""
        if self.ledger.outcome(upload):
            log.info("duplicate %s (generation %s): already decided, ignored", upload.uri, upload.generation)
            return "duplicate"
        reason = self.filter.rejection(upload)
        if reason:
            self.ledger.record(upload, "skipped", reason)
            log.warning("skipped %s (generation %s): %s", upload.uri, upload.generation, reason)
            return "skipped"
        self.events.post(prefect_event(upload))
        self.ledger.record(upload, "emitted")
        log.info("emitted %s (generation %s) as event %s", upload.uri, upload.generation, upload.event_id)
        return "emitted"


def run_pubsub(bridge: Bridge, subscription: str, stop: threading.Event) -> None:
    """Handle notifications from ``subscription`` (projects/P/subscriptions/S) one at a time until ``stop``."""
    from google.api_core import exceptions
    from google.cloud import pubsub_v1
    from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler

    def on_message(message) -> None:
        try:
            upload = from_notification(dict(message.attributes), message.data)
        except HotdogInputError as err:
            log.warning("malformed notification %s dropped: %s", message.message_id, err)
            message.ack()
            return
        if upload is None:
            message.ack()  # deletions, metadata updates: not uploads
            return
        try:
            bridge.handle(upload)
        except Exception as err:  # noqa: BLE001 - keep the bridge alive; Pub/Sub redelivers
            log.error("%s not emitted, will retry: %s", upload.uri, err)
            stop.wait(RETRY_SECONDS)
            message.nack()
            return
        message.ack()

    subscriber = pubsub_v1.SubscriberClient()
    try:
        subscriber.get_subscription(subscription=subscription)
    except exceptions.NotFound:
        raise HotdogInputError(f"Pub/Sub subscription {subscription} does not exist: create it on the bucket's "
                               "notification topic (see deployments/README.md)") from None
    except exceptions.InvalidArgument as err:
        raise HotdogInputError(f"bad Pub/Sub subscription name {subscription!r}: expected "
                               f"projects/PROJECT/subscriptions/NAME ({err.message})") from None
    scheduler = ThreadScheduler(ThreadPoolExecutor(max_workers=1))  # one decision at a time
    flow_control = pubsub_v1.types.FlowControl(max_messages=10, max_duration_per_lease_extension=LEASE_SECONDS)
    future = subscriber.subscribe(subscription, on_message, flow_control=flow_control, scheduler=scheduler)
    log.info("listening on %s", subscription)
    stop.wait()
    future.cancel()
    future.result(timeout=30)
    subscriber.close()


def list_uploads(bucket: str, prefix: str) -> list[Upload]:
    """Every object version under gs://bucket/prefix, oldest generation first."""
    fsys, _ = fs.filesystem(f"gs://{bucket}")
    found = fsys.find(bucket, prefix=prefix, detail=True)
    uploads = [Upload(bucket, info["name"].split("/", 1)[1], str(info["generation"]), int(info["size"]))
               for info in found.values() if info.get("type") == "file"]
    return sorted(uploads, key=lambda u: int(u.generation))


def run_polling(bridge: Bridge, interval: float, stop: threading.Event, from_start: bool = False) -> None:
    """List the watched prefix every ``interval`` seconds and handle versions not yet decided on.

    The first listing of a prefix is recorded as ``baseline`` (not emitted) unless ``from_start``.
    """
    bucket, prefix = bridge.filter.bucket, bridge.filter.prefix
    source = f"gs://{bucket}/{prefix}"
    log.info("polling %s every %.1f s", source, interval)
    while not stop.is_set():
        try:
            uploads = list_uploads(bucket, prefix)
        except Exception as err:  # noqa: BLE001 - a failed listing is retried next round
            log.error("listing %s failed, will retry: %s", source, err)
            stop.wait(max(interval, RETRY_SECONDS))
            continue
        baseline = not from_start and not bridge.ledger.watching(source)
        known = bridge.ledger.known_versions(bucket)
        for upload in uploads:
            if (upload.name, upload.generation) in known:
                continue
            if baseline:
                bridge.ledger.record(upload, "baseline", "present when polling started")
                continue
            try:
                bridge.handle(upload)
            except Exception as err:  # noqa: BLE001 - retried next round, in generation order
                log.error("%s not emitted, will retry: %s", upload.uri, err)
                break
        if baseline:
            log.info("baseline: %d object(s) already under %s are not retraining triggers", len(uploads), source)
        bridge.ledger.start_watching(source)
        stop.wait(interval)
