"""Kubernetes names: checked before an untrusted value touches a path, a name or a match (pure).

Used by ``runbook serve`` on alert labels (``release``, ``namespace``), and by the ids derived
from them: an incident id or a Job name must be unique for every valid name and stay within
Kubernetes' limits, so a readable prefix is cut and a hash of the whole value is appended
(cutting alone would give two long names one folder).
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "LABEL_MAX",
    "RELEASE_MAX",
    "bounded_name",
    "label_name_problem",
    "namespace_problem",
    "object_name_problem",
    "release_problem",
    "short_hash",
]

RELEASE_MAX = 53  # Helm's limit for release names
LABEL_MAX = 63  # a DNS-1123 label, a label value
OBJECT_MAX = 253  # a DNS-1123 subdomain: most object names (Deployments, Secrets, ...)
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SHOWN = 60  # characters of a bad value quoted in a problem


def _quoted(value: str) -> str:
    # ascii(): a problem names the value without letting it forge lines or escapes.
    shown = value if len(value) <= _SHOWN else value[:_SHOWN] + "..."
    return ascii(shown)


def _problem(value: str, pattern: re.Pattern[str], limit: int, what: str, alphabet: str) -> str:
    if pattern.fullmatch(value) and len(value) <= limit:
        return ""
    return f"not {what} ({alphabet}, at most {limit} characters): {_quoted(value)}"


_LABEL_ALPHABET = "lowercase letters, digits and '-'"


def release_problem(value: str) -> str:
    """Why ``value`` is not a Helm release name ("" when it is): a DNS-1123 label, <= 53."""
    return _problem(value, _DNS_LABEL, RELEASE_MAX, "a Helm release name", _LABEL_ALPHABET)


def namespace_problem(value: str) -> str:
    """Why ``value`` is not a namespace name ("" when it is): a DNS-1123 label, <= 63."""
    return _problem(value, _DNS_LABEL, LABEL_MAX, "a namespace name", _LABEL_ALPHABET)


def label_name_problem(value: str) -> str:
    """Why ``value`` is not a DNS-1123 label ("" when it is): Jobs' namespaces, claims, ..."""
    return _problem(value, _DNS_LABEL, LABEL_MAX, "a Kubernetes name", _LABEL_ALPHABET)


def object_name_problem(value: str) -> str:
    """Why ``value`` is not an object name ("" when it is): a DNS-1123 subdomain, <= 253."""
    alphabet = "lowercase letters, digits, '-' and '.'"
    return _problem(value, _DNS_SUBDOMAIN, OBJECT_MAX, "a Kubernetes object name", alphabet)


def short_hash(*parts: str, length: int = 10) -> str:
    """Hex digits of SHA-256 over ``parts`` (unambiguous: each part is length-prefixed)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        digest.update(f"{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()[:length]


def bounded_name(prefix: str, readable: str, *, unique: str, max_len: int) -> str:
    """``<prefix><readable, cut>-<hash of unique>``, at most ``max_len`` characters.

    ``readable`` should already be in the target alphabet; it is cut (never the hash) and
    trailing separators dropped, so the result stays valid and two values that share a long
    prefix still differ.
    """
    digest = short_hash(unique)
    room = max_len - len(prefix) - len(digest) - 1
    if room < 1:
        raise ValueError(f"max_len {max_len} leaves no room after {prefix!r}")
    cut = readable[:room].rstrip("-._")
    return f"{prefix}{cut}-{digest}" if cut else f"{prefix.rstrip('-._')}-{digest}"
