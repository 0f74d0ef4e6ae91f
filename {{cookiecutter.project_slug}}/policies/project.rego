# This project's own promotion rules, on top of the central ones the Lockstep toolkit ships
# (which a project cannot remove). `make policy` decides, `make policy-test` runs the tests.
# Add a reason to `deny` (never promoted) or to `review` (a person decides: lockstep approve).
# input: see the toolkit's lockstep/policies/central.rego; settings of your own go under
# `project:` in conf/policy/default.yaml and arrive as input.policy.project.
package lockstep.project

# Only what Git knows is promoted: a version registered outside a repository has no commit.
deny contains msg if {
	input.lineage.git_commit == "unknown"
	msg := sprintf("model version %v was registered outside a Git repository (git_commit unknown)", [input.model.version])
}

# A model much larger than the one it replaces may not fit where it is served: a person decides.
review contains msg if {
	limit := input.policy.project.review_model_size_bytes
	some name, value in input.metrics
	endswith(name, ":model_size_bytes")
	value.new > limit
	msg := sprintf("%s %v bytes > %v: check it fits where it is served", [name, value.new, limit])
}
