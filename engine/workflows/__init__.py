"""Workflow definitions. Only temporalio, the standard library and the project's pure modules here."""

from engine.workflows.followup import FollowupTaskWorkflow
from engine.workflows.ticket import TicketWorkflow

__all__ = ["FollowupTaskWorkflow", "TicketWorkflow"]
