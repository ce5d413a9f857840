"""``python -m subactor``: the command line (see :mod:`subactor._cli`)."""
import sys

from subactor._cli import main

if __name__ == "__main__":
    sys.exit(main())
