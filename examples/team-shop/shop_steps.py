"""The shop team's own runbook step: pause the new checkout before rolling back.

A step of the team's, written like the library's: ``@runbook_step`` gives it its name on the
timeline (start, end, or failure), skips it when the run is not rolling back, and, since it
changes the cluster, checks the run still holds the rollback lock before it acts.
"""

from __future__ import annotations

from kubernetes import client, config

from runbook_lib.record.timeline import EventKind
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.step import runbook_step

FLAG = "new_checkout"


@runbook_step("pause_feature_flag", mutating=True)
def pause_feature_flag(ctx: RunContext) -> str:
    """Turn ``new_checkout`` off in the release's flags ConfigMap; returns its earlier value."""
    target = ctx.settings.target
    api = client.CoreV1Api(
        config.new_client_from_config(
            config_file=target.kubeconfig or None, context=target.context or None
        )
    )
    name = f"{target.release}-flags"
    before = api.read_namespaced_config_map(name, target.namespace).data or {}
    api.patch_namespaced_config_map(name, target.namespace, {"data": {FLAG: "off"}})
    ctx.timeline.record(
        "pause_feature_flag",
        EventKind.INFO,
        f"feature flag {FLAG} paused in ConfigMap {name} (was {before.get(FLAG)!r})",
        fact="feature_flag_paused",
        flag=FLAG,
        was=before.get(FLAG),
    )
    return str(before.get(FLAG))
