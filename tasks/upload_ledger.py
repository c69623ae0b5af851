"""The bridge's durable record: one row per upload it has decided on (SQLite, one file).

Outcomes: ``emitted`` (the Prefect API accepted the event), ``skipped`` (filtered, with the
reason) and ``baseline`` (present before polling started). A row is written only after the
decision took effect, so a crash re-handles at most the upload in flight.
"""
from __future__ import annotations

import datetime
import os
import sqlite3
import threading

from tasks.gcs_events import Upload

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    event_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, name TEXT NOT NULL, generation TEXT NOT NULL,
    outcome TEXT NOT NULL, reason TEXT, decided_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS watched (source TEXT PRIMARY KEY, since TEXT NOT NULL);
"""


class UploadLedger:
    """Thread-safe; every write is its own committed transaction."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def outcome(self, upload: Upload) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT outcome FROM uploads WHERE event_id = ?", (upload.event_id,)).fetchone()
        return row[0] if row else None

    def record(self, upload: Upload, outcome: str, reason: str | None = None) -> None:
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (upload.event_id, upload.bucket, upload.name, upload.generation, outcome, reason, now))

    def known_versions(self, bucket: str) -> set[tuple[str, str]]:
        """(name, generation) of every upload of ``bucket`` already decided on."""
        with self._lock:
            rows = self._db.execute("SELECT name, generation FROM uploads WHERE bucket = ?", (bucket,)).fetchall()
        return set(rows)

    def watching(self, source: str) -> bool:
        """Whether ``source`` (a polled gs:// prefix) has had its first listing recorded."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM watched WHERE source = ?", (source,)).fetchone() is not None

    def start_watching(self, source: str) -> None:
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO watched VALUES (?, ?)", (source, now))

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT outcome, COUNT(*) FROM uploads GROUP BY outcome").fetchall())

    def close(self) -> None:
        self._db.close()
