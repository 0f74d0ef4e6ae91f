# Tests of the central rules: `lockstep policy test`, or `opa test src/lockstep/policies`.
# regopy 1.5 (what the toolkit evaluates with) has traps that `opa test` does not, so every test
# here follows three habits:
#   - set input one key at a time (`with input.checks as [...]`), never `with input as {...}`;
#   - give `with` literal values, not other rules or variables (regopy crashes or loses them);
#   - keep a rule's `with` chain on one line.
package lockstep.central_test

test_allow_when_everything_passes if {
	d := data.lockstep.decision with input.gate as {"ran": true} with input.checks as [{"metric": "reports/metrics.json:accuracy", "passed": true, "old": 0.95, "new": 0.97, "failures": []}] with input.metrics as {"reports/metrics.json:accuracy": {"old": 0.95, "new": 0.97}, "reports/metrics.json:latency_p95_ms": {"old": 30, "new": 40}} with input.params_diff as {} with input.lineage as {"data_md5": "abc", "git_commit": "0123abcd", "git_dirty": false} with input.data as {"path": "data/raw/a.csv", "dvc_md5": "abc"} with input.approval as {} with input.policy as {"data_sources": ["data/raw/*"], "latency_sla_ms": 50, "max_cost_usd_per_case": 0.01, "approval_required_for": ["gate_rules", "prompt_safety"], "review_on_gate_failure": ["reports/metrics.json:latency_p95_ms"], "safety_metrics": ["pii_leak_rate"]}
	d.decision == "allow"
	count(d.deny) == 0
	count(d.review) == 0
}

test_more_accurate_but_slower_than_the_sla_is_pending_review if {
	d := data.lockstep.decision with input.gate as {"ran": true} with input.checks as [{"metric": "reports/metrics.json:accuracy", "passed": true, "old": 0.95, "new": 0.97, "failures": []}, {"metric": "reports/metrics.json:latency_p95_ms", "passed": false, "old": 30, "new": 62, "failures": ["62 > max 50"]}] with input.metrics as {"reports/metrics.json:accuracy": {"old": 0.95, "new": 0.97}, "reports/metrics.json:latency_p95_ms": {"old": 30, "new": 62}} with input.params_diff as {} with input.lineage as {"data_md5": "abc", "git_commit": "0123abcd", "git_dirty": false} with input.data as {"path": "data/raw/a.csv", "dvc_md5": "abc"} with input.approval as {} with input.policy as {"data_sources": ["data/raw/*"], "latency_sla_ms": 50, "review_on_gate_failure": ["reports/metrics.json:latency_p95_ms"]}
	d.decision == "pending_review"
	count(d.deny) == 0
	"latency_p95_ms 62 > SLA 50: a human must decide" in d.review
	"gate: reports/metrics.json:latency_p95_ms: 62 > max 50: a human must decide" in d.review
}

test_an_approval_settles_a_review if {
	d := data.lockstep.decision with input.gate as {"ran": true} with input.checks as [] with input.metrics as {"reports/metrics.json:latency_p95_ms": {"old": 30, "new": 62}} with input.params_diff as {} with input.lineage as {"data_md5": "abc"} with input.data as {"path": "data/raw/a.csv", "dvc_md5": "abc"} with input.approval as {"by": "Ada", "at": "2026-11-26T00:10:00+00:00"} with input.policy as {"data_sources": ["data/raw/*"], "latency_sla_ms": 50}
	d.decision == "allow"
	d.approved == true
	count(d.review) == 1
}

test_an_approval_without_a_readable_time_does_not_count if {
	d := data.lockstep.decision with input.gate as {"ran": true} with input.checks as [] with input.metrics as {"reports/metrics.json:latency_p95_ms": {"old": 30, "new": 62}} with input.params_diff as {} with input.lineage as {"data_md5": "abc"} with input.data as {"path": "data/raw/a.csv", "dvc_md5": "abc"} with input.approval as {"by": "Ada", "at": "yesterday"} with input.policy as {"data_sources": ["data/raw/*"], "latency_sla_ms": 50}
	d.decision == "pending_review"
	d.approved == false
}

test_a_broken_gate_rule_denies_even_when_approved if {
	d := data.lockstep.decision with input.gate as {"ran": true} with input.checks as [{"metric": "reports/metrics.json:f1", "passed": false, "old": 0.9, "new": 0.8, "failures": ["0.8 < min 0.85"]}] with input.metrics as {} with input.params_diff as {} with input.lineage as {"data_md5": "abc"} with input.data as {"path": "data/raw/a.csv", "dvc_md5": "abc"} with input.approval as {"by": "Ada", "at": "2026-11-26T00:10:00+00:00"} with input.policy as {"data_sources": ["data/raw/*"]}
	d.decision == "deny"
	"gate: reports/metrics.json:f1: 0.8 < min 0.85" in d.deny
	count(d.deny) == 1
}

test_no_gate_results_deny if {
	"no gate results (reports/gate/checks.json): run `lockstep gate` before deciding" in data.lockstep.central.deny with input.gate as {"ran": false}
}

