"""tasks.fetch against a local HTTP mirror: verified, resumable, atomic, retried on dropped
connections, failing by name on a corrupted file."""
import os

import pytest

from tasks import fetch
from tests.conftest import image_bytes, write_tree
from tests.mirror import serving, write_checksums

FILES = {f"{category}/{category} {i}.jpeg": image_bytes(color=(c * 60, i * 20, 7))
         for c, category in enumerate(["food", "hot dog", "taco"]) for i in range(5)}


@pytest.fixture
def mirror(tmp_path):
    root = write_tree(tmp_path / "origin", FILES)
    sums = write_checksums(root, str(tmp_path / "SUMS"))
    with serving(root) as server:
        yield server, sums


def tree(dest):
    return {os.path.relpath(os.path.join(d, f), dest): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(dest) for f in files if f != fetch.COMPLETE}


def test_fetch_verifies_every_file_and_marks_the_tree_complete(mirror, tmp_path):
    server, sums = mirror
    dest = str(tmp_path / "dest")
    result = fetch.fetch(dest, server.base_url, sums, workers=4)
    assert tree(dest) == FILES
    assert fetch.is_complete(dest, sums)
    assert (result.files, result.downloaded, result.already_present) == (15, 15, 0)


def test_a_dropped_connection_is_retried(mirror, tmp_path):
    server, sums = mirror
    server.drop_once.add("hot dog/hot dog 2.jpeg")
    dest = str(tmp_path / "dest")
    fetch.fetch(dest, server.base_url, sums, workers=4)
    assert tree(dest) == FILES
    assert server.requests.count("hot dog/hot dog 2.jpeg") == 2


def test_a_corrupted_file_fails_by_name_and_a_rerun_resumes(mirror, tmp_path):
    server, sums = mirror
    server.corrupt.add("taco/taco 3.jpeg")
    dest = str(tmp_path / "dest")
    with pytest.raises(fetch.FetchError, match=r"1 of 15 files could not be verified: taco/taco 3.jpeg: "
                                               r"checksum mismatch"):
        fetch.fetch(dest, server.base_url, sums, workers=4)
    assert server.requests.count("taco/taco 3.jpeg") == 2  # retried once
    assert not fetch.is_complete(dest, sums)
    assert not os.path.exists(os.path.join(dest, "taco", "taco 3.jpeg"))
    assert not [f for _, _, files in os.walk(dest) for f in files if ".part-" in f]
    assert len(tree(dest)) == 14

    server.corrupt.clear()
    server.requests.clear()
    result = fetch.fetch(dest, server.base_url, sums, workers=4)
    assert server.requests == ["taco/taco 3.jpeg"]
    assert (result.downloaded, result.already_present) == (1, 14)
    assert tree(dest) == FILES and fetch.is_complete(dest, sums)


def test_a_file_changed_locally_is_fetched_again(mirror, tmp_path):
    server, sums = mirror
    dest = str(tmp_path / "dest")
    fetch.fetch(dest, server.base_url, sums)
    with open(os.path.join(dest, "food", "food 1.jpeg"), "wb") as handle:
        handle.write(b"damaged")
    server.requests.clear()
    fetch.fetch(dest, server.base_url, sums)
    assert server.requests == ["food/food 1.jpeg"] and tree(dest) == FILES


def test_an_unreachable_server_fails_with_its_address(mirror, tmp_path, monkeypatch):
    _, sums = mirror
    monkeypatch.setattr(fetch, "TRANSPORT_ATTEMPTS", 2)
    from tasks import services

    base = f"http://127.0.0.1:{services.free_port()}/repo"
    with pytest.raises(fetch.FetchError, match=f"cannot download the image set from {base}: .*ConnectError"):
        fetch.fetch(str(tmp_path / "dest"), base, sums)
    assert not fetch.is_complete(str(tmp_path / "dest"), sums)


def test_a_wrong_base_url_fails_on_the_first_404(mirror, tmp_path):
    server, sums = mirror
    with pytest.raises(fetch.FetchError, match="answered HTTP 404"):
        fetch.fetch(str(tmp_path / "dest"), server.base_url + "/nothing-here", sums)
    assert len(server.requests) == 0


def test_the_shipped_checksum_list_names_the_public_set():
    sums = fetch.read_checksums()
    assert len(sums) == 1800
    assert {rel.split("/")[0] for rel in sums} == {"food", "sandwich", "taco", "hot dog", "open face sandwich",
                                                   "hard taco", "submarine sandwich", "flat taco"}
