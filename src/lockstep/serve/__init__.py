"""Serving what passed: the deploy lock resolved, the service, staging and the canary controller.

lockstep deploy lock     # resolve champion / challenger to numeric versions (resolve.py)
lockstep serve           # the service of exactly those versions (service.py, http.py, server.py)
lockstep staging         # the golden sets against the live service; result tagged on the versions
lockstep canary          # step the canary's weight, judge each window, promote or roll back

Never imports lockstep.monitor: what both use (the lock's type, the inference log, the quality
checks, the metric names) sits in the toolkit's bottom layer.
"""
