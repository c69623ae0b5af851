"""tasks.images: format from content, full decode, size limit, reasons."""
import io

import pytest
from PIL import Image

from tasks import images
from tests.conftest import image_bytes, png_claiming


def test_valid_jpeg_is_measured():
    check = images.inspect_image(image_bytes("JPEG", (40, 30)))
    assert (check.reason, check.format, check.width, check.height) == (None, "jpeg", 40, 30)
    assert len(check.sha256) == 64


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP"])
def test_other_tensorflow_formats_are_accepted(fmt):
    assert images.inspect_image(image_bytes(fmt)).format == fmt.lower()
    assert images.inspect_image(image_bytes(fmt)).reason is None


def test_empty_file():
    assert images.inspect_image(b"").reason == "empty"


def test_truncated_jpeg():
    data = image_bytes("JPEG", (120, 90), noise=True)
    check = images.inspect_image(data[: len(data) // 2])
    assert check.reason == "truncated"
    assert check.width == 120  # the header was still measured


def test_jpeg_cut_inside_its_header_is_truncated():
    data = image_bytes("JPEG", (120, 90))
    assert images.inspect_image(data[:300]).reason == "truncated"


def test_text_is_not_an_image():
    assert images.inspect_image(b"just some text, named .jpeg").reason == "not_an_image"


@pytest.mark.parametrize("fmt", ["WEBP", "TIFF"])
def test_formats_tensorflow_cannot_decode_are_unsupported(fmt):
    check = images.inspect_image(image_bytes(fmt))
    assert check.reason == "unsupported_format"
    assert fmt in check.detail


def test_header_claiming_50000_squared_pixels_is_too_large():
    check = images.inspect_image(png_claiming(50_000, 50_000))
    assert check.reason == "too_large"


def test_pixel_limit_is_configurable():
    data = image_bytes("PNG", (100, 100))
    assert images.inspect_image(data, max_pixels=9_999).reason == "too_large"
    assert images.inspect_image(data, max_pixels=10_000).reason is None


def test_corrupt_body_with_intact_end_is_not_called_truncated():
    data = bytearray(image_bytes("PNG", (64, 64), noise=True))
    data[100:200] = b"\x00" * 100  # damaged compressed pixel data, IEND still in place
    assert images.inspect_image(bytes(data)).reason == "corrupt"


@pytest.mark.parametrize("name", [".DS_Store", "Thumbs.db", "a/._photo.jpeg", "desktop.ini"])
def test_system_files(name):
    assert images.is_system_file(name)


def test_ordinary_names_are_not_system_files():
    assert not images.is_system_file("food/thumbs up.jpeg")


def test_many_files_get_the_outcome_each_gets_alone():
    """Over several compiled decode chunks, a bad file anywhere fails only itself."""
    good = [image_bytes("JPEG", (20 + i % 7, 16), color=(i % 256, 40, 90)) for i in range(2 * images.DECODE_CHUNK + 40)]
    truncated = image_bytes("JPEG", (120, 90), noise=True)
    corrupt = bytearray(image_bytes("PNG", (64, 64), noise=True))
    corrupt[100:200] = b"\x00" * 100
    blobs = list(good)
    blobs[3] = truncated[: len(truncated) // 2]
    blobs[images.DECODE_CHUNK + 5] = bytes(corrupt)
    blobs[-1] = b""
    checks = images.inspect_images(blobs)
    assert [c.reason for c in checks] == [images.inspect_image(b).reason for b in blobs]
    assert {i: c.reason for i, c in enumerate(checks) if c.reason} == {
        3: "truncated", images.DECODE_CHUNK + 5: "corrupt", len(blobs) - 1: "empty"}
    assert [c.sha256 for c in checks] == [images.inspect_image(b).sha256 for b in blobs]


def mpo_bytes(size=(40, 30)) -> bytes:
    """A Multi-Picture JPEG of two frames, as cameras and many phones write."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "MPO", save_all=True,
                                               append_images=[Image.new("RGB", size, (30, 200, 30))])
    return buffer.getvalue()


def test_multi_picture_jpeg_is_a_jpeg():
    check = images.inspect_image(mpo_bytes())
    assert (check.reason, check.format, check.width, check.height) == (None, "jpeg", 40, 30)


def test_jpegs_measured_in_a_batch_get_exactly_the_check_each_gets_alone():
    """Above EAGER_DECODES JPEGs TensorFlow reads their headers; the checks must not change."""
    blobs = [image_bytes("JPEG", (20 + i, 16 + i % 5), color=(i * 6, 40, 90)) for i in range(images.EAGER_DECODES + 8)]
    blobs[5] = image_bytes("JPEG", (100, 100))  # over the limit below: too large, never decoded
    blobs[7] = mpo_bytes((50, 20))
    checks = images.inspect_images(blobs, max_pixels=5_000)
    assert checks == [images.inspect_image(blob, max_pixels=5_000) for blob in blobs]
    assert (checks[5].reason, checks[5].width, checks[5].height) == ("too_large", 100, 100)
    assert (checks[7].reason, checks[7].format, checks[7].width) == (None, "jpeg", 50)
    assert sum(check.reason is None for check in checks) == len(blobs) - 1


def test_equal_bytes_are_checked_once(monkeypatch):
    valid, truncated = image_bytes("JPEG", (40, 30)), image_bytes("JPEG", (120, 90), noise=True)[:900]
    known = {}
    first = images.inspect_images([valid, truncated, valid, truncated], known=known)
    assert [c.reason for c in first] == [None, "truncated", None, "truncated"]
    assert set(known) == {first[0].sha256, first[1].sha256}

    def fail(*args):
        raise AssertionError("checked again")

    monkeypatch.setattr(images, "_check_header", fail)
    monkeypatch.setattr(images, "_decodable", fail)
    assert images.inspect_images([truncated, valid], known=known) == [first[1], first[0]]
