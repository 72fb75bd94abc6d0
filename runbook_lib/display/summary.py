"""The summary at the top of both notebooks: verdict banner, rules, current step, outcome.

Readable at a glance: the notebook's first cell calls ``open_summary``, which shows
one display output with a ``display_id``; the library updates that same output as the run goes
(``start_run``, the ``@runbook_step`` frame, the assessment's ``decide``), so the executed
notebook and its HTML open with the verdict, whatever cell the reader is looking at. Outside a
Jupyter kernel (tests, ``runbook evaluate``) nothing is displayed and the updates are no-ops.

The output's metadata carries the verdict and outcome, and the timeline events the kernel could
not write to disk (a full disk): ``runbook run`` puts those back on the timeline from the
executed notebook (``take_unwritten``), so the run's ``Ending`` is read from every event.

``install_error_handler`` makes a ``RunbookError`` show its own message (what failed, what to
do) instead of a chained traceback; the traceback goes to ``traceback.txt`` in the evidence.
"""

from __future__ import annotations

import html
import os
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from runbook_lib.core import readable
from runbook_lib.display import recorder as recording
from runbook_lib.errors import RunbookError
from runbook_lib.record.ending import Ending
from runbook_lib.record.facts import Outcome, RunFacts
from runbook_lib.record.story import Headline, Tone, headline
from runbook_lib.record.timeline import Event, Timeline

__all__ = [
    "BANNER_COLOURS",
    "ERROR_HOOKS",
    "TONE_COLOURS",
    "Summary",
    "current",
    "install_error_handler",
    "open_summary",
    "read_summary",
    "take_unwritten",
]

METADATA_KEY = "runbook_summary"
UNWRITTEN_KEY = "unwritten_events"  # in the metadata: events the timeline file did not take
# Verdict -> (background, text): rollback red, inconclusive amber, no rollback green.
BANNER_COLOURS: dict[str, tuple[str, str]] = {
    "rollback": ("#c62828", "#ffffff"),
    "inconclusive": ("#ffb300", "#000000"),
    "no_rollback": ("#2e7d32", "#ffffff"),
    "": ("#546e7a", "#ffffff"),  # not decided yet
}
# Once the run has ended the banner says what happened (the Ending's headline), in its tone:
# "Rolled back, recovered" green, "Rolled back, NOT recovered: escalated" red.
TONE_COLOURS: dict[Tone, tuple[str, str]] = {
    Tone.GOOD: BANNER_COLOURS["no_rollback"],
    Tone.BAD: BANNER_COLOURS["rollback"],
    Tone.WARN: BANNER_COLOURS["inconclusive"],
    Tone.PENDING: BANNER_COLOURS[""],
}
_VERDICT_WORDS = {
    "rollback": "ROLL BACK",
    "inconclusive": "INCONCLUSIVE: the data cannot be judged",
    "no_rollback": "NO ROLLBACK: the release is healthy",
    "": "no verdict yet",
}
# The evidence files a reader wants first, relative to the incident folder (where the
# executed notebook and its HTML are written, so the links work from there).
_EVIDENCE_LINKS = (
    ("record", "record.md"),
    ("timeline", "timeline.jsonl"),
    ("executed notebook", "rollback.ipynb"),
    ("HTML", "rollback.html"),
    ("plots", "plots"),
    ("samples", "metrics/samples.csv"),
    ("post-mortem draft", "postmortem.md"),
    ("manifest", "MANIFEST.sha256"),
    ("traceback", "traceback.txt"),
)


@dataclass(frozen=True)
class RuleLine:
    rule: str  # the rule and, for business rules, its metric
    status: str  # "fired", "clear", "not_evaluated"
    reason: str


def _rule_name(rule: Mapping[str, Any]) -> str:
    name, metric = str(rule.get("rule", "")), str(rule.get("metric", ""))
    if name == "business" and metric:
        return metric if metric.startswith("business") else f"business:{metric}"
    return name


