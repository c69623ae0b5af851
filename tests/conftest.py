"""Shared fixtures: small image trees made on the fly, the shared real data, one Prefect server."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import struct
import tempfile
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# commands run in-process write their logs under the work folder: keep them out of the checkout
os.environ.setdefault("HOTDOG_WORKDIR", tempfile.mkdtemp(prefix="hotdog-tests-"))

import prefect.main  # noqa: E402,F401 - first: its logging set-up closes the handlers made before it, and absl's
import pytest  # noqa: E402                  would close the stream pytest captures a test's stderr with
from PIL import Image  # noqa: E402

from tasks import progress, settings  # noqa: E402


def image_bytes(fmt: str = "JPEG", size=(32, 24), color=(200, 30, 30), noise: bool = False) -> bytes:
    """An encoded image; ``noise`` makes the pixel data (not the header) dominate the file."""
    buffer = io.BytesIO()
    image = Image.effect_noise(size, 64).convert("RGB") if noise else Image.new("RGB", size, color)
    image.save(buffer, fmt)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def write_tree(root, files: dict[str, bytes], empty_dirs=()) -> str:
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
    for rel in empty_dirs:
        os.makedirs(os.path.join(root, rel), exist_ok=True)
    return str(root)


def small_tree(root, per_category: int = 4) -> str:
    """Three valid categories (food, sandwich, taco) of distinct small JPEGs, one duplicate each."""
    files = {}
    for c, category in enumerate(["food", "sandwich", "taco"]):
        for i in range(per_category):
            files[f"{category}/{category}_{i}.jpeg"] = image_bytes(color=(40 * c, 10 * i, 99))
        files[f"{category}/{category}_copy.jpeg"] = files[f"{category}/{category}_0.jpeg"]
    return write_tree(root, files)


def small_datasets(shared_images: str, root, per_category: int, names: list[str]) -> dict[str, str]:
    """Data sets ``names`` built from the first ``per_category`` images of each shared category."""
    from tasks import dataset_config, datasets, ingest

    ingest.run_ingest(shared_images, str(root / "ingested"), max_per_category=per_category)
    specs = dataset_config.select(dataset_config.load_config(), names)
    datasets.build_from_ingested(str(root / "ingested"), specs, str(root / "sets"))
    return {name: str(root / "sets" / name) for name in names}


STACK_TESTS = "tests/e2e/stack/"  # modules on the session's `hotdog serve` stack (tests/e2e/conftest.py)


def pytest_xdist_make_scheduler(config, log):
    """Under ``pytest -n N --dist loadfile`` (pytest-xdist) a module runs on one worker, so its
    module fixtures start once, and STACK_TESTS share one worker, so the stack starts once."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ByModule(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return STACK_TESTS if module.startswith(STACK_TESTS) else module

    return ByModule(config, log)


@pytest.fixture
def tree(tmp_path):
    return small_tree(tmp_path / "images")


@pytest.fixture(scope="session")
def shared_images():
    if not os.path.isdir(settings.SHARED_DATA):
        pytest.fail(f"the shared data set is missing: {settings.SHARED_DATA}")
    return settings.SHARED_DATA


@pytest.fixture(scope="session")
def prefect_server():
    """One real Prefect server on 127.0.0.1 (temporary SQLite) for the whole test session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@contextlib.contextmanager
def progress_lines():
    """The progress lines logged during the block."""
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    progress.log.addHandler(handler)
    try:
        yield lines
    finally:
        progress.log.removeHandler(handler)