test_data_that_is_not_what_dvc_tracks_is_denied if {
	reasons := data.lockstep.central.deny with input.gate as {"ran": true} with input.checks as [] with input.lineage as {"data_md5": "def"} with input.data as {"path": "data/raw/a.csv", "dvc_md5": "abc"} with input.policy as {"data_sources": ["data/raw/*"]}
	reasons == {"registered data_md5 def differs from the DVC-tracked md5 abc of data/raw/a.csv"}
}

test_untracked_data_from_an_unknown_source_is_denied_twice if {
	reasons := data.lockstep.central.deny with input.gate as {"ran": true} with input.checks as [] with input.lineage as {"data_md5": "abc"} with input.data as {"path": "/home/me/export.csv", "dvc_md5": null} with input.policy as {"data_sources": ["data/raw/*"]}
	count(reasons) == 2
	"data source /home/me/export.csv is not on the allow-list (policy.data_sources: data/raw/*)" in reasons
}

test_cost_above_the_ceiling_is_denied if {
	reasons := data.lockstep.central.deny with input.gate as {"ran": true} with input.checks as [] with input.metrics as {"reports/prompts/triage/metrics.json:cost_usd_per_case": {"old": 0.002, "new": 0.05}} with input.lineage as {"data_md5": "abc"} with input.data as {"path": "data/raw/a.csv", "dvc_md5": "abc"} with input.policy as {"data_sources": ["data/raw/*"], "max_cost_usd_per_case": 0.01}
	reasons == {"reports/prompts/triage/metrics.json:cost_usd_per_case 0.05 > ceiling 0.01 USD per case"}
}

test_changed_gate_rules_need_an_approval if {
	reasons := data.lockstep.central.review with input.params_diff as {"params.yaml": {"gates.rules": {"old": [], "new": []}}} with input.policy as {"approval_required_for": ["gate_rules"]}
	reasons == {"the gate rules changed (params.yaml:gates.rules): needs an approval"}
}

test_changed_prompt_safety_results_need_an_approval if {
	reasons := data.lockstep.central.review with input.metrics as {"reports/prompts/triage/metrics.json:pii_leak_rate": {"old": 0, "new": 0.1}, "reports/prompts/triage/metrics.json:banned_rate": {"old": 0, "new": 0}} with input.policy as {"approval_required_for": ["prompt_safety"], "safety_metrics": ["pii_leak_rate", "banned_rate"]}
	reasons == {"prompt safety result reports/prompts/triage/metrics.json:pii_leak_rate changed (0 -> 0.1): needs an approval"}
}

test_gate_results_of_another_commit_are_denied if {
	reasons := data.lockstep.central.deny with input.gate as {"ran": true, "head": "feedface"} with input.checks as [] with input.lineage as {"data_md5": "abc", "git_commit": "0123abcd", "git_dirty": false} with input.data as {"path": "data/raw/a.csv", "dvc_md5": "abc"} with input.policy as {"data_sources": ["data/raw/*"]}
	reasons == {"the gate's results are for commit feedface, the version was registered from 0123abcd: run the gate on the version's own commit"}
}

test_a_version_registered_from_a_changed_work_tree_is_denied if {
	reasons := data.lockstep.central.deny with input.gate as {"ran": true, "head": "0123abcd"} with input.checks as [] with input.lineage as {"data_md5": "abc", "git_commit": "0123abcd", "git_dirty": true} with input.data as {"path": "data/raw/a.csv", "dvc_md5": "abc"} with input.policy as {"data_sources": ["data/raw/*"]}
	reasons == {"the version was registered from a work tree whose code, conf or data differ from commit 0123abcd: commit, reproduce and register again"}
}

test_the_versions_own_clean_commit_is_not_denied if {
	reasons := data.lockstep.central.deny with input.gate as {"ran": true, "head": "0123abcd"} with input.checks as [] with input.lineage as {"data_md5": "abc", "git_commit": "0123abcd", "git_dirty": false} with input.data as {"path": "data/raw/a.csv", "dvc_md5": "abc"} with input.policy as {"data_sources": ["data/raw/*"]}
	count(reasons) == 0
}

test_a_change_to_the_measuring_waits_for_a_person if {
	reasons := data.lockstep.central.review with input.gate as {"ran": true, "pending": ["`data.seed` 42 → 18"]}
	reasons == {"the change changes how it is measured (`data.seed` 42 → 18): a human must decide"}
}

test_a_golden_set_cut_short_is_denied if {
	reasons := data.lockstep.central.deny with input.gate as {"ran": true, "failures": ["golden set `data/golden/t.jsonl` has 8 cases, the base's 36: fewer cases fail"]} with input.checks as [] with input.lineage as {"data_md5": "abc"} with input.data as {"path": "data/raw/a.csv", "dvc_md5": "abc"} with input.policy as {"data_sources": ["data/raw/*"]}
	reasons == {"gate: golden set `data/golden/t.jsonl` has 8 cases, the base's 36: fewer cases fail"}
}