@dataclass
class Summary:
    """What the top of the notebook says; every ``note_*`` re-renders the one display."""

    title: str
    display_id: str = field(default_factory=lambda: f"runbook-summary-{uuid.uuid4().hex}")
    verdict: str = ""
    rules: tuple[RuleLine, ...] = ()
    step: str = "not started"
    steps: list[tuple[str, float, str]] = field(default_factory=list)  # name, s, status
    outcome: str = ""
    cluster: str = ""  # what happened to the release, in the Ending's words
    ending: Headline | None = None  # what happened, once the run has ended
    durations: dict[str, str] = field(default_factory=dict)
    incident: str = ""
    folder: Path | None = None
    error: str = ""
    publish: Callable[[Mapping[str, Any], Mapping[str, Any], str, bool], None] | None = None
    run: Any = None  # the RunContext start_run made, for the hooks run after a failure
    timeline: Timeline | None = None  # the run's, for the events its file did not take
    _shown: bool = False

    # -- updates -----------------------------------------------------------------------------
    def note_start(self, incident: str, folder: Path) -> None:
        self.incident, self.folder, self.error = incident, folder, ""
        self.step, self.steps = "start_run", []
        self.refresh()

    def note_step(self, name: str) -> None:
        self.step = f"{name} (running)"
        self.refresh()

    def note_step_end(self, name: str, seconds: float, status: str) -> None:
        self.steps.append((name, seconds, status))
        self.step = f"{name} ({status})"
        self.refresh()

    def note_decision(self, decision: Mapping[str, Any]) -> None:
        """``decision`` is ``Decision.to_json_dict()``."""
        self.verdict = str(decision.get("verdict", ""))
        self.rules = tuple(
            RuleLine(_rule_name(r), str(r.get("status", "")), str(r.get("reason", "")))
            for r in decision.get("rules", ())
        )
        self.refresh()

    def note_facts(self, facts: RunFacts) -> None:
        """The rollback run's verdict, outcome and durations, from its timeline's facts."""
        ending = Ending.read(facts)
        if facts.decided is not None:
            self.verdict = facts.decided.verdict.value
            self.note_decision(facts.decided.decision or {"verdict": self.verdict})
        running = ending.outcome is Outcome.INCOMPLETE
        self.outcome = "" if running else ending.outcome.value
        self.ending = None if running else headline(ending)
        self.cluster = "" if running and not ending.changed_cluster else ending.cluster_sentence
        if facts.finished is not None:
            f = facts.finished
            if f.decision_to_rollout_s is not None:
                self.durations["decision to rollout complete"] = readable.duration(
                    f.decision_to_rollout_s
                )
            if f.decision_to_recovery_s is not None:
                met = "within" if f.decision_to_recovery_s <= f.target_s else "OVER"
                self.durations["decision to verified recovery"] = (
                    f"{readable.duration(f.decision_to_recovery_s)} ({met} the"
                    f" {readable.duration(f.target_s)} target)"
                )
        self.refresh()

    def note_error(self, message: str) -> None:
        self.error = message
        self.refresh()

    # -- rendering ---------------------------------------------------------------------------
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "verdict": self.verdict,
            "outcome": self.outcome,
            "incident": self.incident,
        }
        unwritten = self.timeline.unwritten if self.timeline is not None else []
        if unwritten:
            data[UNWRITTEN_KEY] = [event.to_json() for event in unwritten]
        return data

    def headline(self) -> tuple[str, tuple[str, str]]:
        """The banner's words and (background, text) colours: what happened once the run has
        ended, the verdict before."""
        if self.ending is not None:
            return self.ending.words, TONE_COLOURS[self.ending.tone]
        words = _VERDICT_WORDS.get(self.verdict, self.verdict)
        return words, BANNER_COLOURS.get(self.verdict, BANNER_COLOURS[""])

    def text(self) -> str:
        lines = [f"{self.title}: {self.headline()[0]}"]
        if self.ending is not None and self.verdict:
            lines.append(f"  verdict: {_VERDICT_WORDS.get(self.verdict, self.verdict)}")
        lines += [f"  {r.rule}: {r.reason}" for r in self.rules]
        if self.steps or self.incident:
            lines.append(f"  step: {self.step}")
        if self.outcome:
            lines.append(f"  outcome: {self.outcome}")
        if self.cluster:
            lines.append(f"  cluster: {self.cluster}")
        lines += [f"  {what}: {value}" for what, value in self.durations.items()]
        if self.error:
            lines.append(f"  error: {self.error}")
        if self.folder is not None:
            lines.append(f"  evidence: {self.folder}")
        return "\n".join(lines)

    def html(self) -> str:
        words, (bg, fg) = self.headline()
        e = html.escape
        tone = self.ending.tone.value if self.ending is not None else ""
        parts = [
            f'<div class="runbook-summary" data-verdict="{e(self.verdict)}" data-tone="{tone}" '
            f'style="border:2px solid {bg};border-radius:6px;margin:4px 0;font-family:sans-serif">',
            f'<div class="runbook-banner" style="background:{bg};color:{fg};padding:10px 14px;'
            f'font-size:1.4em;font-weight:bold">{e(self.title)}: {e(words)}</div>',
            '<div style="padding:6px 14px">',
        ]
        fired = [r for r in self.rules if r.status == "fired"]
        if self.rules:
            parts.append("<ul style='margin:4px 0'>")
            for r in sorted(self.rules, key=lambda r: r.status != "fired"):
                # The reason says fired / clear (and why: "not longer than 120 s") / not judged.
                weight, mark = ("bold", "&#9888; ") if r in fired else ("normal", "")
                parts.append(
                    f"<li style='font-weight:{weight}'>{mark}{e(r.rule)}: {e(r.reason)}</li>"
                )
            parts.append("</ul>")
        rows = [("current step", self.step)] if self.steps or self.incident else []
        if self.ending is not None and self.verdict:
            rows.insert(0, ("verdict", _VERDICT_WORDS.get(self.verdict, self.verdict)))
        if self.outcome:
            rows.append(("outcome", self.outcome))
        if self.cluster:
            rows.append(("cluster", self.cluster))
        rows += list(self.durations.items())
        if self.steps:
            slow = sorted(self.steps, key=lambda s: -s[1])[:3]
            rows.append(
                (
                    "slowest steps",
                    ", ".join(f"{n} {readable.duration(s)} ({st})" for n, s, st in slow),
                )
            )
        if self.incident:
            rows.append(("incident", self.incident))
        parts.append("<table style='border-collapse:collapse'>")
        parts += [
            f"<tr><th style='text-align:left;padding-right:12px'>{e(k)}</th>"
            f"<td style='text-align:left'>{e(v)}</td></tr>"
            for k, v in rows
        ]
        parts.append("</table>")
        if self.error:
            parts.append(
                f"<p style='color:#c62828;font-weight:bold;white-space:pre-wrap'>"
                f"Stopped: {e(self.error)}</p>"
            )
        if self.folder is not None:
            links = [
                f"<a href='{e(rel)}'>{e(label)}</a>"
                for label, rel in _EVIDENCE_LINKS
                if (self.folder / rel).exists()
            ]
            parts.append(
                f"<p>Evidence: <code>{e(str(self.folder))}</code>"
                + (f" &mdash; {' &middot; '.join(links)}" if links else "")
                + "</p>"
            )
        parts.append("</div></div>")
        return "".join(parts)

    def refresh(self) -> None:
        if self.publish is None:
            return
        bundle = {"text/html": self.html(), "text/plain": self.text()}
        self.publish(bundle, {METADATA_KEY: self.data()}, self.display_id, self._shown)
        self._shown = True


