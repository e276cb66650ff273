"""`python -m engine ...` is `ticketflow ...`."""

from engine.cli import entrypoint

entrypoint()
