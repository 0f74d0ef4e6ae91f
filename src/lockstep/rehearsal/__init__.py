"""Rehearsals: the service on loopback driven by synthetic traffic, judged as production would be.

    lockstep canary-rehearsal   # the canary controller to its decision (lockstep.rehearsal.canary)
    lockstep monitor-rehearsal  # windows of test-split traffic judged by the monitor (lockstep.rehearsal.monitor)

The only package that drives both serving and monitoring: lockstep.serve and lockstep.monitor
never import each other, and nothing imports this package but its commands.
"""
