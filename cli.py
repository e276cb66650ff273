"""`python cli.py ...` is `ticketflow ...` (the console script), for a checkout without install."""

import sys

from engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
