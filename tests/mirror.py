"""A local HTTP mirror of the public image set's layout for the fetch tests:
``/<prefix>/data/intermediary/<category>/<file>`` served from a folder on 127.0.0.1, with
files that can be served corrupted or cut off mid-body."""
from __future__ import annotations

import contextlib
import http.server
import os
import threading
import urllib.parse
from typing import Iterator

from tasks import fetch


class Mirror(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.corrupt: set[str] = set()  # rel paths always served with one byte flipped
        self.drop_once: set[str] = set()  # rel paths whose first answer stops half-way
        self.requests: list[str] = []
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/repo"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Mirror

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        prefix = f"/repo/{fetch.REMOTE_PREFIX}/"
        path = urllib.parse.unquote(self.path)
        rel = path[len(prefix):] if path.startswith(prefix) else None
        local = os.path.join(self.server.root, rel) if rel and ".." not in rel.split("/") else None
        if not local or not os.path.isfile(local):
            self.send_error(404)
            return
        with open(local, "rb") as handle:
            data = handle.read()
        with self.server.lock:
            self.server.requests.append(rel)
            drop = rel in self.server.drop_once
            self.server.drop_once.discard(rel)
        if rel in self.server.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:len(data) // 2] if drop else data)
        if drop:
            self.close_connection = True


@contextlib.contextmanager
def serving(root: str) -> Iterator[Mirror]:
    server = Mirror(root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def write_checksums(root: str, path: str) -> str:
    """A sha256sum listing of every file under ``root`` (as ``./<category>/<file>``)."""
    import hashlib

    lines = []
    for category in sorted(os.listdir(root)):
        for name in sorted(os.listdir(os.path.join(root, category))):
            with open(os.path.join(root, category, name), "rb") as handle:
                lines.append(f"{hashlib.sha256(handle.read()).hexdigest()}  ./{category}/{name}\n")
    with open(path, "w") as handle:
        handle.writelines(lines)
    return path
