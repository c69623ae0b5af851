import time

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.runners.worker import statesampler
from apache_beam.utils import counters

from tasks.runners import pipeline_options
from tfx_pipeline import beam_state_sampler


def test_new_samplers_use_the_short_period_and_stop_without_waiting_out_beams():
    beam_state_sampler.install()
    beam_state_sampler.install()
    sampler = statesampler.StateSampler("step", counters.CounterFactory())
    assert sampler.sampling_period_ms == beam_state_sampler.PERIOD_MS
    sampler.start()
    time.sleep(1.0)  # long enough for Beam's own period to have grown to its 200 ms
    started = time.perf_counter()
    sampler.stop()
    assert time.perf_counter() - started < 5 * beam_state_sampler.PERIOD_MS / 1000


def test_jobs_run_with_the_short_period():
    with beam.Pipeline(options=pipeline_options()) as p:
        doubled = p | beam.Create([1, 2, 3]) | beam.Map(lambda x: 2 * x) | beam.combiners.ToList()
        assert_that(doubled, equal_to([[2, 4, 6]]))
    assert statesampler.StateSampler("step", counters.CounterFactory()).sampling_period_ms == \
        beam_state_sampler.PERIOD_MS
