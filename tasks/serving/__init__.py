"""Serving pushed models: the registry, loading and batching, the TF-Serving REST API and the web page."""