_current: Summary | None = None


def current() -> Summary | None:
    """The summary this kernel shows, if a notebook opened one."""
    return _current


def _ipython_publish(
    bundle: Mapping[str, Any], metadata: Mapping[str, Any], display_id: str, update: bool
) -> None:
    from IPython.display import display, update_display

    show = update_display if update else display
    show(dict(bundle), raw=True, metadata=dict(metadata), display_id=display_id)  # type: ignore[no-untyped-call]


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def open_summary(title: str) -> Summary:
    """Show the summary (the notebook's first code cell) and make it the one to update."""
    global _current
    summary = Summary(title=title, publish=_ipython_publish if _in_kernel() else None)
    _current = summary
    if _in_kernel():  # a run by hand keeps its own outputs for the evidence (recorder.py)
        from IPython import get_ipython

        recording.start(get_ipython())
    summary.refresh()
    install_error_handler()
    return summary


def read_summary(notebook: Mapping[str, Any]) -> dict[str, Any] | None:
    """What an executed notebook's summary ended with: its verdict (the assessment notebook
    has no timeline: ``runbook run assess`` reads its verdict here) and outcome."""
    for cell in notebook.get("cells", ()):
        for output in cell.get("outputs", ()) if cell.get("cell_type") == "code" else ():
            found = output.get("metadata", {}).get(METADATA_KEY)
            if isinstance(found, dict):
                return found
    return None


