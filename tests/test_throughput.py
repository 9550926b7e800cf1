"""The full-scale throughput measurement (kdlib.course.throughput): a real DistilHuBERT step of the published
HuBERT Base architecture, and estimates that follow from it."""

import pytest

from kdlib.course import throughput


def test_one_paper_scale_distillation_step_is_timed_through_fit():
    result = throughput.measure(batch=1, seconds=0.5, steps=1, warmup=0)
    assert result["teacher_params"] == 94_371_712  # HuBERT Base
    assert result["student_params"] == 23_492_992  # DistilHuBERT's 23.49 M
    assert result["seconds_per_step"] > 0 and result["processes"] == 1
    assert result["audio_seconds_per_second"] == pytest.approx(0.5 * result["items_per_second"])


def test_estimates_divide_each_budget_by_the_measured_rate():
    hours = throughput.estimates({"audio_seconds_per_second": 3600.0})  # an hour of audio per second
    items, crop = throughput.BUDGETS[next(iter(throughput.BUDGETS))]
    assert hours[next(iter(throughput.BUDGETS))] == pytest.approx(items * crop / 3600 / 3600)
    assert set(hours) == set(throughput.BUDGETS)


def test_a_timing_without_steps_is_refused():
    with pytest.raises(ValueError, match="at least one timed step"):
        throughput.measure(steps=0)
