#!/usr/bin/env python3
"""Set up and run the template's own tasks with nothing but Python 3.11+.

    python3 dev.py demo     bake a project with the defaults and reproduce its pipeline
    python3 dev.py test     run the template's tests (all of them, slow ones included); --random: any order
    python3 dev.py setup-test-deps   what the tests need beyond Python (PostgreSQL, Chromium); test runs it
    python3 dev.py docs     build the documentation site in strict mode
    python3 dev.py bench    measure bake -> setup -> repro and the no-op/stage start-up times
    python3 dev.py params   recompose the template's params.yaml and settings.yaml after a change to its conf/
    python3 dev.py vendor-vega   refresh the Vega scripts that plots pages embed (from the npm registry)
    python3 dev.py platform up|down   MLflow on PostgreSQL with S3 (moto) on loopback, in build/platform

The first run creates .venv (with uv, fetched from PyPI when it is not installed) and syncs it
to uv.lock; later runs reuse it, and uv's cache makes installs fast.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
DEMO_DIR = ROOT / "build" / "demo"


def run(*cmd: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env)
    if result.returncode:
        sys.exit(result.returncode)


def tool_env() -> dict[str, str]:
    """The environment every task runs in: .venv first on PATH. (Not UV_COMPILE_BYTECODE: the projects
    a task bakes decide it in their own Makefile, as on a user's machine; only .venv's sync sets it.)"""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


def ensure_env() -> dict[str, str]:
    """Create or update .venv from uv.lock; a no-op in well under a second when it is current."""
    env = tool_env()
    uv = shutil.which("uv")
    if uv is None:
        if not (BIN / "uv").exists():
            run(sys.executable, "-m", "venv", VENV)
            run(BIN / "python", "-m", "pip", "install", "-q", "uv>=0.5,<1")
        uv = str(BIN / "uv")
    # compiled once at install: every task and test imports from this .venv
    run(uv, "sync", "-q", "--frozen", "--all-groups", env={"UV_COMPILE_BYTECODE": "1"} | env)
    return env


def demo(args: argparse.Namespace) -> None:
    """Bake the defaults into build/demo, set the project up and reproduce its pipeline."""
    env = ensure_env()
    out = Path(args.output).resolve()
    if out == DEMO_DIR:
        shutil.rmtree(out, ignore_errors=True)  # ours: emptied on every demo
    elif out.exists() and any(out.iterdir()):
        sys.exit(f"error: demo --output {out}: directory is not empty; choose a new or empty one")
    out.mkdir(parents=True, exist_ok=True)
    run(BIN / "cookiecutter", "--no-input", "-o", out, ROOT, *args.extra, env=env)
    (project,) = [p for p in out.iterdir() if p.is_dir()]
    run("make", "setup", cwd=project, env=env)
    run("make", "repro", cwd=project, env=env)
    record = json.loads((project / "reports" / "registration.json").read_text(encoding="utf-8"))
    registered = [record["model_uri"], *(f"prompts:/{n}/{v}" for n, v in record.get("prompts", {}).items())]
    print(f"\nBaked {project}: metrics above; registered {', '.join(registered)} as @{record['alias']}.")


# What the tests need from the machine beyond Python: Debian's packages, each found by a file it installs
DEBIAN = {"postgresql": Path("/usr/lib/postgresql/15/bin/initdb"), "chromium": Path("/usr/bin/chromium")}
OTHER_PYTHONS = ("3.12", "3.13")  # baked with python_version 3.12 / 3.13 by the tests marked other_python
K8S_SCHEMAS = ROOT.parent / "shared" / "k8s-schemas"  # the released CRDs (upstream files, not committed here)


def setup_test_deps(args: argparse.Namespace | None = None) -> list[str]:
    """Install what the tests need beyond Python: PostgreSQL and Chromium from Debian's packages (as
    root, else the command to run is printed), and the history a shallow clone lacks. Quiet when all
    is there. Returns what is still missing, one line each."""
    missing = [name for name, probe in DEBIAN.items() if not probe.exists()]
    # root (CI here), or a passwordless sudo (GitHub's runners); anyone else is told what to run
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    can = shutil.which("apt-get") and (not sudo or subprocess.run([*sudo, "true"], capture_output=True).returncode == 0)
    if missing and can:
        print(f"setup-test-deps: installing {', '.join(missing)} from Debian's packages", flush=True)
        quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        apt = [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
        subprocess.run([*apt, "update", "-qq"], env=quiet, check=False, stdout=subprocess.DEVNULL)
        subprocess.run([*apt, "install", "-y", "-qq", "--no-install-recommends", *missing], env=quiet,
                       check=False, stdout=subprocess.DEVNULL)  # fmt: skip
        missing = [name for name, probe in DEBIAN.items() if not probe.exists()]
    problems = [f"Debian package {name} (run: sudo apt-get install {name})" for name in missing]
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True)
    if shallow.stdout.strip() == "true":
        print("setup-test-deps: fetching the history this shallow clone lacks", flush=True)
        if subprocess.run(["git", "fetch", "-q", "--unshallow"], cwd=ROOT, check=False).returncode:
            problems.append("the Git history (a shallow clone: run git fetch --unshallow)")
    schemas = Path(os.environ.get("LOCKSTEP_K8S_SCHEMAS") or K8S_SCHEMAS)
    if not (schemas / "argo-rollouts-v1.9.1").is_dir() or not (schemas / "kserve-v0.20.0").is_dir():
        problems.append(f"the Kubernetes CRD schemas in {schemas} (set LOCKSTEP_K8S_SCHEMAS)")
    for problem in problems:
        print(f"setup-test-deps: missing {problem}", file=sys.stderr)
    if args is not None and problems:
        sys.exit(1)
    return problems


def find_python(version: str) -> str | None:
    """An interpreter of this minor version that really runs (pyenv shims may not), or None."""
    candidates = [
        shutil.which(f"python{version}"),
        *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}"))),
    ]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(map(int, version.split(".")))):
            return candidate
    return None


def test(args: argparse.Namespace) -> None:
    env = ensure_env()
    setup_test_deps()
    extra = list(args.extra)
    ci = os.environ.get("CI", "").lower() == "true"
    if not (args.random or ci):
        extra = ["-p", "no:randomly", *extra]  # file order; CI shuffles once per run and prints the seed
    if ci:  # every test's time, for finding where a run's time goes
        extra = ["--junitxml", str(ROOT / "build" / "test-results.xml"), *extra]
    others = [v for v in OTHER_PYTHONS if find_python(v) is None]
    if others and "-m" not in extra:
        print(f"test: Python {', '.join(others)} not installed: the tests marked other_python are left out"
              " (the template's GitHub CI runs them)", flush=True)  # fmt: skip
        extra = ["-m", "not other_python", *extra]
    run(BIN / "python", "-m", "pytest", *extra, env=env)


def docs(args: argparse.Namespace) -> None:
    env = ensure_env()
    run(BIN / "mkdocs", "build", "--strict", "--site-dir", ROOT / "build" / "site", *args.extra, env=env)


def bench(args: argparse.Namespace) -> None:
    env = ensure_env()
    run(BIN / "python", ROOT / "tests" / "benchmark.py", *args.extra, env=env)


def params(args: argparse.Namespace) -> None:
    """Recompose the template's params.yaml and settings.yaml from its conf/, as DVC would, with and
    without the prompt track."""
    import difflib
    import tempfile

    env = ensure_env()
    version = json.loads((ROOT / "cookiecutter.json").read_text(encoding="utf-8"))["_toolkit_version"]
    names = ("params.yaml", "settings.yaml")
    composed: dict[str, dict[str, list[str]]] = {name: {} for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        for llm in ("no", "yes"):
            answers = (f"include_llm={llm}", "init_git=no", "project_name=Pkgname Placeholder")
            run(BIN / "cookiecutter", "--no-input", "-o", Path(tmp) / llm, ROOT, *answers, env=env)
            project = Path(tmp) / llm / "pkgname-placeholder"
            run(BIN / "lockstep", "params", cwd=project, env=env)
            for name in names:
                composed[name][llm] = (project / name).read_text(encoding="utf-8").splitlines()
    for name in names:
        without, with_llm = composed[name]["no"], composed[name]["yes"]
        lines = []
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=without, b=with_llm, autojunk=False).get_opcodes():
            if tag == "equal":
                lines += without[i1:i2]
            elif tag == "insert":  # what only the prompt track has
                lines += ['{%- if cookiecutter.include_llm == "yes" %}', *with_llm[j1:j2], "{%- endif %}"]
            else:
                sys.exit(f"error: params: the prompt track changes lines {i1 + 1}-{i2} of {name}; merge them by hand")
        text = "\n".join(lines) + "\n"
        text = text.replace("pkgname_placeholder", "{{ cookiecutter.package_name }}")
        text = text.replace(f"toolkit_version: {version}", "toolkit_version: {{ cookiecutter._toolkit_version }}")
        target = ROOT / "{{cookiecutter.project_slug}}" / name
        target.write_text(text, encoding="utf-8")
        print(f"params: wrote {target.relative_to(ROOT)}")


VEGA = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}  # vega-embed 6 runs Vega 5 and Vega-Lite 5
VEGA_PAGE = ROOT / "src" / "lockstep" / "assets" / "plots.html"


def vendor_vega(args: argparse.Namespace) -> None:
    """Write src/lockstep/assets/plots.html: DVC's plots page with Vega's scripts inline, so it renders offline."""
    import tarfile
    import tempfile

    scripts, licences = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version in VEGA.items():
            run("npm", "pack", "--silent", f"{name}@{version}", cwd=Path(tmp))
            with tarfile.open(Path(tmp) / f"{name}-{version}.tgz") as archive:
                archive.extractall(Path(tmp) / name, filter="data")
            package = Path(tmp) / name / "package"
            script = (package / "build" / f"{name}.min.js").read_text(encoding="utf-8")
            if "</script" in script.lower() or "{plot_divs}" in script:
                sys.exit(f"error: vendor-vega: {name}.min.js cannot be inlined as it is")
            scripts.append(f'<script type="text/javascript">/* {name} {version} (BSD-3-Clause) */\n{script}\n</script>')
            licence = package / "LICENSE"
            licences.append((name, version, licence.read_text(encoding="utf-8") if licence.exists() else None))
    # vega's npm package ships no LICENSE file; its repository's is the same BSD-3-Clause text, same holder
    fallback = next(text for _, _, text in licences if text)
    notices = [f"{name} {version}\n\n{text or fallback}" for name, version, text in licences]
    page = """<!DOCTYPE html>
