"""tasks.verdict: bad inputs give clear errors naming the folder or model."""
import numpy as np
import pytest

from tasks import verdict
from tasks.errors import HotdogInputError


def test_missing_images_folder(tmp_path):
    with pytest.raises(HotdogInputError, match="images folder not found: .*nowhere"):
        verdict.load_images(str(tmp_path / "nowhere"))


def test_folder_without_a_decodable_image(tmp_path):
    (tmp_path / "a.jpeg").write_bytes(b"not an image")
    with pytest.raises(HotdogInputError, match="no decodable image in"):
        verdict.load_images(str(tmp_path))


def test_model_folder_that_is_not_a_saved_model(tmp_path):
    with pytest.raises(HotdogInputError, match="is not a SavedModel folder"):
        verdict.score(str(tmp_path), [b"x"])


def test_no_model_given(tmp_path):
    with pytest.raises(HotdogInputError, match="at least one model"):
        verdict.run_verdict({}, str(tmp_path), str(tmp_path / "out"))


def test_bootstrap_interval_brackets_the_mean():
    values = np.random.default_rng(1).uniform(size=400)
    low, high = verdict.bootstrap_interval(values)
    assert low < values.mean() < high and high - low < 0.1
