"""`lockstep samples restore`: put back missing bundled sample data (md5-checked)."""

from __future__ import annotations

import argparse

from lockstep.commands import ExitCode, error


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "put back missing bundled sample data (md5-checked)"
    sub = subparsers.add_parser("samples", help=help, description=help)
    sub.add_argument("action", choices=["restore"], help="restore: copy each missing bundled sample into place")
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lockstep.samples import restore

    restored, missing = restore()
    for target, md5 in restored:
        print(f"samples: restored {target} (the bundled sample, md5 {md5})")
    for target in missing:
        error(
            f"{target}: not in the workspace, and not a bundled sample; `dvc pull` it from a remote"
            " this machine can read (CI: an s3, gcs or azure remote with read credentials)"
        )
    return ExitCode.FAILED if missing else ExitCode.OK
