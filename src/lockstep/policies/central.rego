# Central promotion rules: every Lockstep project gets these, whatever its own policies/ say.
# Messages that include the result of concat() are built with concat(), not sprintf(): regopy 1.5
# quotes such a string inside sprintf's output.
# input (built by `lockstep policy eval` and `lockstep promote`):
#   model      {name, version}
#   gate       {ran, base, head, verdict, pending, failures}: whether reports/gate/checks.json was found,
#              the commits it compared, its verdict, what of the measuring the change changed, and
#              what the base's evaluation refused (a golden set cut short)
#   checks     [{metric, rule, passed, old, new, failures}]: the gate's checks
#   metrics    {"<file>:<key>": {old, new}}: every metric the gate compared
#   params_diff {"<file>": {"<key>": {old, new}}}: `dvc params diff` against the base
#   lineage    {data_md5, git_commit, git_dirty, params_hash, model_md5}: the version's tags
#   data       {path, dvc_md5}: the data file and the md5 DVC tracks for it (null if untracked)
#   approval   {by, at, reason}: the version's approval tags ({} when none)
#   policy     conf/policy: data_sources, latency_sla_ms, max_cost_usd_per_case, ...
package lockstep.central

# --- The gate: the metric judge. Its broken checks deny, except those a human may trade off. ---

deny contains msg if {
	not input.gate.ran
	msg := "no gate results (reports/gate/checks.json): run `lockstep gate` before deciding"
}

deny contains msg if {
	some check in input.checks
	not check.passed
	not for_review(check.metric)
	msg := concat("", ["gate: ", check.metric, ": ", concat("; ", check.failures)])
}

review contains msg if {
	some check in input.checks
	not check.passed
	for_review(check.metric)
	msg := concat("", ["gate: ", check.metric, ": ", concat("; ", check.failures), ": a human must decide"])
}

for_review(metric) if {
	some pattern in input.policy.review_on_gate_failure
	glob.match(pattern, [], metric)
}

deny contains msg if {
	some failure in input.gate.failures
	msg := concat("", ["gate: ", failure])
}

# --- A change to how models are measured: the new procedure is a person's call. ---

review contains msg if {
	some change in input.gate.pending
	msg := concat("", ["the change changes how it is measured (", change, "): a human must decide"])
}

# --- The gate's results are the version's own: same commit, nothing uncommitted. ---

deny contains msg if {
	input.gate.ran
	input.gate.head != input.lineage.git_commit
	msg := concat("", ["the gate's results are for commit ", input.gate.head, ", the version was registered from ", input.lineage.git_commit, ": run the gate on the version's own commit"])
}

deny contains msg if {
	input.lineage.git_dirty == true
	msg := concat("", ["the version was registered from a work tree whose code, conf or data differ from commit ", input.lineage.git_commit, ": commit, reproduce and register again"])
}

# --- Latency SLA: a slower model may still be worth it; a person decides. ---

review contains msg if {
	sla := input.policy.latency_sla_ms
	sla != null
	some name, value in input.metrics
	endswith(name, ":latency_p95_ms")
	value.new > sla
	msg := sprintf("%s %v > SLA %v: a human must decide", [short(name), value.new, sla])
}

# --- Cost ceiling: never promoted above it. ---

deny contains msg if {
	ceiling := input.policy.max_cost_usd_per_case
	ceiling != null
	some name, value in input.metrics
	endswith(name, ":cost_usd_per_case")
	value.new > ceiling
	msg := sprintf("%s %v > ceiling %v USD per case", [name, value.new, ceiling])
}

# --- Data provenance: the registered data is the DVC-tracked data, from an allowed source. ---

deny contains msg if {
	input.data.dvc_md5 == null
	msg := sprintf("data %s is not tracked by DVC (no .dvc file or dvc.lock entry): its provenance cannot be checked", [input.data.path])
}

deny contains msg if {
	input.data.dvc_md5 != null
	input.lineage.data_md5 != input.data.dvc_md5
	msg := sprintf("registered data_md5 %s differs from the DVC-tracked md5 %s of %s", [input.lineage.data_md5, input.data.dvc_md5, input.data.path])
}

deny contains msg if {
	not allowed_source(input.data.path)
	sources := concat(", ", input.policy.data_sources)
	msg := concat("", ["data source ", input.data.path, " is not on the allow-list (policy.data_sources: ", sources, ")"])
}

allowed_source(path) if {
	some pattern in input.policy.data_sources
	glob.match(pattern, ["/"], path)
}

# --- Changes that need a named person's approval (lockstep approve). ---

review contains msg if {
	"gate_rules" in input.policy.approval_required_for
	some file, keys in input.params_diff
	some key, _ in keys
	startswith(key, "gates")
	msg := sprintf("the gate rules changed (%s:%s): needs an approval", [file, key])
}

review contains msg if {
	"prompt_safety" in input.policy.approval_required_for
	some name, value in input.metrics
	some safety in input.policy.safety_metrics
	endswith(name, sprintf(":%s", [safety]))
	value.old != value.new
	msg := sprintf("prompt safety result %s changed (%v -> %v): needs an approval", [name, value.old, value.new])
}

short(name) := key if {
	parts := split(name, ":")
	key := parts[count(parts) - 1]
}
