"""Redaction: keep secrets out of every file of the evidence bundle.

One redactor, three nets, applied to every value that reaches the evidence:

- Known secret values (parameters flagged secret, credentials found in the environment or a
  kubeconfig) are replaced wherever they appear, including their JSON- and HTML-escaped
  spellings, because the executed notebook stores parameters as JSON and the HTML escapes them.
- Token formats: the regex detectors of detect-secrets (a maintained secret-detection library:
  AWS, GitHub, GitLab, Slack, Stripe, SendGrid, Twilio, npm, PyPI, ...), used through its plugin
  API, plus our own rules for shapes it lacks or only half-covers (a password inside any URL in
  any case, ``Authorization:`` headers, ``password='a b'``, dict reprs, PEM blocks and their
  base64, JWT signatures, ``github_pat_``, longer Stripe keys, ...).
- Structure: ``redact_value`` walks dicts, lists and tuples; a key that names a credential
  (``password``, ``token``, ``client-key-data``, ...) hides its whole value, numbers included;
  a Kubernetes ``Secret``'s ``data``/``stringData`` and a credential-named env entry's ``value``
  are hidden whatever their text looks like.

Paths, hostnames and ordinary words are not secrets: ``PWD``/``OLDPWD`` and variables that name
files or folders are never taken as credentials. Pure: the caller passes the environment.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

__all__ = [
    "MIN_SECRET_LENGTH",
    "PLACEHOLDER",
    "SECRET_NAME",
    "Redactor",
    "detector_names",
    "is_credential_name",
    "redact_manifest",
    "redact_structure",
    "redact_text",
    "redact_value",
    "secrets_from_environment",
    "secrets_from_kubeconfig",
]

PLACEHOLDER = "[REDACTED]"

# Shorter values would redact ordinary words and numbers all over the evidence; a real credential
# is never this short, and the patterns still catch short ones written as ``password=...``.
MIN_SECRET_LENGTH = 6

# Words that make a variable, parameter or key name a credential's name.
_CREDENTIAL_WORDS = (
    r"passw(?:or)?d|passphrase|pwd|secret|token|api[_.-]?key|apikey|access[_.-]?key|"
    r"private[_.-]?key|client[_.-]?key|key[_.-]?data|account[_.-]?key|credentials?|"
    r"authorization|webhook|cookie|session[_.-]?(?:id|key)"
)

# Kept for callers that flag parameters by name; ``is_credential_name`` adds the exceptions.
# (The look-ahead on the first letter lets the search skip most positions of a long log fast.)
SECRET_NAME = re.compile(rf"(?i)(?=[ackpstw])(?:{_CREDENTIAL_WORDS})")

# Names that contain a credential word but hold no credential: the working directory, a file,
# a folder, a reference to a Secret by name, a count or a duration.
_NOT_CREDENTIAL = re.compile(
    r"(?i)^(?:old)?pwd$|"
    r"(?:name|names|ref|refs|file|files|path|paths|dir|directory|type|kind|ttl|timeout|"
    r"length|count|expiry|expires|expiration|pullsecrets|tokens)$|"
    r"^(?:max|min|num|n)[_.-]"
)


def is_credential_name(name: str) -> bool:
    """True when ``name`` (a variable, parameter or key) names a credential.

    ``DB_PASSWORD``, ``api_token``, ``client-key-data``, ``slack_webhook_url``, ``db.password``
    do; ``PWD``, ``OLDPWD``, ``TOKEN_FILE``, ``secretName``, ``secretKeyRef``, ``max_tokens``,
    ``webhook.mode`` do not.
    """
    # A dotted name is judged by its last part: ``db.password`` is one, ``webhook.mode`` not.
    bare = name.strip().strip("\"'").lstrip("-").rsplit(".", 1)[-1]
    return bool(SECRET_NAME.search(bare)) and not _NOT_CREDENTIAL.search(bare)


# ---------------------------------------------------------------------------------------------
# Text rules of our own (detect-secrets has none for these, or covers them only in part).

# A quote, as written or escaped once or more (JSON in JSON, a repr of JSON) or in HTML.
_QUOTE = r"(?:\\*(?:[\"']|&quot;|&#39;|&#x27;))"

_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?"
    r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)
# "-----BEGIN" in base64 (kubeconfig client-key-data, a Secret's tls.key): decoded to tell a
# private key (redacted) from a certificate (public, kept).
_PEM_BASE64 = re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/]+=*")

# (No ``\b``: a scheme may follow "_" in a metric or label name, ``orders_mysql://...``.)
_URL = re.compile(
    r"(?i)(?<![a-z0-9+.-])(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<authority>[^\s/?#\"'<>\\`]*)"
)

_AUTHORIZATION = re.compile(
    rf"(?i)(?P<prefix>(?<![a-z0-9])(?:proxy-)?authorization{_QUOTE}?[ \t]*[:=][ \t]*{_QUOTE}?[ \t]*"
    r"(?P<scheme>(?:bearer|token|basic|digest|negotiate|ntlm|apikey|key|sso-key|"
    r"aws4-hmac-sha256)[ \t]+)?)"
    r"(?P<value>(?!\[REDACTED\])[^\s\"'<>\\,;]+)"
)
_BEARER = re.compile(
    r"(?i)(?P<prefix>(?<![a-z0-9])(?:bearer|basic)[ \t]+)(?P<value>[A-Za-z0-9._~+/=-]{8,})"
)

# Token formats with a fixed prefix that detect-secrets 1.5 lacks or cuts short (starting after
# any non-alphanumeric, "_" included: a token glued into a metric name is still found), each with a
# lower-case text that must occur for it to match (a cheap test that skips the regex on logs).
_START = r"(?<![A-Za-z0-9])"
_TOKENS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    # JWT with its signature (detect-secrets' pattern stops before it)
    (("eyj",), re.compile(_START + r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")),
    (("github_pat_",), re.compile(_START + r"github_pat_[A-Za-z0-9_]{20,}")),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), re.compile(_START + r"gh[pousr]_[A-Za-z0-9_]{30,}")),
    (
        ("gl",),
        re.compile(_START + r"gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-[A-Za-z0-9_-]{16,}"),
    ),
    (("_live_", "_test_"), re.compile(_START + r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}")),
    (("whsec_",), re.compile(_START + r"whsec_[A-Za-z0-9+/=]{16,}")),
    (
        ("hooks.slack",),
        re.compile(
            r"(?i)https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+"
        ),
    ),
    (
        ("discord",),
        re.compile(
            r"(?i)https?://(?:[a-z0-9-]+\.)?discord(?:app)?\.com/api/webhooks/[A-Za-z0-9/_-]+"
        ),
    ),
    (("webhook.office",), re.compile(r"(?i)https?://[a-z0-9.-]*webhook\.office\.com/[^\s\"'<>]+")),
    (("xox",), re.compile(_START + r"xox[a-z]-[A-Za-z0-9-]{10,}")),
    (("xapp-",), re.compile(_START + r"xapp-\d-[A-Za-z0-9-]{10,}")),
    (
        ("A3T", "ABIA", "ACCA", "AKIA", "ASIA"),
        re.compile(_START + r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}\b"),
    ),
    (("aiza",), re.compile(_START + r"AIza[0-9A-Za-z_-]{35}")),
    (("ya29.",), re.compile(_START + r"ya29\.[0-9A-Za-z_-]{20,}")),
    (("npm_",), re.compile(_START + r"npm_[A-Za-z0-9]{36}\b")),
    (("hv",), re.compile(_START + r"hv[sbr]\.[A-Za-z0-9_-]{20,}")),
    (("dckr_pat_",), re.compile(_START + r"dckr_pat_[A-Za-z0-9_-]{20,}")),
    (("dop_v1_",), re.compile(_START + r"dop_v1_[a-f0-9]{64}\b")),
    (("shp",), re.compile(_START + r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}\b")),
    (("sk-",), re.compile(_START + r"sk-(?:proj|ant|svcacct|admin)-[A-Za-z0-9_-]{20,}")),
    (("sk-",), re.compile(_START + r"sk-[A-Za-z0-9]{40,}\b")),
    (("sg.",), re.compile(_START + r"SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}")),
    (
        ("sig=", "signature=", "x-amz-", "x-goog-"),
        re.compile(
            r"(?i)(?<=[?&;])(?:sig|signature|x-amz-signature|x-goog-signature|x-amz-credential)="
            r"[^\s&\"'<>#]+"
        ),
    ),
)

# key = value, key: value; the value quoted (spaces allowed) or bare. The key's own closing quote
# and a Python type annotation (``password: str = "x"``) may stand between key and operator.
_KEY = rf"(?P<key>(?<![\w.-])(?:--)?[\w.-]*?(?:{_CREDENTIAL_WORDS})[\w.-]*)(?P<kq>{_QUOTE})?"
_VALUE_QUOTED = rf"(?P<q>{_QUOTE})(?P<qv>.*?)(?P=q)"
_VALUE_OPEN = rf"(?P<oq>{_QUOTE})(?P<ov>[^\n]*)"  # an unterminated quote: the rest of the line
_ASSIGN = re.compile(
    rf"(?i){_KEY}(?:[ \t]*:[ \t]*[A-Za-z_][\w.\[\], |]*?)?[ \t]*(?P<op>:=|=>|=(?!=)|(?<=\w)[ \t]+)"
    rf"[ \t]*(?P<value>\[REDACTED\]|{_VALUE_QUOTED}|{_VALUE_OPEN}|[^\s;&}}\])'\"<>,]+)"
)
# ``key: value`` only when the value ends the line or the item (YAML, JSON, dict reprs), so a
# sentence such as "slack_webhook_url: must start with https" keeps its words.
_COLON = re.compile(
    rf"(?im){_KEY}[ \t]*:(?![:=])[ \t]*(?P<value>\[REDACTED\]|{_VALUE_QUOTED}|"
    rf"(?P<bare>[^\s,}}\]\"'<>#|;\\]+)(?=[ \t]*(?:$|[,}}\]#<|;]|\\[nr]|{_QUOTE})"
    # ... or another "key:" follows (YAML lines joined into one: "token: x  password: y")
    r"|[ \t]+(?:[-+|][ \t]*)?[\w.-]+[ \t]*:(?!//)))"
)

_NOT_SECRET_VALUES = frozenset({"", "none", "null", "nil", "true", "false", "~", "''", '""'})
# Bare values that are code or placeholders, not credentials: a type annotation
# (``token: str,``), an authorization scheme with its token elsewhere, an ellipsis. Tracebacks in
# the executed notebook show library source lines like these.
_NOT_SECRET_WORDS = _NOT_SECRET_VALUES | frozenset(
    {
        "str",
        "int",
        "float",
        "bool",
        "bytes",
        "dict",
        "list",
        "tuple",
        "any",
        "object",
        "path",
        "optional",
        "bearer",
        "basic",
        "token",
        "digest",
        "...",
        "\u2026",
        "***",
        "xxx",
        "changeme",
    }
)
# A call, a container display or an expression start: ``token = read_token(path)``,
# ``secrets=[*flagged, ...]``, ``"webhook_configs": [``; or a placeholder ``<token>``, ``$VAR``.
_CODE_VALUE = re.compile(r"[A-Za-z_][\w.]*[(\[]|[\[({*]|<[\w -]+>$|\$\{?[A-Za-z_]|[^A-Za-z0-9]+$")


def _looks_random(value: str) -> bool:
    """A credential, not a word: has a digit or symbol, or upper case after the first letter."""
    return bool(re.search(r"[0-9+/=_.~-]", value)) or any(c.isupper() for c in value[1:])


def _sub_url(match: re.Match[str]) -> str:
    authority = match.group("authority")
    at = authority.rfind("@")
    if at < 0:
        return match.group(0)
    userinfo, host = authority[:at], authority[at:]
    user, colon, password = userinfo.partition(":")
    if colon:
        return f"{match.group('scheme')}{user}:{PLACEHOLDER if password else ''}{host}"
    # A user name alone (``ssh://git@host``) is no secret; a token in its place is.
    plain_name = re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", user) and sum(map(str.isdigit, user)) < 5
    if not user or plain_name or user == PLACEHOLDER:
        return match.group(0)
    return f"{match.group('scheme')}{PLACEHOLDER}{host}"


def _sub_pem_base64(match: re.Match[str]) -> str:
    head = match.group(0)[:64]
    try:
        decoded = base64.b64decode(head[: len(head) // 4 * 4])
    except (binascii.Error, ValueError):
        return PLACEHOLDER
    return PLACEHOLDER if b"PRIVATE" in decoded or b"-----END" not in decoded else match.group(0)


def _sub_authorization(match: re.Match[str]) -> str:
    value = match.group("value")
    if not match.group("scheme") and not _looks_random(value):
        return match.group(0)  # "authorization: denied for ..." is prose
    return f"{match.group('prefix')}{PLACEHOLDER}"


def _sub_bearer(match: re.Match[str]) -> str:
    value = match.group("value")
    if not _looks_random(value):
        return match.group(0)  # "basic functionality"
    return f"{match.group('prefix')}{PLACEHOLDER}"


def _mid_line(match: re.Match[str]) -> bool:
    """True when more of the line follows the value (a ``,``, ``}`` or ``]`` came next)."""
    rest = match.string[match.end() :].lstrip(" \t")
    return bool(rest) and rest[0] in ",}]"


def _sub_key_value(match: re.Match[str]) -> str:
    key = match.group("key")
    if not is_credential_name(key):
        return match.group(0)
    groups = match.groupdict()
    if match.group("value") == PLACEHOLDER:
        return match.group(0)
    if (groups.get("op") or "=").isspace() and not key.startswith("--"):
        return match.group(0)  # "token bucket": a word after a word, no assignment
    span = match.span("value")
    for name in ("qv", "ov", "bare"):
        if groups.get(name) is not None:
            span = match.span(name)
            break
    value = match.string[span[0] : span[1]]
    bare = value.strip()
    last = bare.rsplit(".", 1)[-1]
    if bare.lower() in _NOT_SECRET_VALUES or last == key.lstrip("-") or bare == PLACEHOLDER:
        return match.group(0)  # f(slack_webhook_url=slack_webhook_url): a name, not a value
    unquoted = groups.get("qv") is None and groups.get("ov") is None
    if unquoted and (bare.lower() in _NOT_SECRET_WORDS or _CODE_VALUE.match(bare)):
        return match.group(0)
    if groups.get("bare") is not None and not groups.get("kq") and _mid_line(match):
        # ``key: value,`` inside a line is a flow mapping only after "{" or ","; in a
        # sentence ("are not secrets: PWD, ...") the words stay.
        before = match.string[: match.start()].rstrip(" \t")
        if not before.endswith(("{", ",", "[")):
            return match.group(0)
    start, end = span[0] - match.start(), span[1] - match.start()
    whole = match.group(0)
    return f"{whole[:start]}{PLACEHOLDER}{whole[end:]}"


# ---------------------------------------------------------------------------------------------
# detect-secrets: its regex-based plugins, through its plugin API.

# Not secrets for this tool: public IP addresses are hostnames; the entropy and keyword plugins
# are not regex based (they guess, and would flag every SHA-256 in the manifest).
_SKIPPED_DETECTORS = frozenset({"IPPublicDetector"})
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_-]")


@cache
def _detectors() -> tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]:
    """(plugin class name, its regexes) for every regex-based detect-secrets plugin."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    found: list[tuple[str, tuple[re.Pattern[str], ...]]] = []
    plugin_class: Any
    for plugin_class in get_mapping_from_secret_type_to_class().values():
        name = str(plugin_class.__name__)
        if not issubclass(plugin_class, RegexBasedDetector) or name in _SKIPPED_DETECTORS:
            continue
        found.append((name, tuple(plugin_class().denylist)))
    return tuple(sorted(found, key=lambda item: item[0]))


