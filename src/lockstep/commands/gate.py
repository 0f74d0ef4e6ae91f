"""`lockstep gate` and `lockstep report-gitlab`: judge the change against its base with the base's
evaluation and rules, and post each open GitLab merge request's verdict as its note."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lockstep.commands import ExitCode, add_params, load_params

# An inconclusive check warns and does not block: the golden set is too small to decide it
VERDICT_EXIT = {"pass": ExitCode.OK, "inconclusive": ExitCode.OK, "fail": ExitCode.FAILED,
                "pending_review": ExitCode.PENDING_REVIEW}  # fmt: skip


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "compare metrics with a base revision against the rules in conf/gates, measured by the base's evaluation"
    sub = subparsers.add_parser("gate", help=help, description=help)
    add_params(sub)
    sub.add_argument("--base", default="main", help="branch or revision to compare with (default: main)")
    sub.add_argument("--out", type=Path, default=Path("reports/gate"), help="directory for report.md, junit.xml")
    sub.set_defaults(run=run, on_error=ExitCode.NO_COMPARISON)
    help = "post each open merge request's gate verdict and report as its note (scheduled, on the default branch)"
    sub = subparsers.add_parser("report-gitlab", help=help, description=help)
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.command == "report-gitlab":
        from lockstep.publish import post_open_merge_requests

        results = post_open_merge_requests()
        for iid, said in results:
            print(f"report-gitlab: !{iid}: {said}")
        failed = sum(said.startswith("not posted") for _, said in results)
        print(f"report-gitlab: {len(results)} open merge request(s), {failed} failed")
        return ExitCode.FAILED if failed else ExitCode.OK
    from lockstep import integrity
    from lockstep.gate import compare

    checked = integrity.verify()  # the judge's own environment first: nothing edited since the install
    print(f"gate: the environment is as installed ({checked} files checked against their install records)")
    judgement = compare(args.base, load_params(args), args.out)
    checks, context = judgement.checks, judgement.context
    broken = [c for c in checks if not c.passed]
    extra = context.get("evaluation_failures", [])
    for c in broken:
        print(f"gate: FAIL {c.metric}: {'; '.join(c.failures)}", file=sys.stderr)
    for failure in extra:
        print(f"gate: FAIL {failure}", file=sys.stderr)
    unsure = [c for c in checks if c.unsure and c.passed]
    for c in unsure:
        print(f"gate: INCONCLUSIVE {c.metric}: {'; '.join(c.unsure)}", file=sys.stderr)
    for change in context.get("pending", []):
        print(f"gate: REVIEW this change changes how it is measured: {change}", file=sys.stderr)
    # Counted as the report counts them: what broke, out of how many
    summary = {
        "fail": f"failed: {len(broken) + len(extra)} of {len(checks) + len(extra)} checks broken",
        "pending_review": f"pending review: no check of {len(checks)} fails, but the measuring changed",
        "inconclusive": f"inconclusive: {len(unsure)} of {len(checks)} checks cannot be decided (they do not block)",
        "pass": f"passed: {len(checks)} checks",
    }[judgement.verdict]
    by = " (measured by the base's evaluation)" if context.get("evaluated_by") == "base" else ""
    print(f"gate: {summary} against {args.base}{by}; report {args.out / 'report.md'}")
    return VERDICT_EXIT[judgement.verdict]
