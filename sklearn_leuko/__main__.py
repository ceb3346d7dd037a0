"""``python -m sklearn_leuko``: the ``sklearn-leuko`` command line."""

import sys

from ._cli import run

if __name__ == "__main__":
    sys.exit(run())
