# Tests of policies/project.rego: `make policy-test` (lockstep policy test), or `opa test policies`
# with the toolkit's bundle. With regopy, set input one key at a time with literal values, one
# line per `with` chain: `with input as {...}` and values taken from other rules crash it.
package lockstep.project_test

test_a_version_without_a_commit_is_denied if {
	reasons := data.lockstep.project.deny with input.lineage as {"git_commit": "unknown"} with input.model as {"version": 3}
	reasons == {"model version 3 was registered outside a Git repository (git_commit unknown)"}
}

test_a_committed_version_is_not_denied if {
	count(data.lockstep.project.deny) == 0 with input.lineage as {"git_commit": "0123abcd"} with input.model as {"version": 3}
}

test_a_much_larger_model_goes_to_review if {
	reasons := data.lockstep.project.review with input.metrics as {"reports/metrics.json:model_size_bytes": {"old": 1000, "new": 30000000}} with input.policy as {"project": {"review_model_size_bytes": 20000000}}
	count(reasons) == 1
}
