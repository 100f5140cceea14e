"""User-facing errors: the CLI prints these as one line and exits non-zero, without a traceback."""


class UserError(ValueError):
    """Bad input from the user (a file, a flag, a recipe). The message names the file and the problem."""
