# The promotion decision: central rules (package lockstep.central, shipped with the toolkit) and
# the project's own (package lockstep.project, in the project's policies/) are collected
# together. A project can add deny and review reasons; it cannot remove central ones, nor
# redefine this decision (the toolkit loads project modules only under lockstep.project).
#
#   deny    any reason at all          -> "deny": never promoted, approval or not
#   review  reasons, and no approval   -> "pending_review": a human decides (lockstep approve)
#   otherwise                          -> "allow"
package lockstep

deny_reasons := {msg | some msg in data.lockstep.central.deny} | {msg | some msg in data.lockstep.project.deny}

review_reasons := {msg | some msg in data.lockstep.central.review} | {msg | some msg in data.lockstep.project.review}

# An approval is a registry tag pair on the version: approval.by (who) and approval.at (when,
# RFC 3339 with a +00:00 offset). One without a readable time does not count.
approved if {
	input.approval.by != ""
	time.parse_rfc3339_ns(input.approval.at)
}

outcome := "deny" if {
	count(deny_reasons) > 0
} else := "pending_review" if {
	count(review_reasons) > 0
	not approved
} else := "allow"

decision := {
	"decision": outcome,
	"deny": sort(deny_reasons),
	"review": sort(review_reasons),
	"approved": approved_flag,
}

default approved_flag := false

approved_flag := true if approved
