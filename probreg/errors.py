"""Errors that probreg reports to people as one line, without a traceback."""

from __future__ import annotations


class ProbregError(Exception):
    """A problem the user can fix; the CLI prints ``Error: <message>`` and exits non-zero.

    ``exit_code`` 2 marks bad input (as click does for usage errors); 1 marks a failure while
    working (training diverged, a file could not be written).
    """

    exit_code = 2


class UsageError(ProbregError):
    """Bad input: an unknown plugin, a malformed spec, an invalid value, a bad file."""


class PluginError(ProbregError):
    """A plugin is missing, broken or in conflict with another."""


class TrainingError(ProbregError):
    """Training could not produce a usable model (for example, the loss became NaN)."""

    exit_code = 1


#: How numpy, TensorFlow, JAX and CUDA word a failed allocation (compared in lower case).
_OUT_OF_MEMORY = (
    "oom when allocating",
    "resource_exhausted",
    "out of memory",
    "unable to allocate",
)


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from, is a failed memory allocation:
    TensorFlow and JAX raise their own exception types, so their wording is matched too."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error).lower()
        if isinstance(error, MemoryError) or any(words in text for words in _OUT_OF_MEMORY):
            return True
        error = error.__cause__ or error.__context__
    return False


def shorten(value: object, limit: int = 120) -> str:
    """``value`` as one line of at most ``limit`` characters, for error messages.

    Strings from files and plugins can be huge or span lines; no error line should.
    """
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown(value: object, limit: int = 60) -> str:
    """``value``'s repr on one short line: how an error quotes an argument it refuses."""
    return shorten(repr(value), limit)
