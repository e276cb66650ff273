"""The render_message activity: a customer message from the templates of the ticket's pinned
ruleset version (engine.templates does the rendering).

Meant to run as a local activity: it reads only the worker's ruleset registry (in memory, or the
version's JSON on disk or in the store), so it is fast and its result is recorded in the
workflow's history like any activity result, which keeps replays deterministic even after the
templates changed.

A message that cannot be rendered (an unknown kind, values missing, a template failing) fails
with a non-retryable ApplicationError of type "TemplateError": retrying cannot fix it. An
unknown ruleset version raises the registry's own (retryable) error, as evaluate_rules does: a
version can become known when it is published.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine.activities.triage import RulesetRegistry
from engine.models import RenderedMessage, RenderRequest
from engine.templates import RenderError, render

ERROR_TYPE = "TemplateError"


class RenderingActivities:
    def __init__(self, registry: RulesetRegistry) -> None:
        self.registry = registry

    @activity.defn(name="render_message")
    def render_message(self, req: RenderRequest) -> RenderedMessage:
        ruleset = self.registry.get(req.ruleset_version or None)
        try:
            return render(ruleset.templates, req.kind, req.channel, req.language, req.values)
        except RenderError as exc:
            raise ApplicationError(
                f"cannot render the {req.kind} message ({req.channel or 'no channel'}, "
                f"{req.language or 'no language'}) with ruleset {ruleset.version}: {exc}",
                type=ERROR_TYPE, non_retryable=True,
            ) from None
