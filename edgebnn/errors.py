"""Errors the CLI reports as one line (no traceback): the message names the thing and the fix."""


class UserError(Exception):
    pass
