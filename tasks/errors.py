"""Errors the CLI reports in one line, without a traceback (never retried).

Exit codes: 2 for HotdogInputError, 3 for WorkFolderBusy."""


class HotdogInputError(ValueError):
    """Bad input or configuration; the message names the file, field or option to fix."""


class WorkFolderBusy(RuntimeError):
    """Another process holds the work folder and the caller chose not to wait; names the holder."""
