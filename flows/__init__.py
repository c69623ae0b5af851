"""Prefect flows: thin compositions of the units of work in ``tasks``."""
