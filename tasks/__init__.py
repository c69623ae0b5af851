"""Units of work (Beam jobs, file I/O) as plain functions; flows wrap them in Prefect tasks.

Nothing in this package imports Prefect.
"""
