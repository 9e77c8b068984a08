"""Errors that reach the user as a message, never as a traceback."""


class RcatuneError(Exception):
    """Base class: the message says what was wrong, where, and what to do."""


class ConfigError(RcatuneError):
    """A configuration value that cannot work."""


class DataError(RcatuneError):
    """Input data that cannot be used (empty source, too many rejects, bad header...)."""


class Interrupted(RcatuneError):
    """The run was stopped from outside (Ctrl-C, SIGTERM): the summary says so; the same command continues."""


class TrialPruned(RcatuneError):
    """A sweep's pruner stopped this trial after an intermediate evaluation: the run ends as `pruned`, which is
    the trial's result, not a failure."""
