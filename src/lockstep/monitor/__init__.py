"""Monitoring: drift and quality checks per window of the service's inference log
(lockstep.inference_log), and the retraining request when enough windows breach. Never imports
lockstep.serve."""
