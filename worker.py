"""`python worker.py` is `ticketflow worker`: configure with TEMPORAL_ADDRESS, TICKETFLOW_* env and flags."""

import sys

from engine.cli import main

if __name__ == "__main__":
    sys.exit(main(["worker", *sys.argv[1:]]))
