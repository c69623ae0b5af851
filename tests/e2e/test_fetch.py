"""`hotdog data fetch` and the first `make run` without data, against a local mirror of the
public set (the shared 1,800 images served on 127.0.0.1 in the repository's layout)."""
import os

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks import fetch, services, settings
from tests.mirror import serving

pytestmark = pytest.mark.slow


@pytest.fixture
def mirror(shared_images):
    with serving(shared_images) as server:
        yield server


def test_fetch_fails_by_name_then_resumes(mirror, tmp_path):
    dest = str(tmp_path / "images")
    mirror.corrupt.add("taco/taco_pg_0_pos_7.jpeg")
    mirror.drop_once.update({"hot dog/hot dog_pg_0_pos_71.jpeg", "submarine sandwich/submarine sandwich_pg_0_pos_48.png"})
    failed = CliRunner().invoke(app, ["data", "fetch", "--dest", dest, "--base-url", mirror.base_url])
    assert failed.exit_code == 1
    assert "1 of 1800 files could not be verified: taco/taco_pg_0_pos_7.jpeg: checksum mismatch" in failed.output
    assert not fetch.is_complete(dest)

    mirror.corrupt.clear()
    mirror.requests.clear()
    done = CliRunner().invoke(app, ["data", "fetch", "--dest", dest, "--base-url", mirror.base_url])
    assert done.exit_code == 0, done.output
    assert "1800 files verified" in done.output and "(1 downloaded, 1799 already there" in done.output
    assert mirror.requests == ["taco/taco_pg_0_pos_7.jpeg"]
    assert fetch.is_complete(dest)
    assert sorted(os.listdir(dest)) == sorted([fetch.COMPLETE, *os.listdir(settings.SHARED_DATA)])


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """A checkout with no ../shared, no download yet and no HOTDOG_DATA."""
    monkeypatch.delenv("HOTDOG_DATA", raising=False)
    monkeypatch.setattr(settings, "SHARED_DATA", str(tmp_path / "no-shared"))
    monkeypatch.setattr(settings, "FETCHED_DATA", str(tmp_path / "data" / "hotdog-images"))
    return settings.FETCHED_DATA


def test_run_without_data_fetches_it_first(no_data, mirror, monkeypatch, tmp_path):
    monkeypatch.setattr(fetch, "DEFAULT_BASE_URL", mirror.base_url)
    result = CliRunner().invoke(app, ["run", "--workdir", str(tmp_path / "work"), "--images", str(tmp_path / "none")])
    assert result.output.splitlines()[0] == (f"No image data (HOTDOG_DATA is not set): fetching the public hot-dog set "
                                             f"into {no_data} ...")
    assert fetch.is_complete(no_data)
    assert result.exit_code == 2 and "no images to judge" in result.output  # checked after the download
    assert settings.default_source() == no_data


def test_run_offline_says_how_to_point_at_images(no_data, monkeypatch, tmp_path):
    monkeypatch.setattr(fetch, "DEFAULT_BASE_URL", f"http://127.0.0.1:{services.free_port()}/repo")
    monkeypatch.setattr(fetch, "TRANSPORT_ATTEMPTS", 2)
    result = CliRunner().invoke(app, ["run", "--workdir", str(tmp_path / "work")])
    assert result.exit_code == 1
    assert "cannot download the image set from http://127.0.0.1:" in result.output
    assert "HOTDOG_DATA=/path/to/images make run" in result.output
    assert not fetch.is_complete(no_data)
