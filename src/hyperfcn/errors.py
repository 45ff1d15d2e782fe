"""Error types that decide the exit code: user mistakes (2) versus our own bugs (1)."""


class UserError(Exception):
    """Bad usage or bad input: the CLI prints the one-line message and exits 2."""


class SpaceError(UserError):
    """A search-space file or a config that breaks a rule; the message names the key."""


class DataError(UserError):
    """A dataset folder that cannot be used; the message names the path and the fix."""


class TrialError(RuntimeError):
    """A trial that cannot go on (loss turned NaN, ...): it fails, the search goes on."""


class SearchFailed(RuntimeError):
    """Every trial failed: exit 1 with the most common reason, not a traceback."""
