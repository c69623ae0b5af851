import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import userstate

from tasks.runners import pipeline_options
from tfx_pipeline import beam_dofn_specs

COUNT = userstate.ReadModifyWriteStateSpec("count", VarIntCoder())
FLUSH = userstate.TimerSpec("flush", userstate.TimeDomain.WATERMARK)


class RunningCount(beam.DoFn):
    """A stateful DoFn: numbers each key's elements 1, 2, ..."""

    def process(self, element, count=beam.DoFn.StateParam(COUNT)):
        seen = (count.read() or 0) + 1
        count.write(seen)
        yield element[0], seen


class WithTimer(beam.DoFn):
    def process(self, element, timer=beam.DoFn.TimerParam(FLUSH)):
        yield element

    @userstate.on_timer(FLUSH)
    def flush(self):
        yield "flushed"


def beams_own(dofn):
    """Beam's computation, unremembered."""
    return getattr(userstate.get_dofn_specs, "__wrapped__", userstate.get_dofn_specs)(dofn)


def test_specs_are_beams_own_and_computed_once_per_dofn():
    calls = []
    compute = beam_dofn_specs._remembering(lambda dofn: calls.append(dofn) or beams_own(dofn))
    stateful, timed, plain = RunningCount(), WithTimer(), beam.DoFn()
    for dofn in (stateful, timed, plain):
        first = compute(dofn)
        assert first == beams_own(dofn)
        first[0].clear()  # a caller changing its sets does not change the next caller's
        assert compute(dofn) == beams_own(dofn)
    assert compute(stateful) == ({COUNT}, set()) and compute(timed) == (set(), {FLUSH})
    assert calls == [stateful, timed, plain]


def test_a_new_dofn_is_not_answered_with_a_dead_ones_specs():
    calls = []
    compute = beam_dofn_specs._remembering(lambda dofn: calls.append(type(dofn)) or beams_own(dofn))
    for _ in range(50):  # ids of freed objects are reused: each new object must be computed
        assert compute(RunningCount()) == ({COUNT}, set())
        assert compute(beam.DoFn()) == (set(), set())
    assert len(calls) == 100


def test_stateful_jobs_run_with_the_specs_remembered():
    beam_dofn_specs.install()
    beam_dofn_specs.install()
    assert userstate.get_dofn_specs.remembers
    with beam.Pipeline(options=pipeline_options()) as p:
        counted = (p | beam.Create([("a", 1), ("b", 1), ("a", 2), ("a", 3)]) | beam.ParDo(RunningCount())
                   | beam.combiners.Top.PerKey(1))
        assert_that(counted, equal_to([("a", [3]), ("b", [1])]))
