"""`lockstep aa`: the same prompts answered K times, every pair of runs judged by the gate's rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lockstep import cli
from lockstep.calibration import calibrate
from lockstep.config import StageError
from lockstep.llm import Answer

QUEUES = ["billing", "technical", "account", "shipping", "other"]
RULES = [
    {"metric": "reports/prompts/*/metrics.json:exact_match", "direction": "higher", "max_regression": 0.0},
    {"metric": "reports/prompts/*/metrics.json:rouge_l", "direction": "higher", "max_regression": 0.05},
    {"metric": "reports/prompts/*/metrics.json:pii_leak_rate", "direction": "lower", "max": 0.0},
    {"metric": "reports/metrics.json:accuracy", "direction": "higher", "min": 0.9},  # not a prompt's: left out
]


class Router:
    """A stand-in model: always 'billing' (deterministic), or a queue drawn at random on every call."""

    def __init__(self, sampling: bool) -> None:
        self.sampling, self.calls, self.rng = sampling, 0, np.random.default_rng(5)

    def chat(self, messages, settings, schema=None) -> Answer:
        self.calls += 1
        queue = self.rng.choice(QUEUES) if self.sampling else "billing"
        return Answer(json.dumps({"queue": str(queue)}), input_tokens=50, output_tokens=5, latency_s=0.01)


@pytest.fixture
def rules(params: dict, save_params, workdir: Path) -> Path:
    params["gates"]["rules"] = RULES
    return save_params()


def test_a_deterministic_model_raises_no_false_alarm(rules: Path) -> None:
    model = Router(sampling=False)
    result = calibrate(rules, ["triage_ticket"], runs=3, model=model)
    assert model.calls == result.answers == 3 * 36
    assert result.differing == {"triage_ticket": (0, 36)}
    assert (result.comparisons, result.failed, result.inconclusive) == (6, 0, 0)
    assert result.false_alarm_rate == 0
    assert sorted(result.verdicts) == [
        "reports/prompts/triage_ticket/metrics.json:exact_match [higher is better, drop ≤ 0]",
        "reports/prompts/triage_ticket/metrics.json:pii_leak_rate [lower is better, max 0]",
        "reports/prompts/triage_ticket/metrics.json:rouge_l [higher is better, drop ≤ 0.05]",
    ]
    assert all(counts["pass"] == 6 for counts in result.verdicts.values())


def test_a_sampling_model_shows_what_its_noise_costs(rules: Path) -> None:
    # Answers drawn at random on every call: about 4 in 5 differ between two runs, yet nothing changed.
    # McNemar and the paired bootstrap keep false FAILs rare; most pairs cannot be decided.
    result = calibrate(rules, ["triage_ticket"], runs=4, model=Router(sampling=True))
    assert result.differing["triage_ticket"][0] > 30
    assert result.comparisons == 12 and result.failed <= 1
    assert result.inconclusive >= 8
    exact = result.verdicts["reports/prompts/triage_ticket/metrics.json:exact_match [higher is better, drop ≤ 0]"]
    assert sum(exact.values()) == 12 and exact["inconclusive"] >= 8


def test_aa_needs_two_runs_and_known_prompts(rules: Path) -> None:
    with pytest.raises(StageError, match=r"--runs 1: an A/A comparison needs at least 2 runs"):
        calibrate(rules, None, runs=1, model=Router(False))
    with pytest.raises(StageError, match=r"aa: nope: not in conf/prompts names \(summarize_ticket, triage_ticket\)"):
        calibrate(rules, ["nope"], runs=2, model=Router(False))


def test_the_command_prints_the_false_alarm_rate(workdir, params, save_params, fake_llm, monkeypatch, capsys) -> None:
    endpoint = {"backend": "openai", "model": "fake", "base_url": fake_llm.url, "api_key_env": "LOCKSTEP_TEST_KEY"}
    params["llm"] |= endpoint
    params["gates"]["rules"] = RULES
    save_params()
    Path("conf").mkdir()
    Path("conf/prices.yaml").write_text("fake: {input: 0.0, output: 0.0}\n")
    monkeypatch.setenv("LOCKSTEP_TEST_KEY", fake_llm.key)
    assert cli.main(["aa", "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert "aa: 2 runs of summarize_ticket, triage_ticket: 144 answers, interleaved, in " in out
    assert "  triage_ticket: 0 of 36 answers differ between runs" in out
    summary = "aa: false alarms: 0 of 2 comparisons (0 %), inconclusive 0, with the rules of params.yaml"
    assert out.rstrip().endswith(summary)
    assert len(fake_llm.requests) == 144
    assert not Path(params["paths"]["prompt_reports"]).exists()  # measures, writes nothing
