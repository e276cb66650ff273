"""`python worker.py [flags]` is `ticketflow worker [flags]`: configure with TEMPORAL_ADDRESS, TICKETFLOW_* env and flags."""

import sys

from engine.cli import entrypoint

if __name__ == "__main__":
    sys.argv[1:1] = ["worker"]
    entrypoint()