<!-- DVC's plots page (dvc plots show/diff --html-template) with Vega, Vega-Lite and Vega-Embed inline:
     it renders with no network. Generated by `python3 dev.py vendor-vega`; licences in vega-LICENSES.txt. -->
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    VEGA_SCRIPTS
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
""".replace("VEGA_SCRIPTS", "\n    ".join(scripts))
    VEGA_PAGE.parent.mkdir(parents=True, exist_ok=True)
    VEGA_PAGE.write_text(page, encoding="utf-8")
    (VEGA_PAGE.parent / "vega-LICENSES.txt").write_text("\n\n".join(notices), encoding="utf-8")
    print(f"vendor-vega: wrote {VEGA_PAGE.relative_to(ROOT)} ({VEGA_PAGE.stat().st_size // 1024} KiB)")


def platform(args: argparse.Namespace) -> None:
    """Start or stop the team platform on loopback (lockstep platform), its state in build/platform."""
    env = ensure_env()
    run(BIN / "lockstep", "platform", *args.extra, "--dir", ROOT / "build" / "platform", env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 dev.py", description=__doc__.splitlines()[0])
    tasks = parser.add_subparsers(dest="task", required=True)
    for func in (demo, test, setup_test_deps, docs, bench, params, vendor_vega, platform):
        name = func.__name__.replace("_", "-")
        sub = tasks.add_parser(name, help=func.__doc__ or name, epilog="Other arguments go to the underlying tool.")
        if name == "demo":
            sub.add_argument("--output", default=DEMO_DIR, help="new or empty directory to bake into")
        if name == "test":
            sub.add_argument("--random", action="store_true", help="run the tests in a random order (seed printed)")
        sub.set_defaults(func=func)
    # Arguments dev.py does not know are passed on (pytest's -k, cookiecutter's key=value...).
    args, args.extra = parser.parse_known_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
