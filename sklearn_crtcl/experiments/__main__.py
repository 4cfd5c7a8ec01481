"""``python -m sklearn_crtcl.experiments``: see :func:`sklearn_crtcl.experiments.cli.main`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
