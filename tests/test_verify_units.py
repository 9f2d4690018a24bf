"""The statistics and hint table behind verify, checked directly."""

from __future__ import annotations

from collections import Counter

import pytest

from igwlab.verify import stats
from igwlab.verify.engine import Observation
from igwlab.verify.hints import hint_for, summarize_outcomes


def test_split_test_accepts_the_configured_split_and_rejects_a_wrong_one() -> None:
    assert stats.split_test([140, 60], [70, 30]).p_value > 0.5
    assert stats.split_test([100, 100], [70, 30]).p_value < stats.ALPHA
    assert not stats.split_test([3, 1], [70, 30]).enough_data
    assert stats.requests_needed_for_split([70, 30]) == 17


def test_prefix_affinity_statistic() -> None:
    assert stats.above_chance(28, 28, 1 / 4) < stats.ALPHA
    assert stats.above_chance(7, 28, 1 / 4) > 0.1


@pytest.mark.parametrize(
    ("observation", "words"),
    [
        (Observation(status=None, error="connect"), "Nothing accepts connections"),
        (Observation(status=None, error="timeout"), "no answer came in time"),
        (Observation(status=404), "path match"),
        (Observation(status=429), "queue is full"),
        (Observation(status=500), "EPP logs"),
        (Observation(status=502), "target port"),
        (Observation(status=503), "No endpoint for the request"),
        (Observation(status=504), "timed out upstream"),
        (Observation(status=200, error="bad-json"), "not JSON"),
        (Observation(status=599), "EPP logs"),
    ],
)
def test_every_failure_gets_a_hint_naming_the_likely_cause(observation: Observation, words: str) -> None:
    assert words in hint_for(observation)


def test_outcomes_are_summarized_most_common_first() -> None:
    seen = [Observation(status=503)] * 3 + [Observation(status=200)]
    assert summarize_outcomes(seen) == "3x 503, 1x 200"


def test_the_split_is_read_from_the_endpoint_pickers_counter() -> None:
    """Prometheus text as the GIE v1.5.0 EPP serves it (inference_objective_request_total with model_name,
    target_model_name and priority): the samples of one requested model, summed by target."""
    from igwlab.verify.evidence import SplitCounts, parse_split

    metric = "inference_objective_request_total"
    text = "\n".join(
        [
            f"# HELP {metric} [ALPHA] Counter of inference objective requests.",
            f"# TYPE {metric} counter",
            f'{metric}{{model_name="fake-llm",priority="2",target_model_name="fake-llm-lora-a"}} 71',
            f'{metric}{{model_name="fake-llm",priority="0",target_model_name="fake-llm-lora-a"}} 3',
            f'{metric}{{model_name="fake-llm",priority="2",target_model_name="fake-llm-lora-b"}} 29',
            f'{metric}{{model_name="other",priority="0",target_model_name="other"}} 500',
        ]
    )
    counts = parse_split(text, "inference_objective_request_total", "fake-llm")
    assert counts == {"fake-llm-lora-a": 74, "fake-llm-lora-b": 29}
    before = SplitCounts(by_target=parse_split(text, "inference_objective_request_total", "fake-llm"), pods=1)
    after = SplitCounts(by_target=counts + Counter({"fake-llm-lora-b": 10}), pods=1)
    assert after.since(before) == {"fake-llm-lora-b": 10}
    assert parse_split(text, "inference_model_request_total", "fake-llm") == {}, "v0.x names its counter apart"


def test_verify_and_load_read_the_lab_as_up_selected_it() -> None:
    """The workload, GIE version and add-ons `up` was given shape what verify and load expect (pod names in
    answers, how a split shows), so without --lab, or with --lab naming the lab that is up, they apply."""
    from igwlab.selection import LabSelection, resolve_lab
    from igwlab.verify.run import recorded_selection

    record = {"lab": "agentgateway-fake-llm", "lab_file": None, "selection": {"workload": "vllm-cpu"}}
    selection = recorded_selection(record, None)
    assert selection == LabSelection(lab="agentgateway-fake-llm", workload="vllm-cpu")
    assert resolve_lab(selection).lab.workload.kind == "vllm-cpu"
    assert recorded_selection(record, "agentgateway-fake-llm") == selection
    assert recorded_selection(record, "kgateway-fake-llm") == LabSelection(lab="kgateway-fake-llm")
    assert recorded_selection({}, None) == LabSelection(lab="agentgateway-fake-llm")  # the default provider
