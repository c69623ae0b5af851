"""Errors that mean the user's input or settings are wrong (never retried)."""


class HotdogInputError(ValueError):
    """Bad input or configuration; the message names the file, field or option to fix."""
