"""Does a list of RBAC rules grant a permission? Kubernetes' own matching, for preflight.

Preflight asks the API server for the caller's rules in the namespace once
(SelfSubjectRulesReview) and settles here every permission those rules grant; only the rest
is asked one by one (SelfSubjectAccessReview, the authoritative answer). The matching follows
RBAC: ``*`` matches any verb, group or resource (subresources included), ``*/<sub>`` matches
that subresource of any resource, and a rule limited to ``resourceNames`` never grants a
request that names no object, which is how preflight asks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Rule", "granted"]

_ALL = "*"


@dataclass(frozen=True)
class Rule:
    """One resource rule as a rules review returns it."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    resource_names: tuple[str, ...] = ()


def _resource_matches(rule_resources: Iterable[str], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for candidate in rule_resources:
        if candidate in (_ALL, combined):
            return True
        if subresource and candidate == f"*/{subresource}":
            return True
    return False


def granted(
    rules: Sequence[Rule], *, verb: str, group: str, resource: str, subresource: str = ""
) -> bool:
    """True when one of ``rules`` allows ``verb`` on ``resource[/subresource]`` in API
    ``group`` without naming an object. Pure; raises nothing."""
    return any(
        not rule.resource_names
        and (_ALL in rule.verbs or verb in rule.verbs)
        and (_ALL in rule.api_groups or group in rule.api_groups)
        and _resource_matches(rule.resources, resource, subresource)
        for rule in rules
    )
