"""Untrusted text made safe for where a person reads it: a console, Slack, an HTML page (pure).

Alert labels come from whoever can write a Prometheus rule or post to Alertmanager. Shown raw,
a newline forges a log line, a terminal escape recolours or hides output, a bidirectional
override reorders what is read, and in Slack ``<!channel>`` pages everyone while
``<https://evil|status page>`` disguises a link. ``line`` makes a piece of untrusted text one
visible line when a message is composed; ``console_text``, ``slack_text`` and ``html_text``
escape a whole message for its medium (the notifiers and ``/runs`` apply them).
"""

from __future__ import annotations

import html
import re

__all__ = ["console_text", "html_text", "line", "slack_text"]

# C0 and C1 controls, DEL, and the format characters that reorder or hide text: bidirectional
# embeddings, overrides and isolates, line and paragraph separators, zero-width joiners.
# Lone surrogates cannot be encoded as UTF-8 at all.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def line(text: str, *, limit: int | None = None) -> str:
    """``text`` as one visible line: every control or reordering character shown as ``\\xNN``
    or ``\\uNNNN`` (a newline reads ``\\x0a``); cut to ``limit`` characters with "..."."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    return _UNSAFE.sub(_escaped, text)


def console_text(text: str) -> str:
    """For a terminal or a log: like ``line`` but the message's own line breaks and tabs kept
    (untrusted parts of it went through ``line`` when the message was composed)."""
    return _UNSAFE.sub(lambda m: m.group() if m.group() in "\n\t" else _escaped(m), text)


def slack_text(text: str) -> str:
    """For Slack's mrkdwn: ``console_text``, then ``&``, ``<``, ``>`` as entities, so no
    mention (``<!channel>``, ``<@U123>``) and no link (``<url|label>``) can be formed."""
    text = console_text(text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def html_text(text: str) -> str:
    """For an HTML page: one line, markup and quotes escaped."""
    return html.escape(line(text), quote=True)
