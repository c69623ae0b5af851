"""Validate one image file from its bytes: format from content, full decode, size, sha256.

Acceptance means TensorFlow 2.16's ``tf.io.decode_image`` decodes it (JPEG, PNG, GIF,
BMP). The header is read first (Pillow, or TensorFlow's JPEG header reader for a batch of
JPEGs; no pixel decode) so an image claiming more than ``max_pixels`` is rejected before
anything is allocated for it.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import dataclasses
import functools
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

EAGER_DECODES = 32  # up to this many files are decoded one by one: no compiled call to set up
DECODE_CHUNK = 256  # files per compiled decode call, while the next chunk's headers are read
DECODE_PARALLEL = 8  # images decoded at once by a call: bounds its memory to 8 decoded images

# Formats tf.io.decode_image decodes in TF 2.16, by Pillow's format name.
# MPO (JPEG with a Multi-Picture segment, as many cameras and phones write) decodes as its first JPEG.
TF_DECODABLE = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "GIF": "gif", "BMP": "bmp"}

# Junk that file managers leave in image folders.
SYSTEM_FILES = {".ds_store", "thumbs.db", "desktop.ini", ".directory"}

# Invalid reasons, as written to the manifest.
EMPTY, TRUNCATED, CORRUPT, NOT_AN_IMAGE = "empty", "truncated", "corrupt", "not_an_image"
UNSUPPORTED, TOO_LARGE, UNREADABLE, SYSTEM_FILE = "unsupported_format", "too_large", "unreadable", "system_file"

_END_MARKERS = {"jpeg": (b"\xff\xd9",), "png": (b"IEND\xaeB`\x82",), "gif": (b";",)}
JPEG_MAGIC = b"\xff\xd8\xff"
_MAGIC = ((JPEG_MAGIC, "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"), (b"GIF89a", "gif"))


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


def inspect_images(blobs: list[bytes], max_pixels: int = DEFAULT_MAX_PIXELS,
                   known: dict[str, ImageCheck] | None = None) -> list[ImageCheck]:
    """:func:`inspect_image` for many files at once, a chunk of ``DECODE_CHUNK`` files at a
    time: TensorFlow measures and fully decodes one chunk on every core while this thread
    hashes the next. JPEG headers are measured in TensorFlow's compiled call (Pillow reads the
    other formats' headers here); a chunk in which any file fails is checked again one file
    at a time, so each file gets the outcome it gets alone.

    Equal bytes get the same check without a second header read or decode: within the call,
    and against ``known`` (sha256 -> check at this ``max_pixels``), to which new checks are
    added."""
    known = {} if known is None else known
    digests: list[str] = []
    first = {}  # sha256 -> index of its first blob in this call that was not known
    checks: list[ImageCheck | None] = [None] * len(blobs)
    jpeg_chunks, decodes = [], []
    with contextlib.ExitStack() as stack:
        submit = _run_now  # one chunk has nothing to overlap with
        if len(blobs) > DECODE_CHUNK:
            submit = stack.enter_context(concurrent.futures.ThreadPoolExecutor(1, "hotdog-decode")).submit
        for start in range(0, len(blobs), DECODE_CHUNK):
            jpegs, others = [], []
            for i in range(start, min(start + DECODE_CHUNK, len(blobs))):
                digests.append(hashlib.sha256(blobs[i]).hexdigest())
                if digests[i] not in known and first.setdefault(digests[i], i) == i:
                    (jpegs if blobs[i].startswith(JPEG_MAGIC) else others).append(i)
            if len(jpegs) > EAGER_DECODES:
                jpeg_chunks.append((jpegs, submit(_measured_jpegs, [blobs[i] for i in jpegs], max_pixels)))
            else:
                others += jpegs
            for i in others:
                checks[i] = _check_header(blobs[i], digests[i], max_pixels)
            pending = [i for i in others if checks[i].reason is None]
            if pending:
                decodes.append((pending, submit(_decodable, [blobs[i] for i in pending])))
        for jpegs, measured in jpeg_chunks:
            shapes = measured.result()
            for i, shape in zip(jpegs, shapes or [None] * len(jpegs)):
                checks[i] = (_jpeg_check(digests[i], len(blobs[i]), shape, max_pixels) if shape
                             else _check_alone(blobs[i], digests[i], max_pixels))
        for pending, decoded in decodes:
            for i, ok in zip(pending, decoded.result()):
                if not ok:  # only failures are decoded again, for the message
                    checks[i] = _failed_decode(checks[i], blobs[i], _decode_error(blobs[i]))
    known.update((digests[i], checks[i]) for i in first.values())
    return [known[digest] for digest in digests]


def _run_now(fn, *args) -> concurrent.futures.Future:
    future = concurrent.futures.Future()
    future.set_result(fn(*args))
    return future


def _check_header(data: bytes, digest: str, max_pixels: int) -> ImageCheck:
    """Everything short of the full decode: emptiness, format from content, size limit."""
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
    return _sized_check(measured, fmt, max_pixels)


def _sized_check(fields: dict, fmt: str, max_pixels: int) -> ImageCheck:
    """The check of a decodable image whose header gave ``fields`` (sha256, size_bytes, width,
    height): too large, or valid until its full decode says otherwise."""
    pixels = fields["width"] * fields["height"]
    if pixels > max_pixels:
        return ImageCheck(**fields, format=fmt, reason=TOO_LARGE,
                          detail=f"{fields['width']}x{fields['height']} = {pixels} pixels > limit {max_pixels}")
    return ImageCheck(**fields, format=fmt)


def _jpeg_check(digest: str, size_bytes: int, shape: tuple[int, int], max_pixels: int) -> ImageCheck:
    """The check of a JPEG that :func:`_measured_jpegs` measured as ``shape`` (height, width)."""
    return _sized_check({"sha256": digest, "size_bytes": size_bytes, "width": shape[1], "height": shape[0]},
                        "jpeg", max_pixels)


def _check_alone(data: bytes, digest: str, max_pixels: int) -> ImageCheck:
    """Header, then a full decode of this one file."""
    check = _check_header(data, digest, max_pixels)
    if check.reason is None and (error := _decode_error(data)) is not None:
        return _failed_decode(check, data, error)
    return check


def _failed_decode(check: ImageCheck, data: bytes, error: str | None) -> ImageCheck:
    reason = TRUNCATED if _lacks_end_marker(data, check.format) else CORRUPT
    return dataclasses.replace(check, reason=reason, detail=error or "TensorFlow cannot decode it")


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
    """Whether TensorFlow fully decodes each blob: up to ``EAGER_DECODES`` one after the other,
    more in one compiled call on every core; where that call fails, one by one to find which."""
    if len(blobs) <= EAGER_DECODES:
        return [_decode_error(data) is None for data in blobs]
    import tensorflow as tf  # imported lazily: workers pay for it once, listing never

    try:
        _compiled_decode()(tf.constant(blobs, dtype=tf.string))
    except _decode_errors():
        return [_decode_error(data) is None for data in blobs]
    return [True] * len(blobs)


def _measured_jpegs(blobs: list[bytes], max_pixels: int) -> list[tuple[int, int]] | None:
    """(height, width) of each JPEG, each one within ``max_pixels`` fully decoded, in one
    compiled call on every core; None if any of them does not measure or decode."""
    import tensorflow as tf

    try:
        check_all = _compiled_jpeg_check()
        measured = check_all(tf.constant(blobs, dtype=tf.string), tf.constant(max_pixels, tf.int64)).numpy()
    except _decode_errors():
        return None
    if any(rows != height for height, _, rows in measured):  # decoded rows must match the header
        return None
    return [(int(height), int(width)) for height, width, _ in measured]


@functools.cache
def _compiled_jpeg_check():
    """A traced function: per JPEG of a 1-D string tensor, its (height, width) from the header
    and the rows of its full decode (the height again when it exceeds ``max_pixels`` and is not
    decoded), ``DECODE_PARALLEL`` at a time. It raises if any header or decode fails."""
    import tensorflow as tf

    def check(data, max_pixels):
        shape = tf.image.extract_jpeg_shape(data, output_type=tf.int64)[:2]
        rows = tf.cond(shape[0] * shape[1] <= max_pixels,
                       lambda: tf.shape(tf.io.decode_image(data, channels=3, expand_animations=False),
                                        out_type=tf.int64)[0],
                       lambda: shape[0])
        return tf.concat([shape, [rows]], 0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.int64)], autograph=False)
    def check_all(blobs, max_pixels):
        return tf.map_fn(lambda data: check(data, max_pixels), blobs,
                         fn_output_signature=tf.TensorSpec([3], tf.int64), parallel_iterations=DECODE_PARALLEL)

    atexit.register(_compiled_jpeg_check.cache_clear)
    return check_all


@functools.cache
def _compiled_decode():
    """A traced function decoding a 1-D string tensor of images, ``DECODE_PARALLEL`` at a time;
    it raises if any of them does not decode."""
    import tensorflow as tf

    def decode(data):
        return tf.shape(tf.io.decode_image(data, channels=3, expand_animations=False))[0]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def decode_all(blobs):
        return tf.map_fn(decode, blobs, fn_output_signature=tf.int32, parallel_iterations=DECODE_PARALLEL)

    atexit.register(_compiled_decode.cache_clear)  # released while TensorFlow is still loaded
    return decode_all


def _decode_errors() -> tuple[type[Exception], ...]:
    """TensorFlow's errors for bytes that do not decode (the image's fault, not the machine's)."""
    import tensorflow as tf

    return tf.errors.InvalidArgumentError, tf.errors.UnknownError


def _decode_error(data: bytes) -> str | None:
    """Fully decode with TensorFlow; the error message, or None when it decodes."""
    import tensorflow as tf  # imported lazily: workers pay for it once, listing never

    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except _decode_errors() as err:
        return err.message.split("[Op:")[0].split("}}")[-1].strip()
    return None
