"""A stand-in for ``runbook run rollback`` as the receiver's child, for the fault suite.

Called the way the receiver calls the real command (``run rollback --quiet -p/-r NAME VALUE``,
credentials in the environment), it leaves what a real run leaves where the receiver reads
it: typed facts on ``<output_dir>/<incident_id>/timeline.jsonl``. It starts the timeline, then
holds until the test lets it go (``$STAND_IN_HOLD/go`` or ``$STAND_IN_HOLD/<release>.go``
exists), then records the rollback and its ending. On SIGTERM it does what the real run does:
records the interrupt and seals its evidence (``MANIFEST.sha256``), exit 143.

``$STAND_IN_HOLD/children.log`` gets one line per start (incident id, pid): how the tests
count runs. ``$STAND_IN_HOLD/<incident_id>.running`` says it is holding.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from receiver_doubles import DEPLOYED

    from runbook_lib.evidence.manifest import write_manifest
    from runbook_lib.record.facts import Decided, Finished, RolledBack, record_fact
    from runbook_lib.record.timeline import EventKind, Timeline

    params = {argv[i + 1]: argv[i + 2] for i in range(4, len(argv), 3)}  # after "--quiet"
    incident = Path(params["output_dir"]) / params["incident_id"]
    hold = Path(os.environ["STAND_IN_HOLD"])
    with (hold / "children.log").open("a") as log:
        log.write(f"{params['incident_id']} {os.getpid()}\n")
    verdict = os.environ.get("STAND_IN_VERDICT", "rollback")
    dry_run = params.get("dry_run") == "True"

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    timeline = Timeline(incident / "timeline.jsonl")
    try:
        timeline.record("start_run", EventKind.INFO, "run started", dry_run=dry_run)
        decided = Decided(verdict, verdict == "rollback", DEPLOYED, DEPLOYED)
        record_fact(timeline, "decide", decided, f"verdict {verdict}")
        (hold / f"{params['incident_id']}.running").touch()
        while not (hold / "go").exists() and not (hold / f"{params['release']}.go").exists():
            time.sleep(0.05)  # a test double waiting for the test's word
    except KeyboardInterrupt:
        timeline.record(
            "runbook_run",
            EventKind.STEP_FAILED,
            "runbook run: interrupted by SIGTERM; the kernel was stopped",
            error_type="SIGTERM",
            error_kind="interrupted",
        )
        write_manifest(incident, signing_key=None)
        return 143
    acting = verdict == "rollback" and not dry_run
    if acting:
        record_fact(timeline, "helm_rollback", RolledBack(2, 1, "helm rollback app 1"), "done")
    outcome = "recovered" if acting else "dry_run" if dry_run else "no_rollback"
    record_fact(timeline, "finish", Finished(outcome, None, None, 300.0), f"ended {outcome}")
    write_manifest(incident, signing_key=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
