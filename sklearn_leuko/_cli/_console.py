"""Messages, errors and exit codes of the command line."""

import sys

PROG = "sklearn-leuko"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """A problem with the user's data, files or model: one line, exit code 1."""


class UsageError(Exception):
    """An inconsistent combination of options: exit code 2."""


class Console:
    """Results go to stdout; information (silenced by ``--quiet``) to stderr."""

    def __init__(self, quiet):
        self.quiet = quiet

    def info(self, message):
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    @staticmethod
    def out(message=""):
        print(message, flush=True)


def one_line(exc):
    """The message of an exception on one line."""
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


_shown = set()


def show_warning(message, category, filename, lineno, file=None, line=None):
    """``warnings.showwarning`` replacement: one line on stderr, each once.

    ``warnings.simplefilter("once")`` alone does not do it: every
    ``warnings.catch_warnings`` block (scikit-learn and this library use
    them) resets the registry of warnings already shown.
    """
    first = str(message).strip().splitlines()[0] if str(message).strip() else ""
    if (category, first) in _shown:
        return
    _shown.add((category, first))
    print(
        f"{PROG}: warning: {first} ({category.__name__})", file=sys.stderr, flush=True
    )
