"""Serving what passed: the deploy lock, the service, staging and the canary controller.

lockstep deploy lock     # resolve champion / challenger to numeric versions in deploy.lock.json
lockstep serve           # the service of exactly those versions (make serve)
lockstep staging         # the golden sets against the live service; result tagged on the versions
lockstep canary          # step the canary's weight, judge each window, promote or roll back
"""
