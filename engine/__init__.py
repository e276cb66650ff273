"""ticketflow: an event-driven workflow and rules engine for customer support on Temporal.

Kept free of side effects: workflow code imports this package inside Temporal's sandbox.
"""

__version__ = "0.1.0"
