"""SubscribeRules as the REST resource returns them: every field present, unset ones null."""

from __future__ import annotations

from typing import Any

RULE_FIELDS = ("type", "all", "publisher", "track", "kind", "priority")


def as_returned(**rule: Any) -> dict[str, Any]:
    """``rule`` with the fields it does not set as ``None``, the way it is read back."""
    return dict.fromkeys(RULE_FIELDS) | rule
