"""The spread across seeds, and shifts paired by seed when some seeds have no model at a step."""
import pytest

from tasks import repeats


def row(a):
    return {"x": a, "y": 1 - a}


def test_shifts_pair_the_seeds_that_have_a_model_at_both_steps():
    means = {"first": {0: row(0.50), 1: row(0.52), 2: row(0.48), 3: row(0.51)},
             "second": {0: row(0.70), 2: row(0.69), 3: row(0.72)},  # seed 1 was not blessed at this step
             "third": {1: row(0.55)}}
    stats = repeats.across_seeds(means, 4)
    assert [stats["steps"][s]["n"] for s in means] == [4, 3, 1]
    assert stats["steps"]["first"]["classes"]["x"]["mean"] == pytest.approx(0.5025)
    shift = stats["shifts"]["second"]
    assert shift["n"] == 3
    assert shift["classes"]["x"]["mean"] == pytest.approx((0.20 + 0.21 + 0.21) / 3)
    assert shift["classes"]["x"]["beyond_noise"] and shift["classes"]["y"]["beyond_noise"]
    assert "third" not in stats["shifts"]  # one pair: no spread to compare with
    lines = "\n".join(repeats.markdown(stats))
    assert "| second | 3 | +20.7% ± 0.6% **beyond noise** |" in lines and "| third | 1 |" in lines


def test_a_shift_within_the_noise_is_not_flagged():
    means = {"a": {0: row(0.5), 1: row(0.6), 2: row(0.4)}, "b": {0: row(0.55), 1: row(0.5), 2: row(0.45)}}
    assert not repeats.across_seeds(means, 3)["shifts"]["b"]["classes"]["x"]["beyond_noise"]
