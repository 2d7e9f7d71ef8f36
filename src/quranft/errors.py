"""The one base class of the errors a user can fix: bad config, bad input data, a missing file."""


class QuranftError(Exception):
    """An error whose message names the file, row or key at fault; the CLI prints it in one line."""