def detector_names() -> tuple[str, ...]:
    """The detect-secrets plugins in use (for the README and tests)."""
    return tuple(name for name, _ in _detectors())


# Texts one of which must occur for a detector to match (compared with the lower-cased text,
# unless written in capitals): skips its regexes on text that cannot hold its format. A detector
# not listed here always runs.
_DETECTOR_HINTS: dict[str, tuple[str, ...]] = {
    "AWSKeyDetector": ("a3t", "abia", "acca", "akia", "asia", "aws"),
    "ArtifactoryDetector": ("AKC", "AP"),
    "AzureStorageKeyDetector": ("accountkey",),
    "BasicAuthDetector": ("@",),
    # The keyword-assignment detectors below run only on their vendors' names; their generic
    # forms (``cl_password = ...``, ``api_key: ...``) are caught by our key/value rules.
    "CloudantDetector": ("cloudant",),
    "GitHubTokenDetector": ("gh",),
    "GitLabTokenDetector": ("gl", "gr1348941"),
    "IbmCloudIamDetector": ("ibm", "iam"),
    "IbmCosHmacDetector": ("cos",),
    "JwtTokenDetector": ("eyj",),
    "MailchimpDetector": ("-us",),
    "NpmDetector": ("_authtoken",),
    "OpenAIDetector": ("t3blbkfj",),
    "PrivateKeyDetector": ("private", "putty"),
    "PypiTokenDetector": ("pypi-",),
    "SendGridDetector": ("sg.",),
    "SlackDetector": ("xox", "hooks.slack"),
    "SoftlayerDetector": ("softlayer", "sl"),
    "SquareOAuthDetector": ("sq0csp",),
    "StripeDetector": ("_live_",),
    "TwilioKeyDetector": ("AC", "SK"),
    "TelegramBotTokenDetector": (":",),
    "DiscordBotTokenDetector": (".",),
}


