"""Redaction: keep secrets out of the timeline, the executed notebook, the HTML and the bundle.

Two nets, applied together. Known secret values (parameters flagged secret, credentials found in
the environment) are replaced wherever they appear, including their JSON- and HTML-escaped
spellings, because the executed notebook stores parameters as JSON and the HTML rendering escapes
them. Common secret shapes (bearer tokens, ``password=...``, AWS keys, Slack webhook URLs, JWTs,
kubeconfig credentials, passwords in URLs) are caught by pattern, so a secret nobody declared is
still hidden. Pure: the caller passes the environment; nothing here reads it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MIN_SECRET_LENGTH",
    "PLACEHOLDER",
    "SECRET_NAME",
    "Redactor",
    "secrets_from_environment",
    "secrets_from_kubeconfig",
]

PLACEHOLDER = "[REDACTED]"

# Shorter values would redact ordinary words and numbers all over the evidence; a real credential
# is never this short, and the patterns still catch short ones written as ``password=...``.
MIN_SECRET_LENGTH = 6

# Names of variables and parameters that hold credentials.
SECRET_NAME = re.compile(
    r"(?i)(token|secret|passw(or)?d|pwd|api[_-]?key|access[_-]?key|private[_-]?key|"
    r"credential|webhook|authorization|auth[_-]?token|session[_-]?key|client[_-]?key)"
)

_KEY = (
    r"[A-Za-z0-9_.-]*(?:token|secret|passwd|password|pwd|api[_-]?key|apikey|access[_-]?key|"
    r"secret[_-]?key|private[_-]?key|client-key-data|credentials?)"
)


def _sub_keep_prefix(match: re.Match[str]) -> str:
    return f"{match.group('prefix')}{PLACEHOLDER}{match.group('suffix') or ''}"


@dataclass(frozen=True)
class _Pattern:
    name: str
    regex: re.Pattern[str]
    keep_prefix: bool = False


# Order matters: whole-token shapes first, so a JWT inside ``token=`` is hidden either way.
_PATTERNS: tuple[_Pattern, ...] = (
    _Pattern(
        "pem private key",
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL
        ),
    ),
    _Pattern("slack webhook", re.compile(r"https?://hooks\.slack\.com/services/[A-Za-z0-9/_-]+")),
    _Pattern("slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    _Pattern("github token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}")),
    _Pattern("aws access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    _Pattern("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")),
    _Pattern(
        "bearer token",
        re.compile(r"(?i)(?P<prefix>\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}(?P<suffix>)"),
        keep_prefix=True,
    ),
    _Pattern(
        "password in url",
        re.compile(r"(?P<prefix>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+(?P<suffix>@)"),
        keep_prefix=True,
    ),
    # "password": "x" in JSON (kubectl -o json, helm get values -o json).
    _Pattern(
        "json secret field",
        re.compile(rf'(?i)(?P<prefix>"{_KEY}"\s*:\s*")(?:[^"\\]|\\.)+(?P<suffix>")'),
        keep_prefix=True,
    ),
    # token=abc, PASSWORD = 'x', --password=x, ?access_token=abc&...
    _Pattern(
        "key=value secret",
        re.compile(rf"(?i)(?P<prefix>\b{_KEY}\s*=\s*['\"]?)[^\s&,;'\"]+(?P<suffix>)"),
        keep_prefix=True,
    ),
    # YAML: kubeconfig ``token: ...`` / ``client-key-data: ...``. Only a bare value filling the rest
    # of the line, so a notebook line ``password: str = ""`` (a type hint) is left alone.
    _Pattern(
        "yaml secret field",
        re.compile(
            rf"(?im)(?P<prefix>^[ \t-]*{_KEY}:[ \t]+)['\"]?[^\s'\"#]+['\"]?(?P<suffix>)[ \t]*$"
        ),
        keep_prefix=True,
    ),
)


def secrets_from_environment(env: Mapping[str, str]) -> tuple[str, ...]:
    """Values of environment variables whose names say they hold a credential.

    Part of the "secrets never reach the evidence" rule; pure (the caller passes ``os.environ``).
    Raises nothing.
    """
    return tuple(
        value
        for name, value in env.items()
        if SECRET_NAME.search(name) and len(value.strip()) >= MIN_SECRET_LENGTH
    )


_KUBECONFIG_SECRET_FIELDS = ("token", "client-key-data", "password", "id-token", "refresh-token")


def secrets_from_kubeconfig(config: Mapping[str, Any]) -> tuple[str, ...]:
    """Credentials in a parsed kubeconfig (user tokens, client keys, passwords).

    Pure: the caller loads the YAML. Raises nothing; an odd-shaped config yields fewer values.
    """
    found: list[str] = []
    for entry in config.get("users") or ():
        user = entry.get("user") if isinstance(entry, Mapping) else None
        if not isinstance(user, Mapping):
            continue
        provider = user.get("auth-provider")
        provider_config = provider.get("config") if isinstance(provider, Mapping) else None
        for source in (user, provider_config):
            if isinstance(source, Mapping):
                found += [str(source[k]) for k in _KUBECONFIG_SECRET_FIELDS if source.get(k)]
    return tuple(found)


def _spellings(value: str) -> set[str]:
    """The ways a value shows up in a notebook file, its HTML and the JSON we write."""
    json_inner = json.dumps(value)[1:-1]
    return {
        value,
        json_inner,
        html.escape(value, quote=True),
        html.escape(value, quote=False),
        html.escape(json_inner, quote=True),
        # nbformat source lines of a repr'd string show single-quote escapes
        value.replace("\\", "\\\\").replace("'", "\\'"),
    }


@dataclass(frozen=True)
class Redactor:
    """Replaces known secret values and common secret shapes with ``[REDACTED]``.

    Build it with ``Redactor.build(secrets=..., env=...)``; call it on text
    (``redactor("...")``) or use ``redact_json`` on parsed JSON (notebook metadata, records).
    """

    secrets: tuple[str, ...] = ()
    _known: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(
        cls, *, secrets: Iterable[str | None] = (), env: Mapping[str, str] | None = None
    ) -> Redactor:
        """A redactor for these secret values plus the credentials in ``env`` (if given)."""
        values = {s.strip() for s in secrets if s and len(s.strip()) >= MIN_SECRET_LENGTH}
        if env is not None:
            values.update(v.strip() for v in secrets_from_environment(env))
        spellings: set[str] = set()
        for value in values:
            spellings.update(s for s in _spellings(value) if len(s) >= MIN_SECRET_LENGTH)
        # Longest first, so a secret containing another one is replaced whole.
        known = (
            re.compile("|".join(re.escape(s) for s in sorted(spellings, key=len, reverse=True)))
            if spellings
            else None
        )
        return cls(secrets=tuple(sorted(values)), _known=known)

    def with_secrets(self, *more: str | None) -> Redactor:
        """This redactor plus further secret values (e.g. read from a kubeconfig)."""
        return Redactor.build(secrets=(*self.secrets, *more))

    def __call__(self, text: str) -> str:
        return self.redact(text)

    def redact(self, text: str) -> str:
        """``text`` with every known secret and secret-shaped value replaced."""
        if self._known is not None:
            text = self._known.sub(PLACEHOLDER, text)
        for pattern in _PATTERNS:
            if pattern.keep_prefix:
                text = pattern.regex.sub(_sub_keep_prefix, text)
            else:
                text = pattern.regex.sub(PLACEHOLDER, text)
        return text

    def redact_json(self, value: Any) -> Any:
        """A copy of parsed JSON with every string (keys left alone) redacted.

        A value under a key that names a credential (``"password": 123``) is replaced whatever
        its type, because parameters can be numbers too.
        """
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if (
                    isinstance(key, str)
                    and SECRET_NAME.search(key)
                    and item not in (None, "", False, True)
                    and not isinstance(item, Mapping | list)
                ):
                    out[key] = PLACEHOLDER
                else:
                    out[key] = self.redact_json(item)
            return out
        if isinstance(value, list | tuple):
            return [self.redact_json(item) for item in value]
        return value

    def is_clean(self, text: str) -> bool:
        """True when ``text`` contains no known secret value (used by tests and verify)."""
        return self._known is None or self._known.search(text) is None
