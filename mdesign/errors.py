"""The error raised for bad user input.

The library raises :class:`InputError` (a :class:`ValueError`) for anything a user can fix: a
missing file, an array of the wrong shape, a parameter out of range. The CLI turns it into one
``error: ...`` line on stderr and exit code 2; any other exception is an internal failure.
"""


class InputError(ValueError):
    """Bad input or usage; the message names the file or option and what is wrong."""
