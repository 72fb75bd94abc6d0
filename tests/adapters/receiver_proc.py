"""``runbook serve`` as its own process for the fault suite, with the stand-in child.

The same service as the command (``runbook_lib.receiver``: journal, policy, local dispatch
with its locks, HTTP, signals), with two differences: the child is ``stand_in_run.py``, and
``--hold dispatch`` / ``--hold ended`` stops the receiver at that point of a run's life (just
before the child starts; just after it ended, before the journal hears of it), leaving a
marker file ``$STAND_IN_HOLD/<point>-<incident_id>`` so the test knows it is there and can
kill the process. The bound port is written to ``--port-file``.

    receiver_proc.py STATE OUTPUT POLICY TOKEN --port-file F [--hold POINT] [--workers N]
        [--capacity N] [--grace SECONDS] [--full-disk]

``--full-disk``: once started, no file may grow (``RLIMIT_FSIZE``): every journal line fails.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.adapters.notify import FileNotifier
from runbook_lib.core.alert_policy import Policy
from runbook_lib.receiver import LocalDispatch, Receiver, RunSpec, run_service
from runbook_lib.receiver.dispatch import Liveness, Waited

STAND_IN = Path(__file__).with_name("stand_in_run.py")


class Held:
    """The real local dispatcher, paused at one point of each run for the test to act."""

    def __init__(self, inner: LocalDispatch, point: str, hold: Path) -> None:
        self.inner = inner
        self.point = point
        self.hold = hold
        self.kind = inner.kind
        self.hands_back = inner.hands_back

    def _pause(self, point: str, run: RunSpec) -> None:
        if self.point != point:
            return
        (self.hold / f"{point}-{run.run_id}").touch()
        while True:
            time.sleep(3600)  # the test kills this process here

    def start(self, run: RunSpec) -> dict[str, Any]:
        self._pause("dispatch", run)
        return self.inner.start(run)

    def find(self, run: RunSpec) -> Liveness:
        return self.inner.find(run)

    def wait(self, run: RunSpec, *, handed_back: threading.Event) -> Waited:
        waited = self.inner.wait(run, handed_back=handed_back)
        self._pause("ended", run)
        return waited

    def stop(self, run: RunSpec) -> None:
        self.inner.stop(run)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("state", "output", "policy", "token"):
        parser.add_argument(name)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--hold", default="")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--capacity", type=int, default=100)
    parser.add_argument("--grace", type=float, default=60.0)
    parser.add_argument("--full-disk", action="store_true")
    args = parser.parse_args()
    state = Path(args.state)
    hold = Path(os.environ["STAND_IN_HOLD"])
    dispatch: Any = LocalDispatch(state, command=(sys.executable, str(STAND_IN)))
    if args.hold:
        dispatch = Held(dispatch, args.hold, hold)
    policy = Policy.from_mapping(yaml.safe_load(Path(args.policy).read_text()))
    receiver = Receiver(
        policy,
        state_dir=state,
        output_dir=Path(args.output),
        dispatch=dispatch,
        notifiers=[FileNotifier(state.parent / "notifications.jsonl")],
        capacity=args.capacity,
        workers=args.workers,
        grace_s=args.grace,
        cooldown=0,
    )

    if args.full_disk:
        # From here on no file of this process may grow: the next journal line fails with
        # "File too large", as a full disk would fail it.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        size = (state / "journal.jsonl").stat().st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    def say(text: str) -> None:
        print(f"receiver: {text}", file=sys.stderr, flush=True)
        if "/alerts" in text:
            port = text.split("/alerts")[0].rsplit(":", 1)[1]
            Path(args.port_file).write_text(port)

    run_service(
        receiver, token=Path(args.token).read_text().strip(), host="127.0.0.1", port=0, say=say
    )


if __name__ == "__main__":
    main()
