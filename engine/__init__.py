"""ticketflow: an event-driven workflow and rules engine for customer support on Temporal."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
__version__ = "0.1.0"
