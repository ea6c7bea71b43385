"""User-facing errors.

Every problem a user can cause (a bad override, a wrong type, a missing or corrupt data file)
is raised as a subclass of :class:`NnexpError`. The command line prints these as one line,
``nnexp: error: <message>``, and exits non-zero; anything else is a bug and keeps its traceback.

This module imports the standard library only, so any layer may use it.
"""


class NnexpError(Exception):
    """Base class: the message alone must tell the user what is wrong and how to fix it."""


class ConfigError(NnexpError, ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


class DataError(NnexpError):
    """A data set is unknown, missing, corrupt or cannot be fetched."""


class TrackingError(NnexpError):
    """The MLflow store cannot be opened or written."""
