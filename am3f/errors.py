"""One exception type for every problem a user can fix (bad path, bad file, bad option).

The CLI prints these as a single ``error: ...`` line and exits non-zero; anything else is a bug
and keeps its traceback.
"""


class AM3FError(Exception):
    """A user-facing error: the message names the offending path or value and what is wrong."""


class DataError(AM3FError):
    """Input data (directory, CSV, image, weights) is missing or malformed."""