@cache
def _detector_plan() -> tuple[tuple[frozenset[str] | None, tuple[re.Pattern[str], ...]], ...]:
    return tuple(
        (frozenset(_DETECTOR_HINTS[name]) if name in _DETECTOR_HINTS else None, regexes)
        for name, regexes in _detectors()
    )


def _detected_spans(text: str, present: frozenset[str]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for hints, regexes in _detector_plan():
        if hints is not None and present.isdisjoint(hints):
            continue
        for regex in regexes:
            for match in regex.finditer(text):
                # A detector that captures the secret in a group (AWS secret keys, basic auth,
                # npm) hides only the group, so the name beside it stays readable; a group that
                # is only the token's prefix (``ghp``, ``glpat``) hides the whole match.
                groups = [
                    match.span(i)
                    for i in range(1, (regex.groups or 0) + 1)
                    if match.group(i) and len(match.group(i)) >= MIN_SECRET_LENGTH
                ]
                for start, end in groups or [match.span()]:
                    while start < end and text[start] in " \t\r\n\"'=:":
                        start += 1
                    while end > start and text[end - 1] in " \t\r\n\"'":
                        end -= 1
                    # A longer token than the detector knows (Stripe's newer keys): hide it all.
                    while end < len(text) and _TOKEN_CHAR.match(text[end]) and end > start:
                        if not _TOKEN_CHAR.match(text[end - 1]):
                            break
                        end += 1
                    if end > start and PLACEHOLDER not in text[start:end]:
                        spans.append((start, end))
    return spans


def _replace_spans(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, last = [], 0
    for start, end in merged:
        out += [text[last:start], PLACEHOLDER]
        last = end
    out.append(text[last:])
    return "".join(out)


_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


# Every credential word contains one of these; ``str.find`` on them skips a long text fast.
_STEMS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "credential",
    "authorization",
    "webhook",
    "cookie",
    "session",
)


def _credential_hits(text: str, lowered: str) -> list[re.Match[str]]:
    """``SECRET_NAME`` matches in ``text``, searched only near the stems found in it."""
    positions: list[int] = []
    for stem in _STEMS:
        at = lowered.find(stem)
        while at >= 0:
            positions.append(at)
            at = lowered.find(stem, at + 1)
    hits: list[re.Match[str]] = []
    searched = accepted = 0
    for at in sorted(positions):
        low, high = max(at - 16, searched), at + 32
        if low >= high:
            continue
        for hit in SECRET_NAME.finditer(text, low, min(len(text), high + 16)):
            if low <= hit.start() < high and hit.start() >= accepted:
                hits.append(hit)
                accepted = hit.end()
        searched = high
    return hits


def _redact_key_values(text: str, lowered: str) -> str:
    """``key = value`` / ``key: value`` rules, tried once at each key naming a credential.

    The credential words are found first; each rule is then matched at the start of the key
    around that word, so a long line (an HTML page, a log) costs one attempt per key.
    """
    pieces: list[str] = []
    done = 0
    tried = -1
    for hit in _credential_hits(text, lowered):
        start = hit.start()
        while start > done and text[start - 1] in _KEY_CHARS:
            start -= 1
        if hit.start() < done or start == tried:
            continue
        tried = start
        for rule in (_ASSIGN, _COLON):
            match = rule.match(text, start)
            if match is None:
                continue
            replaced = _sub_key_value(match)
            if replaced != match.group(0):
                pieces += [text[done:start], replaced]
                done = match.end()
                break
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


# Images embedded in HTML are base64 of binary data: left byte for byte (a pattern matching
# inside one would only corrupt it), and skipped, which keeps a page with plots fast.
_IMAGE_DATA = re.compile(r"data:image/(?!svg)[\w.+-]+;base64,[A-Za-z0-9+/=]+")


def _redact_patterns(text: str) -> str:
    if ";base64," not in text:
        return _redact_plain(text)
    pieces: list[str] = []
    last = 0
    for image in _IMAGE_DATA.finditer(text):
        pieces += [_redact_plain(text[last : image.start()]), image.group(0)]
        last = image.end()
    pieces.append(_redact_plain(text[last:]))
    return "".join(pieces)


_FIXED_HINTS = ("private", "LS0tLS1CRUdJTi", "@", "authorization", "bearer", "basic")


def _case_sensitive(hint: str) -> bool:
    return any(c.isupper() for c in hint)


@cache
def _hint_index() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every hint: the lower-case ones (found in any case) and the capitalised ones (as written)."""
    hints = {*_FIXED_HINTS, *(h for hs, _ in _TOKENS for h in hs)}
    hints.update(h for hs in _DETECTOR_HINTS.values() for h in hs)
    return (
        tuple(sorted(h for h in hints if not _case_sensitive(h))),
        tuple(sorted(h for h in hints if _case_sensitive(h))),
    )


def _present_hints(text: str) -> frozenset[str]:
    """The hints that occur in ``text``: one substring search each (C speed, no regex)."""
    any_case, as_written = _hint_index()
    lowered = text.lower()
    return frozenset([h for h in any_case if h in lowered] + [h for h in as_written if h in text])


def _redact_plain(text: str) -> str:
    present = _present_hints(text)
    if "private" in present:
        text = _PEM.sub(PLACEHOLDER, text)
    if "LS0tLS1CRUdJTi" in present:
        text = _PEM_BASE64.sub(_sub_pem_base64, text)
    if "@" in present:
        text = _URL.sub(_sub_url, text)
    if "authorization" in present:
        text = _AUTHORIZATION.sub(_sub_authorization, text)
    if "bearer" in present or "basic" in present:
        text = _BEARER.sub(_sub_bearer, text)
    for hints, regex in _TOKENS:
        if not present.isdisjoint(hints):
            text = regex.sub(PLACEHOLDER, text)
    text = _replace_spans(text, _detected_spans(text, present))
    return _redact_key_values(text, text.lower())


# ---------------------------------------------------------------------------------------------
# Where the known secret values come from.

# Variables that name a file or folder hold a path, not a credential (TOKEN_FILE, ..._DIR).
_PATH_VARIABLE = re.compile(r"(?i)(?:_FILE|_PATH|_DIR|_DIRECTORY|_SOCK|_HOME)$")


def secrets_from_environment(env: Mapping[str, str]) -> tuple[str, ...]:
    """Values of environment variables whose names say they hold a credential.

    The working directory (``PWD``, ``OLDPWD``), variables naming files or folders and values
    that are absolute paths are left out, so a path never turns into ``[REDACTED]``. Pure (the
    caller passes ``os.environ``); raises nothing.
    """
    return tuple(
        value
        for name, value in env.items()
        if is_credential_name(name)
        and not _PATH_VARIABLE.search(name)
        and len(value.strip()) >= MIN_SECRET_LENGTH
        and not re.fullmatch(r"(?:/|~/)\S*", value.strip())
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


# ---------------------------------------------------------------------------------------------
# Structure.

# Inside a credential's value these keys name things (a Secret's name, a file's path) and are
# judged on their own, so ``secret: {secretName: app-tls}`` keeps its name.
_IDENTIFIER_KEYS = re.compile(
    r"(?i)^(?:name|namespace|kind|apiversion|key|path|items|mode|defaultmode|optional|"
    r"[\w.-]*(?:name|ref))$"
)
_SECRET_DATA_KEYS = ("data", "stringData", "string_data")


def _hidden(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, str):
        return value.strip().lower() not in _NOT_SECRET_VALUES
    return isinstance(value, int | float)


def _credential_key(key: Any) -> bool:
    return isinstance(key, str) and is_credential_name(key)


@dataclass(frozen=True)
class Redactor:
    """Replaces known secret values and secret-shaped text with ``[REDACTED]``.

    Build it with ``Redactor.build(secrets=..., env=...)``; call it on text (``redactor("...")``)
    or ``redactor.redact_value(obj)`` on any nesting of dicts, lists, tuples and strings.
    ``Redactor()`` alone applies the patterns and the structure rules only.
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
        return _redact_patterns(text)

    def redact_value(self, value: Any, *, other: Callable[[Any], Any] | None = None) -> Any:
        """A redacted copy of ``value``: strings (dict keys too) redacted at every level.

        A value under a key that names a credential is hidden whatever its type (``"password":
        12345678``), and so is every value of a Kubernetes ``Secret``'s ``data``/``stringData``
        and the ``value`` of an env entry whose ``name`` names a credential. Booleans, None and
        empty strings stay (they reveal nothing). ``other`` maps objects of any other type (by
        default they are returned as they are).
        """
        return _walk(value, self.redact, other, hide=_SHOW)

    def redact_json(self, value: Any) -> Any:
        """Same as ``redact_value`` (kept for callers of the first version)."""
        return self.redact_value(value)

    def is_clean(self, text: str) -> bool:
        """True when ``text`` contains no known secret value (used by tests and verify)."""
        return self._known is None or self._known.search(text) is None


# How a value is hidden: not at all, as a credential-named key's value (names inside it are
# judged on their own), or entirely (a Secret's data, a credential env entry's value).
_SHOW, _NAMED, _ALL = 0, 1, 2


def _walk(
    value: Any, text: Callable[[str], str], other: Callable[[Any], Any] | None, *, hide: int
) -> Any:
    if isinstance(value, str):
        return PLACEHOLDER if hide and _hidden(value) else text(value)
    if isinstance(value, Mapping):
        is_secret = value.get("kind") == "Secret"
        env_name = value.get("name")
        env_secret = isinstance(env_name, str) and is_credential_name(env_name)
        out: dict[Any, Any] = {}
        for key, item in value.items():
            child = hide
            if hide == _NAMED and isinstance(key, str) and _IDENTIFIER_KEYS.match(key):
                child = _NAMED if _credential_key(key) else _SHOW
            elif (is_secret and key in _SECRET_DATA_KEYS) or (env_secret and key == "value"):
                child = _ALL
            elif hide == _SHOW and _credential_key(key):
                child = _NAMED
            new_key = text(key) if isinstance(key, str) else key
            out[new_key] = _walk(item, text, other, hide=child)
        return out
    if isinstance(value, list | tuple):
        items = [_walk(item, text, other, hide=hide) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    if hide and _hidden(value):
        return PLACEHOLDER
    if value is None or isinstance(value, bool | int | float):
        return value
    return other(value) if other is not None else value


_DEFAULT = Redactor()


def redact_text(text: str) -> str:
    """``text`` with secret-shaped values replaced (no known values: patterns only).

    For labels and names drawn from data (a business metric's name in a plot's axis label or a
    CSV header) where no run-specific redactor is at hand.
    """
    return _DEFAULT.redact(text)


def redact_value(value: Any, redactor: Redactor | None = None) -> Any:
    """``Redactor.redact_value`` with ``redactor`` (default: patterns and structure only)."""
    return (redactor or _DEFAULT).redact_value(value)


def redact_structure(
    value: Any, text: Callable[[str], str], *, other: Callable[[Any], Any] | None = None
) -> Any:
    """The structure rules of ``Redactor.redact_value`` with any text redactor ``text``.

    For callers that hold a plain ``str -> str`` function (the timeline's ``redact``).
    """
    return _walk(value, text, other, hide=_SHOW)


def redact_manifest(text: str, redact: Callable[[str], str] | None = None) -> str:
    """A Helm manifest (YAML documents) redacted as data before it is diffed.

    Each document is parsed; one that changes under the structure rules (a Secret's data, a
    credential-named key or env entry, a token) is written back from the redacted data with its
    ``# Source`` comments kept; the others keep their text byte for byte. A document that does
    not parse is redacted as text. ``redact``: the text redactor (default: patterns only).
    Raises nothing.
    """
    import yaml

    text_fn = redact or redact_text
    documents = re.split(r"(?m)^---[ \t]*$\n?", text)
    out: list[str] = []
    for document in documents:
        try:
            data = yaml.safe_load(document)
        except yaml.YAMLError:
            out.append(text_fn(document))
            continue
        if not isinstance(data, Mapping | list):
            out.append(text_fn(document))
            continue
        clean = redact_structure(data, text_fn)
        if clean == data:
            out.append(text_fn(document))
            continue
        comments = "".join(
            line + "\n" for line in document.splitlines() if line.lstrip().startswith("#")
        )
        out.append(
            comments
            + yaml.safe_dump(clean, sort_keys=False, default_flow_style=False, allow_unicode=True)
        )
    return "---\n".join(out)
