"""Twilio's include/exclude rules: the one grammar of SubscribeRules and RecordingRules.

Both are a JSON array of rules (or an object whose only key is ``rules``), each rule a ``type``
(``include`` / ``exclude``) with either ``all: true`` alone or one or more filters, at most 20
rules. They differ in the filters they allow, the kinds a ``kind`` filter may name, and the error
code (53215 for SubscribeRules, 53120 for RecordingRules): a :class:`RuleGrammar` says which.

Invalid: no value, not JSON, a key given twice, an empty list, too many rules, a rule that is not
an object, a key that is not a rule key, a missing or unknown ``type``, ``all`` other than true
(``"true"`` is accepted) or not alone, a rule with neither ``all`` nor a filter, a filter that is
not a non-empty string, a ``kind`` the grammar does not allow. A key whose value is null counts
as absent, so what GET returns can be sent back as it is.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from atrium_shared import errors
from atrium_shared.errors import AtriumError

log = logging.getLogger("atrium.rules")

RULE_TYPES = ("include", "exclude")
MAX_RULES = 20


@dataclass(frozen=True)
class RuleGrammar:
    name: str  # for the log: "subscribe rules", "recording rules"
    filters: tuple[str, ...]
    kinds: tuple[str, ...]
    code: int
    message: str
    max_rules: int = MAX_RULES

    @property
    def keys(self) -> tuple[str, ...]:
        return ("type", "all", *self.filters)

    def invalid(self, detail: str) -> AtriumError:
        """Twilio's error for these rules (``detail`` goes to the log, not to the client)."""
        log.info("%s rejected: %s", self.name, detail)
        return AtriumError(self.code, self.message, 400)


SUBSCRIBE_RULES = RuleGrammar(
    name="subscribe rules",
    filters=("publisher", "track", "kind", "priority"),
    kinds=("audio", "video", "data"),
    code=errors.SUBSCRIBE_RULES_INVALID,
    message="Invalid Subscribe Rule(s)",
)
RECORDING_RULES = RuleGrammar(
    name="recording rules",
    filters=("publisher", "track", "kind"),
    kinds=("audio", "video"),
    code=errors.RECORDING_RULES_INVALID,
    message="Invalid Recording Rule(s)",
)


class _Duplicate(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _Duplicate(", ".join(sorted({k for k in keys if keys.count(k) > 1})))
    return dict(pairs)


def parse_rules(text: str | None, grammar: RuleGrammar) -> list[dict[str, Any]]:
    """The ``Rules`` form value (JSON text), validated: normalized rules (``{"type", "all"}`` or
    ``{"type", <filters>}``)."""
    if text is None or not text.strip():
        raise grammar.invalid("Rules is missing")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _Duplicate as exc:
        raise grammar.invalid(f"key given twice: {exc}") from None
    except (ValueError, RecursionError):
        raise grammar.invalid("Rules is not JSON") from None
    return validate_rules(value, grammar)


def validate_rules(value: Any, grammar: RuleGrammar) -> list[dict[str, Any]]:
    """Rules already decoded from JSON (a room's ``RecordingRules`` parameter, for one)."""
    if isinstance(value, dict):
        if set(value) != {"rules"}:
            raise grammar.invalid("an object must have exactly the key 'rules'")
        value = value["rules"]
    if not isinstance(value, list):
        raise grammar.invalid("Rules must be a list")
    if not value:
        raise grammar.invalid("Rules is empty")
    if len(value) > grammar.max_rules:
        raise grammar.invalid(f"more than {grammar.max_rules} rules")
    return [_validate_rule(raw, grammar) for raw in value]


def _validate_rule(raw: Any, grammar: RuleGrammar) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise grammar.invalid("a rule must be an object")
    present = {k: v for k, v in raw.items() if v is not None}
    unknown = set(present) - set(grammar.keys)
    if unknown:
        raise grammar.invalid(f"unknown keys {sorted(unknown)}")
    kind = present.get("type")
    if kind not in RULE_TYPES:
        raise grammar.invalid("type is missing or invalid")
    filters = {k: present[k] for k in grammar.filters if k in present}
    if "all" in present:
        flag = present["all"]
        if not (flag is True or (isinstance(flag, str) and flag.strip().lower() == "true")):
            raise grammar.invalid("all must be true")
        if filters:
            raise grammar.invalid("all with another filter")
        return {"type": kind, "all": True}
    if not filters:
        raise grammar.invalid("a rule needs all or a filter")
    for name, filter_value in filters.items():
        if not isinstance(filter_value, str) or not filter_value:
            raise grammar.invalid(f"{name} must be a non-empty string")
    if "kind" in filters and filters["kind"] not in grammar.kinds:
        raise grammar.invalid("kind is invalid")
    return {"type": kind, **filters}
