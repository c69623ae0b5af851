"""Validate one image file from its bytes: format from content, full decode, size, sha256.

Acceptance means TensorFlow 2.16's ``tf.io.decode_image`` decodes it (JPEG, PNG, GIF,
BMP). The header is read first (Pillow, no pixel decode) so an image claiming more than
``max_pixels`` is rejected before anything is allocated for it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import warnings

from PIL import Image, UnidentifiedImageError

# 40 megapixels (e.g. 8000 x 5000): far above any training thumbnail, far below what
# would exhaust memory when decoded (40 MP x 3 bytes = 120 MB).
DEFAULT_MAX_PIXELS = 40_000_000


def max_file_bytes(max_pixels: int) -> int:
    """The largest file an image within ``max_pixels`` can need: 4 bytes a pixel (an
    uncompressed RGBA BMP) plus 1 MiB of headers and metadata; larger files are not read."""
    return 4 * max_pixels + 2**20

EAGER_DECODES = 32

# Formats tf.io.decode_image decodes in TF 2.16, by Pillow's format name.
TF_DECODABLE = {"JPEG": "jpeg", "PNG": "png", "GIF": "gif", "BMP": "bmp"}

# Junk that file managers leave in image folders.
SYSTEM_FILES = {".ds_store", "thumbs.db", "desktop.ini", ".directory"}

# Invalid reasons, as written to the manifest.
EMPTY, TRUNCATED, CORRUPT, NOT_AN_IMAGE = "empty", "truncated", "corrupt", "not_an_image"
UNSUPPORTED, TOO_LARGE, UNREADABLE, SYSTEM_FILE = "unsupported_format", "too_large", "unreadable", "system_file"

_END_MARKERS = {"jpeg": (b"\xff\xd9",), "png": (b"IEND\xaeB`\x82",), "gif": (b";",)}
_MAGIC = ((b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"), (b"GIF89a", "gif"))


@dataclasses.dataclass(frozen=True)
class ImageCheck:
    """Outcome of :func:`inspect_image`: ``reason`` is None for a valid image."""

    sha256: str
    size_bytes: int
    reason: str | None = None
    detail: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None


def is_system_file(name: str) -> bool:
    """True for OS metadata files (``.DS_Store``, ``Thumbs.db``, AppleDouble ``._x``)."""
    base = name.rsplit("/", 1)[-1]
    return base.lower() in SYSTEM_FILES or base.startswith("._")


def inspect_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageCheck:
    """Classify ``data``: a valid image with its measurements, or the reason it is invalid."""
    return inspect_images([data], max_pixels)[0]


def inspect_images(blobs: list[bytes], max_pixels: int = DEFAULT_MAX_PIXELS) -> list[ImageCheck]:
    """:func:`inspect_image` for many files at once; the full decodes run in parallel in TF."""
    checks = [_check_header(data, max_pixels) for data in blobs]
    pending = [i for i, check in enumerate(checks) if check.reason is None]
    decoded = _decodable([blobs[i] for i in pending])
    for i, ok in zip(pending, decoded):
        if not ok:
            error = _decode_error(blobs[i])  # only failures are decoded again, for the message
            reason = TRUNCATED if _lacks_end_marker(blobs[i], checks[i].format) else CORRUPT
            checks[i] = dataclasses.replace(checks[i], reason=reason, detail=error or "TensorFlow cannot decode it")
    return checks


def _check_header(data: bytes, max_pixels: int) -> ImageCheck:
    """Everything short of the full decode: emptiness, format from content, size limit."""
    digest = hashlib.sha256(data).hexdigest()
    base = {"sha256": digest, "size_bytes": len(data)}
    if not data:
        return ImageCheck(**base, reason=EMPTY, detail="file has 0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            header = Image.open(io.BytesIO(data))
            pil_format, (width, height) = header.format, header.size
    except Image.DecompressionBombError as err:
        return ImageCheck(**base, reason=TOO_LARGE, detail=str(err))
    except UnidentifiedImageError:
        return ImageCheck(**base, reason=NOT_AN_IMAGE, detail="content is not a known image format")
    except Exception as err:  # Pillow raises assorted errors on damaged headers
        reason = TRUNCATED if _lacks_end_marker(data, _sniff(data)) else CORRUPT
        return ImageCheck(**base, reason=reason, format=_sniff(data), detail=f"unreadable header: {err}")
    measured = {**base, "width": width, "height": height}
    fmt = TF_DECODABLE.get(pil_format)
    if fmt is None:
        return ImageCheck(**measured, format=str(pil_format).lower(), reason=UNSUPPORTED,
                          detail=f"{pil_format} is not decodable by TensorFlow (accepted: JPEG, PNG, GIF, BMP)")
    if width * height > max_pixels:
        return ImageCheck(**measured, format=fmt, reason=TOO_LARGE,
                          detail=f"{width}x{height} = {width * height} pixels > limit {max_pixels}")
    return ImageCheck(**measured, format=fmt)


def _sniff(data: bytes) -> str | None:
    """The format named by the leading magic bytes, for files whose header is damaged."""
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    return None


def _lacks_end_marker(data: bytes, fmt: str | None) -> bool:
    markers = _END_MARKERS.get(fmt)
    return bool(markers) and not data.rstrip(b"\0").endswith(markers)


def _decodable(blobs: list[bytes]) -> list[bool]:
    """Whether TensorFlow fully decodes each blob: up to ``EAGER_DECODES`` one after the other
    (building a tf.data pipeline costs ~20 ms, one decode well under 1 ms), more on every core
    through tf.data."""
    if len(blobs) <= EAGER_DECODES:
        return [_decode_error(data) is None for data in blobs]
    import tensorflow as tf  # imported lazily: workers pay for it once, listing never

    def decode(index, data):
        return index, tf.shape(tf.io.decode_image(data, channels=3, expand_animations=False))[0]

    dataset = (tf.data.Dataset.from_tensor_slices((tf.range(len(blobs)), tf.constant(blobs, dtype=tf.string)))
               .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
               .ignore_errors()  # a failed decode drops that element; its index is then missing
               .batch(len(blobs)))
    ok = set()
    for indices, _ in dataset.as_numpy_iterator():
        ok.update(indices.tolist())
    return [i in ok for i in range(len(blobs))]


def _decode_error(data: bytes) -> str | None:
    """Fully decode with TensorFlow; the error message, or None when it decodes."""
    import tensorflow as tf  # imported lazily: workers pay for it once, listing never

    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
        return err.message.split("[Op:")[0].split("}}")[-1].strip()
    return None
