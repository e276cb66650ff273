"""A fast yes/no check of a rules file against its JSON Schema.

Valid files are the common case (every reload of a worker, every `rules test`), and they need no
error messages: for them a validator that fastjsonschema generates as Python code answers about
ten times faster than jsonschema walking the schema. When it says no, the loader asks jsonschema
for every error with its path, so the messages ops people read are the same either way.

fastjsonschema speaks draft 7; our schema is draft 2020-12 (loader.rules_json_schema). The only
difference that matters for the keywords we use is that draft 7 ignores the siblings of a `$ref`,
so those are moved into an `allOf` beside it before generating the code. Generating costs about a
tenth of a second, once per process (a worker, a CLI run), the first time a file is checked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import fastjsonschema

_DRAFT7 = "http://json-schema.org/draft-07/schema#"
_ANNOTATIONS = frozenset({"description", "title", "$comment", "examples"})
_lock = threading.Lock()
_check: Callable[[Any], Any] | None = None


def as_draft7(schema: Any) -> Any:
    """The same constraints written so draft 7 reads them as 2020-12 does."""
    if isinstance(schema, list):
        return [as_draft7(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: as_draft7(value) for key, value in schema.items()}
    if "$ref" in out and set(out) - _ANNOTATIONS - {"$ref"}:
        ref = out.pop("$ref")
        out["allOf"] = [{"$ref": ref}, *out.get("allOf", [])]
    if "$schema" in out:
        out["$schema"] = _DRAFT7
    return out


def _validator() -> Callable[[Any], Any]:
    global _check
    with _lock:
        if _check is None:
            from .loader import rules_json_schema  # the loader imports this module

            # use_default=False: a check must never fill defaults into the data it checks
            _check = fastjsonschema.compile(as_draft7(rules_json_schema()), use_default=False)
        return _check


def is_valid(data: Any) -> bool:
    """True when `data` (one parsed rules file) satisfies the rules schema."""
    try:
        _validator()(data)
    except fastjsonschema.JsonSchemaException:
        return False
    return True
