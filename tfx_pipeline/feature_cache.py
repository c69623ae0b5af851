"""The frozen backbone's features of each image, computed once per backbone (``fast`` strategy).

Layout under ``ROOT`` (the pipeline root's ``feature-cache``, local or gs://)::

    ROOT/<fingerprint>/backbone-<digest>.tflite     the backbone converted for inference
    ROOT/<fingerprint>/graph-<digest>.pb            the backbone as a frozen GraphDef (pixels:0 ->
                                                    features:0), for the exported model
    ROOT/<fingerprint>/features-<digest>.npz        keys [N] (sha256 of the image, 32 bytes)
                                                    and features [N, F] float32

The fingerprint hashes the backbone's name, image size, weights (their file's bytes, or the
arrays where a backbone has no file) and the decode rule, so a different backbone, weights
file or size never reuses an entry. Every file is named by the sha256 of its bytes and
written under a temporary name first: a partial write is never read, a corrupt file is
detected on read, moved aside as ``*.corrupt`` and its images recomputed, and runs at once
only add files.
"""
from __future__ import annotations

import hashlib
import io
import logging
import uuid

import numpy as np

# Names the rule that turns bytes into features: decode + antialiased resize, the backbone in LiteRT.
FEATURE_RULE = "images.decode_and_resize/v1 litert/v1 weights/v2"
log = logging.getLogger(__name__)


def fingerprint(backbone_name: str, image_size: int, weights_digest: str) -> str:
    """sha256 hex of what determines a feature besides the image bytes."""
    return hashlib.sha256(f"{FEATURE_RULE}\n{backbone_name}\n{image_size}\n{weights_digest}\n".encode()).hexdigest()


def weights_digest(weights: list[np.ndarray]) -> str:
    """sha256 hex of weight arrays: dtype, shape and values, in order."""
    digest = hashlib.sha256()
    for array in weights:
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def file_digest(path: str) -> str:
    """sha256 hex of a weights file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def image_key(image: np.ndarray | bytes) -> bytes:
    """sha256 digest (32 bytes) of an encoded image or of a decoded array's bytes."""
    return hashlib.sha256(image if isinstance(image, bytes) else np.ascontiguousarray(image).tobytes()).digest()


class FeatureCache:
    """The entries of one fingerprint under ``root``."""

    def __init__(self, root: str, fingerprint_hex: str):
        self.dir = f"{root.rstrip('/')}/{fingerprint_hex}"
        self._entries: dict[bytes, np.ndarray] | None = None

    def _gfile(self):
        import tensorflow as tf

        return tf.io.gfile

    def _read_checked(self, path: str) -> bytes | None:
        """The file's bytes if its name's digest matches them, else None (moved aside; a file
        another run moved aside first is None too)."""
        import tensorflow as tf

        gfile = self._gfile()
        try:
            with gfile.GFile(path, "rb") as handle:
                data = handle.read()
            if hashlib.sha256(data).hexdigest()[:32] == path.rsplit("-", 1)[-1].split(".", 1)[0]:
                return data
            log.warning("feature cache: %s does not match its checksum; moved aside, its images are recomputed", path)
            gfile.rename(path, path + ".corrupt", overwrite=True)
        except tf.errors.NotFoundError:
            pass
        return None

    def _write(self, prefix: str, suffix: str, data: bytes) -> str:
        gfile = self._gfile()
        gfile.makedirs(self.dir)
        path = f"{self.dir}/{prefix}-{hashlib.sha256(data).hexdigest()[:32]}{suffix}"
        partial = f"{self.dir}/.{uuid.uuid4().hex}.partial"
        with gfile.GFile(partial, "wb") as handle:
            handle.write(data)
        gfile.rename(partial, path, overwrite=True)
        return path

    def _files(self, prefix: str, suffix: str) -> list[str]:
        return sorted(self._gfile().glob(f"{self.dir}/{prefix}-*{suffix}"))

    def backbone(self, convert) -> bytes:
        """The converted backbone: a stored one, else ``convert()``'s result, stored."""
        return self._stored("backbone", ".tflite", convert)

    def graph(self, freeze) -> bytes:
        """The frozen backbone graph: a stored one, else ``freeze()``'s result, stored."""
        return self._stored("graph", ".pb", freeze)

    def _stored(self, prefix: str, suffix: str, make) -> bytes:
        for path in self._files(prefix, suffix):
            data = self._read_checked(path)
            if data is not None:
                return data
        data = make()
        self._write(prefix, suffix, data)
        return data

    def load(self) -> dict[bytes, np.ndarray]:
        """Every stored entry: image key -> features [F]."""
        found: dict[bytes, np.ndarray] = {}
        for path in self._files("features", ".npz"):
            data = self._read_checked(path)
            if data is None:
                continue
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                found.update(zip((bytes(row) for row in arrays["keys"]), arrays["features"]))
        return found

    def store(self, keys: list[bytes], features: np.ndarray) -> None:
        """Add entries (one new file; nothing if ``keys`` is empty)."""
        if not keys:
            return
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.frombuffer(b"".join(keys), np.uint8).reshape(-1, 32),
                 features=np.asarray(features, np.float32))
        self._write("features", ".npz", buffer.getvalue())

    def features(self, images: list, compute) -> tuple[np.ndarray, int]:
        """Features [N, F] of ``images`` (encoded bytes or decoded arrays), in order: stored ones,
        the others from ``compute(missing_images) -> [M, F]``, stored as one new file.
        Returns the features and how many were computed."""
        if self._entries is None:
            self._entries = self.load()
        keys = [image_key(image) for image in images]
        first: dict[bytes, object] = {}
        for key, image in zip(keys, images):
            if key not in self._entries:
                first.setdefault(key, image)
        if first:
            computed = np.asarray(compute(list(first.values())), np.float32)
            self.store(list(first), computed)
            self._entries.update(zip(first, computed))
        return np.stack([self._entries[k] for k in keys]), len(first)
