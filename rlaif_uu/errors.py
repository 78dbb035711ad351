"""User-facing errors: one clear line, no traceback (the CLI prints them and exits 2)."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment that they can fix.

    The message must name the file, line or field at fault and say what to do.
    """
