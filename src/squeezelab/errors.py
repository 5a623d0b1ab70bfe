"""One error hierarchy: every problem a user can fix is a :class:`SqueezelabError`.

Library code raises the kind that fits, naming the file, field or value; the command line
prints its message on one line and exits with status 2 (``--debug`` shows the traceback).
Each kind also keeps the built-in base it had (``ValueError`` or ``RuntimeError``), so code
that caught those still works.
"""


class SqueezelabError(Exception):
    """A problem with the user's input or files, stated in the message."""


class ConfigError(SqueezelabError, ValueError):
    """A configuration field is unknown or holds a bad value."""
