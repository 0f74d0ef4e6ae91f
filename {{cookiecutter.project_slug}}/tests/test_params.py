"""params.yaml and settings.yaml are what DVC's composer makes of conf/, and every config group composes."""

from pathlib import Path

import pytest
import yaml
from lockstep.params import compose

ROOT = Path(__file__).resolve().parents[1]


def test_committed_params_are_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert compose() == (ROOT / "params.yaml").read_text(encoding="utf-8")
    assert compose(config_name="settings") == (ROOT / "settings.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("group", ["data", "model"])
def test_every_config_of_a_group_composes(monkeypatch: pytest.MonkeyPatch, group: str) -> None:
    monkeypatch.chdir(ROOT)
    configs = sorted((ROOT / "conf" / group).glob("*.yaml"))
    assert configs
    for config in configs:
        composed = yaml.safe_load(compose(overrides=[f"{group}={config.stem}"]))
        assert composed[group] == yaml.safe_load(config.read_text(encoding="utf-8")), config  # the one selected
