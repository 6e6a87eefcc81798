"""The one exception type that reaches the user as a single line instead of a traceback."""


class SegexpError(Exception):
    """A problem the user can fix: the message names the file or config key and the fix."""
