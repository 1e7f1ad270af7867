"""The one base class of every error a user can fix: bad files, names, checkpoints, datasets, requests.

Command lines print these as `error: ...`; the app shows them as a message. Anything else is a bug.
"""


class UserFacingError(ValueError):
    """A problem the user can fix; the message names it and says what to do."""


class CheckpointError(UserFacingError):
    """Weights that cannot be used here (missing, corrupt, or made for another model); the message says which."""


class DatasetError(UserFacingError):
    """A dataset that cannot be used (missing, malformed, or not matching the detector); the message says where."""
