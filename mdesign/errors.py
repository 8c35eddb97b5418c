"""The error raised for bad user input.

The library raises :class:`InputError` (a :class:`ValueError`) for anything a user can fix: a
missing file, an array of the wrong shape, a parameter out of range. Its message names the
Python parameter at fault (``param``), never a command-line flag: the CLI maps the parameter to
its flag (:meth:`InputError.render`), turns the error into one ``error: ...`` line on stderr and
exit code 2; any other exception is an internal failure.
"""

from __future__ import annotations

from collections.abc import Mapping


class InputError(ValueError):
    """Bad input or usage; the message names the file or parameter and what is wrong.

    Parameters
    ----------
    message : str
        What is wrong.
    param : str, optional
        The Python parameter at fault (``"size"``, ``"n"``, ``"seed"``); ``str(error)`` is then
        ``"param: message"``.
    """

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.message = message
        self.param = param
        super().__init__(f"{param}: {message}" if param else message)

    def __reduce__(self):
        return (_rebuild, (type(self), self.message, self.param))

    def render(self, names: Mapping[str, str]) -> str:
        """The message with ``param`` replaced by ``names[param]`` (e.g. a CLI flag)."""
        if self.param is None:
            return str(self)
        return f"{names.get(self.param, self.param)}: {self.message}"


def _rebuild(cls, message, param):
    return cls(message, param=param)
