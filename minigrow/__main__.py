"""``python -m minigrow``: the command line (:mod:`minigrow.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
