"""Monitoring: the service's inference log, drift and quality checks per window, and the
retraining request when enough windows breach."""
