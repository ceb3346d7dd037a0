"""The ``sklearn-leuko`` command line (also ``python -m sklearn_leuko``).

Three subcommands, each a few lines over the public API:

- ``cv`` (:mod:`._cv`): :func:`~sklearn_leuko.evaluation.run_protocol` on the
  chosen stages, then the report of :mod:`sklearn_leuko.report`;
- ``train`` (:mod:`._train`): :func:`~sklearn_leuko.evaluation.fit_stage`,
  then :func:`~sklearn_leuko.save_model`;
- ``predict`` (:mod:`._predict`): :func:`~sklearn_leuko.load_model`, then
  ``predict_proba`` over a folder of images.

The parser (:mod:`._parser`) imports only :mod:`argparse` and the stage
registry, so ``--help`` is instant.
"""

import os
import sys
import warnings

from ._console import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    CLIError,
    Console,
    UsageError,
    one_line,
    show_warning,
)
from ._parser import build_parser

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CLIError",
    "build_parser",
    "main",
    "run",
]


def _command(name):
    if name == "cv":
        from ._cv import cmd_cv

        return cmd_cv
    if name == "train":
        from ._train import cmd_train

        return cmd_train
    from ._predict import cmd_predict

    return cmd_predict


def run():
    """Entry point of the ``sklearn-leuko`` program: :func:`main` in a process of its own.

    The process keeps freed memory for reuse
    (:func:`~sklearn_leuko.utils.reuse_freed_memory`), which a library must
    not decide for the programs that import it but a program may.

    Returns
    -------
    exit_code : int
    """
    from ..utils import reuse_freed_memory

    reuse_freed_memory()
    return main()


def main(argv=None):
    """Run the ``sklearn-leuko`` command line.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``None`` uses ``sys.argv[1:]``.

    Returns
    -------
    exit_code : int
        0 success, 1 data or model error, 2 usage error, 130 interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    console = Console(args.quiet)
    old_showwarning = warnings.showwarning
    warnings.showwarning = show_warning
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("once")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            return _command(args.command)(args, console)
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except KeyboardInterrupt:
        # Training defers Ctrl-C to the next batch boundary
        # (sklearn_leuko._classifier._interrupt), so it is never lost there.
        hint = ""
        if getattr(args, "checkpoint_dir", None):
            hint = "; run the same command with --resume to continue"
        print(f"{PROG}: interrupted{hint}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print(
            f"{PROG}: error: {exc} (see '{PROG} {args.command} --help')",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_USAGE
    except Exception as exc:
        if args.debug:
            raise
        prefix = (
            ""
            if isinstance(exc, (CLIError, ValueError, TypeError, OSError))
            else (f"unexpected {type(exc).__name__}: ")
        )
        print(
            f"{PROG}: error: {prefix}{one_line(exc)} (add --debug for the traceback)",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_ERROR
    finally:
        warnings.showwarning = old_showwarning