def take_unwritten(notebook: Mapping[str, Any]) -> list[Event]:
    """The timeline events the kernel could not write to disk, taken out of the executed
    notebook's summary (the timeline gets them back; the evidence notebook need not carry
    them twice). Lines that are not events are skipped."""
    found = read_summary(notebook)
    raw = found.pop(UNWRITTEN_KEY, None) if found is not None else None
    events: list[Event] = []
    for line in raw if isinstance(raw, list) else ():
        try:
            events.append(Event.from_json(str(line)))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return events


def _short(err: BaseException) -> list[str]:
    """The typed error's own message, then what it was caused by in one line."""
    lines = [f"{type(err).__name__}: {err}"]
    cause = err.__cause__
    if cause is not None:
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        lines.append(f"  caused by {type(cause).__name__}: {first[:300]}")
    return lines


def _handle(
    shell: Any,
    etype: type[BaseException],
    value: BaseException,
    tb: TracebackType | None,
    tb_offset: int | None = None,
) -> Sequence[str]:
    lines = _short(value)
    summary = _current
    saved = ""
    if summary is not None and summary.folder is not None and summary.folder.is_dir():
        full = "".join(traceback.format_exception(etype, value, tb))
        path = summary.folder / "traceback.txt"
        redact = _redact if _redact is not None else (lambda text: text)
        try:
            _append_evidence(path, redact(full) + "\n")
            saved = str(path)
        except OSError:
            saved = ""
    if summary is not None:
        summary.note_error(lines[0])
    lines.append(
        f"  (full traceback: {saved})" if saved else "  (full traceback: %tb in the next cell)"
    )
    red = "\x1b[1;31m"
    shown = [red + lines[0] + "\x1b[0m", *lines[1:]]
    recorder = recording.active()
    if recorder is not None:
        recorder.note_error(etype.__name__, str(value), shown)
    for hook in ERROR_HOOKS:  # e.g. the executed notebook into the evidence (run by hand)
        try:
            hook(summary)
        except Exception as err:
            shown.append(f"  (could not save the notebook evidence: {err})")
    # IPython ignores what a custom handler returns: publish it as the cell's error output
    # ourselves, so papermill and the executed notebook show the failing cell's message.
    if shell is not None:
        shell._showtraceback(etype, value, shown)
    return shown


def _append_evidence(path: Path, text: str) -> None:
    """Append to an evidence file as the bundle's files are written: 0640, never through a
    symlink planted at it."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o640)
    try:
        os.fchmod(fd, 0o640)
        view = memoryview(text.encode("utf-8"))
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


# Called after a RunbookError was shown, with the current summary (steps register theirs).
ERROR_HOOKS: list[Callable[[Summary | None], None]] = []


_redact: Callable[[str], str] | None = None


def set_redactor(redact: Callable[[str], str]) -> None:
    """The run's redactor, so the saved traceback hides the same secrets as the timeline."""
    global _redact
    _redact = redact


def install_error_handler() -> None:
    """Show ``RunbookError``s as their message; papermill still marks the failing cell."""
    if not _in_kernel():
        return
    from IPython import get_ipython

    shell: Any = get_ipython()
    shell.set_custom_exc((RunbookError,), _handle)
