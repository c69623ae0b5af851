"""The registry beside serving: versions, pins, removal that spares what is served or pinned."""
import json
import os

import pytest

from tasks.errors import HotdogInputError
from tasks.serving import registry


def pushed(workdir, version, accuracy=0.8, complete=True):
    folder = os.path.join(workdir, "registry", version)
    os.makedirs(os.path.join(folder, "variables"))
    if complete:
        open(os.path.join(folder, "saved_model.pb"), "wb").close()
    lineage = {"data_sets": ["baseline"], "accuracy": accuracy, "classes": ["a", "b"],
               "evaluated_on": {"examples": 12, "data_sets": ["baseline"]},
               "parameters": {"min_accuracy": 0.55, "max_regression": 0.0}}
    with open(folder + ".lineage.json", "w") as handle:
        json.dump(lineage, handle)


@pytest.fixture
def workdir(tmp_path):
    for version, accuracy in (("1796000000", 0.7), ("1796000100", 0.8)):
        pushed(str(tmp_path), version, accuracy)
    pushed(str(tmp_path), "1796000200", complete=False)  # the Pusher is still copying it
    return str(tmp_path)


def test_only_versions_with_their_saved_model_pb_are_complete(workdir):
    assert registry.complete_versions(workdir) == ["1796000000", "1796000100"]


def test_describe_lists_each_version_with_its_lineage(workdir):
    rows = registry.describe(workdir)
    assert [r["version"] for r in rows] == ["1796000000", "1796000100", "1796000200"]
    assert rows[1]["accuracy"] == 0.8 and rows[1]["data_sets"] == ["baseline"] and not rows[2]["complete"]
    assert rows[0]["pushed_at"] == "2026-11-30T00:53:20+00:00"
    assert rows[0]["blessed_by"] == "12 eval examples of baseline (accuracy >= 0.55, <= 0 below the previous)"
    assert not any(r["served"] or r["pinned"] for r in rows)


def test_pin_and_unpin(workdir):
    registry.pin(workdir, "1796000000")
    assert registry.pinned(workdir) == "1796000000"
    assert [r["pinned"] for r in registry.describe(workdir)] == [True, False, False]
    assert registry.unpin(workdir) == "1796000000" and registry.pinned(workdir) is None
    assert registry.unpin(workdir) is None


@pytest.mark.parametrize("version, message", [("42", "version '42' is not in .*versions: 1796000000, 1796000100, "
                                                     "1796000200"),
                                              ("1796000200", "incomplete")])
def test_pinning_a_missing_or_incomplete_version_is_refused(workdir, version, message):
    with pytest.raises(HotdogInputError, match=message):
        registry.pin(workdir, version)
    assert registry.pinned(workdir) is None


def test_rm_refuses_the_pinned_and_a_served_version_and_removes_others(workdir):
    registry.pin(workdir, "1796000000")
    with pytest.raises(HotdogInputError, match="pinned"):
        registry.remove(workdir, "1796000000")
    registry.write_served(workdir, 8501, registry.ServedRecord(
        version="1796000100", model_name="default", url="http://127.0.0.1:8501", host=os.uname().nodename,
        pid=os.getpid(), since="now"))
    with pytest.raises(HotdogInputError, match="served by http://127.0.0.1:8501"):
        registry.remove(workdir, "1796000100")
    assert [r["served"] for r in registry.describe(workdir)] == [False, True, False]
    registry.unpin(workdir)
    registry.remove(workdir, "1796000000")
    assert registry.complete_versions(workdir) == ["1796000100"]
    assert sorted(os.listdir(os.path.join(workdir, "registry"))) == ["1796000100", "1796000100.lineage.json",
                                                                     "1796000200", "1796000200.lineage.json"]


def test_a_record_left_by_a_dead_server_does_not_count_as_served(workdir):
    registry.write_served(workdir, 8501, registry.ServedRecord(
        version="1796000100", model_name="default", url="http://127.0.0.1:8501", host=os.uname().nodename,
        pid=2**22 + 1, since="now"))
    assert registry.served(workdir) == []
    registry.remove(workdir, "1796000100")
