"""The gate's own environment, checked file by file against what the installer recorded."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from lockstep import integrity
from lockstep.config import StageError


def digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def installed(tmp_path: Path) -> Path:
    """A site-packages holding one package as an installer leaves it: its module and a RECORD with hashes."""
    site = tmp_path / "lib" / "site-packages"
    (site / "judge").mkdir(parents=True)
    info = site / "judge-1.0.dist-info"
    info.mkdir()
    files = {"judge/__init__.py": b"", "judge/gate.py": b"def passed(checks):\n    return all(checks)\n",
             "judge-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: judge\nVersion: 1.0\n"}  # fmt: skip
    lines = []
    for name, data in files.items():
        (site / name).write_bytes(data)
        lines.append(f"{name},sha256={digest(data)},{len(data)}")
    (info / "RECORD").write_text("\n".join([*lines, "judge-1.0.dist-info/RECORD,,"]) + "\n")
    return site


def test_an_untouched_install_passes(tmp_path: Path) -> None:
    site = installed(tmp_path)
    assert integrity.changed_files([str(site)]) == []


def test_a_file_edited_after_the_install_is_named(tmp_path: Path) -> None:
    # What a pull request's test could do before the gate runs: make the gate pass everything
    site = installed(tmp_path)
    (site / "judge" / "gate.py").write_text("def passed(checks):\n    return True\n")
    assert integrity.changed_files([str(site)]) == [f"{(site / 'judge' / 'gate.py').resolve()}: changed"]


def test_a_deleted_file_and_a_startup_hook_nobody_installed_are_named(tmp_path: Path) -> None:
    site = installed(tmp_path)
    (site / "judge" / "__init__.py").unlink()
    (site / "zz-patch.pth").write_text("import os\n")  # run by every Python start in this environment
    (site / "sitecustomize.py").write_text("print('hi')\n")
    problems = integrity.changed_files([str(site)])
    assert problems == sorted([
        f"{(site / 'judge' / '__init__.py').resolve()}: missing",
        f"{site.resolve() / 'zz-patch.pth'}: added after the install",
        f"{site.resolve() / 'sitecustomize.py'}: added after the install",
    ])  # fmt: skip


def test_verify_refuses_in_one_line_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = installed(tmp_path)
    (site / "judge" / "gate.py").write_text("def passed(checks):\n    return True\n")
    check = integrity.changed_files
    monkeypatch.setattr(integrity, "changed_files", lambda counted: check([str(site)], counted))
    with pytest.raises(StageError, match=r"^the environment was changed after it was installed \(.*gate\.py: changed\)"
                       r": it will not judge; recreate it \(rm -rf \.venv && make setup\) and run again$"):  # fmt: skip
        integrity.verify()
