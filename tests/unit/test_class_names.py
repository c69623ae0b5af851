"""Class names as data: one class list per data root, names read back from a model."""
import json

import pytest

from tasks import class_names
from tasks.errors import HotdogInputError


def card(name, classes):
    return {"name": name, "classes": [{"name": c, "label_index": i} for i, c in reversed(list(enumerate(classes)))]}


def test_the_first_data_set_records_the_list_in_label_order(tmp_path):
    root = str(tmp_path / "data_root")
    assert class_names.of_data_root(root) is None
    assert class_names.admit(root, [card("flowers", ["rosé", "tulip"])]) == ["rosé", "tulip"]
    assert class_names.of_data_root(root) == ["rosé", "tulip"]
    assert class_names.admit(root, [card("more", ["rosé", "tulip"])]) == ["rosé", "tulip"]


@pytest.mark.parametrize("other", [["tulip", "rosé"], ["rosé", "tulip", "daisy"], ["rose", "tulip"]])
def test_another_list_is_refused_naming_both_data_sets_and_lists(tmp_path, other):
    root = str(tmp_path / "data_root")
    class_names.admit(root, [card("flowers", ["rosé", "tulip"])])
    with pytest.raises(HotdogInputError) as err:
        class_names.admit(root, [card("weeds", other)])
    assert f"data set 'weeds' has classes {other}" in str(err.value)
    assert "data set 'flowers' (already in the data root" in str(err.value)
    assert "['rosé', 'tulip']" in str(err.value)
    assert class_names.of_data_root(root) == ["rosé", "tulip"]


def test_two_data_sets_given_together_must_agree_before_anything_is_recorded(tmp_path):
    root = str(tmp_path / "data_root")
    with pytest.raises(HotdogInputError, match=r"'b' has classes \['y', 'x'\] but data set 'a' \(given with it\)"):
        class_names.admit(root, [card("a", ["x", "y"]), card("b", ["y", "x"])])
    assert class_names.of_data_root(root) is None


def test_a_model_names_its_classes_from_its_asset_else_its_lineage_else_numbers(tmp_path):
    model = tmp_path / "registry" / "17"
    (model / "assets").mkdir(parents=True)
    (model / "assets" / class_names.MODEL_ASSET).write_text("rosé\ntulip\n", encoding="utf-8")
    assert class_names.of_model(str(model), 2) == ["rosé", "tulip"]
    with pytest.raises(HotdogInputError, match="2 class names for 3 outputs"):
        class_names.of_model(str(model), 3)
    old = tmp_path / "registry" / "16"
    old.mkdir()
    assert class_names.of_model(str(old), 3) == ["0", "1", "2"]
    (tmp_path / "registry" / "16.lineage.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    assert class_names.of_model(str(old), 3) == ["a", "b", "c"]
