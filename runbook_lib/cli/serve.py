"""Receive Alertmanager alerts and run the rollback runbook under a policy

Alertmanager webhook receiver: for each firing alert naming a release, assess and roll back
headlessly when the policy allows it, else notify with the command. Alertmanager's
webhook_configs posts to http://HOST:PORT/alerts with the bearer token of --token-file;
/healthz, /metrics and /runs are for people and Prometheus. Exit 2 on a bad option, policy,
token or TLS file.

example:
  runbook serve --policy policy.yaml --token-file alertmanager.token --port 9095
  (Alertmanager: webhook_configs url http://HOST:9095/alerts, http_config.authorization
  type Bearer, credentials_file the same token file)
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.adapters.settings_files import read_profile
from runbook_lib.cli.main import add_command
from runbook_lib.core.alert_policy import Policy
from runbook_lib.core.kinds import read_duration
from runbook_lib.errors import ParameterError

__all__ = ["load_policy", "read_token", "register", "run"]

DEFAULT_PORT = 9095


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # The command line only: what each alert leads to is runbook_lib/receiver/; the policy
    # file, core/alert_policy.py.
    parser = add_command(subparsers, "serve", __doc__)
    parser.add_argument("--policy", required=True, metavar="FILE", help="policy YAML")
    parser.add_argument(
        "--token-file", required=True, metavar="FILE", help="bearer token Alertmanager sends"
    )
    parser.add_argument("--host", default="127.0.0.1", metavar="ADDRESS", help="listen address")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, metavar="PORT", help="listen port; 0: any free"
    )
    parser.add_argument(
        "--state-dir", default=".runbook-serve", metavar="DIR", help="journal of alerts and runs"
    )
    parser.add_argument("--output-dir", default="evidence", metavar="DIR", help="evidence root")
    parser.add_argument(
        "--queue-size", type=int, default=100, metavar="N", help="releases that may wait (then 503)"
    )
    parser.add_argument(
        "--cooldown",
        default="5m",
        metavar="DURATION",
        help="after a release's run, its new alerts are only recorded for this long",
    )
    parser.add_argument(
        "--workers", type=int, default=2, metavar="N", help="runs at once (other releases)"
    )
    parser.add_argument(
        "--grace",
        default="2m",
        metavar="DURATION",
        help="after SIGTERM, how long runs in progress may take to finish before they are "
        "stopped and sealed; a second signal stops them at once",
    )
    tls = parser.add_argument_group("TLS (like Prometheus' web config)")
    tls.add_argument(
        "--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (default: plain HTTP)"
    )
    tls.add_argument(
        "--tls-key",
        metavar="FILE",
        help="the certificate's private key (default: none; required with --tls-cert)",
    )
    tls.add_argument(
        "--tls-client-ca",
        metavar="FILE",
        help="require client certificates signed by this CA (mutual TLS; default: none)",
    )
    parser.add_argument(
        "--dispatch",
        choices=["local", "job"],
        default="local",
        help="local: a child process per run; job: a Kubernetes Job per run",
    )
    jobs = parser.add_argument_group("--dispatch job")
    jobs.add_argument(
        "--runner-image",
        metavar="IMAGE",
        help="image with runbook and helm (no default: required with --dispatch job)",
    )
    jobs.add_argument(
        "--job-service-account",
        default="runbook-rollback",
        metavar="NAME",
        help="the runs' ServiceAccount (deploy/rbac.yaml)",
    )
    jobs.add_argument(
        "--evidence-claim",
        default="runbook-evidence",
        metavar="PVC",
        help="PersistentVolumeClaim the runs write evidence to",
    )
    jobs.add_argument(
        "--job-secret",
        default="runbook-run-secrets",
        metavar="NAME",
        help="Secret whose keys become the run's environment (RUNBOOK_SLACK_WEBHOOK_URL, ...)",
    )
    jobs.add_argument(
        "--kubeconfig",
        default="",
        metavar="FILE",
        help="where the receiver creates Jobs; empty: in-cluster, else $KUBECONFIG",
    )
    parser.set_defaults(func=run)


def load_policy(path: Path) -> Policy:
    """The policy file, parsed, its releases' profiles read and checked.

    A relative profile path is the policy folder's (the receiver's working folder is nobody's
    choice). Every profile is read now, not at the first alert: a profile that is missing or
    wrong stops the receiver at start-up (``ParameterError``, exit 2), each problem naming the
    release entry, the profile's key and line.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ParameterError([f"--policy: cannot read {path}: {err.strerror}"]) from err
    except yaml.YAMLError as err:
        raise ParameterError([f"--policy: {path} is not YAML: {err}"]) from err
    policy = Policy.from_mapping(data)
    rules, problems = [], []
    for i, rule in enumerate(policy.releases):
        if rule.profile:
            profile = (path.parent / rule.profile).absolute()
            rule = replace(rule, profile=str(profile))
            problems += [
                f"policy.releases[{i}].profile: {p}" for p in read_profile(profile).problems
            ]
        rules.append(rule)
    if problems:
        raise ParameterError(problems)
    return replace(policy, releases=tuple(rules))


def read_token(path: Path) -> str:
    """The bearer token (first line); ``ParameterError`` when missing or empty."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ParameterError([f"--token-file: cannot read {path}: {err.strerror}"]) from err
    if not token:
        raise ParameterError([f"--token-file: {path} is empty"])
    return token


def _job_dispatch(args: argparse.Namespace) -> Any:
    """Runs as Jobs, created with the receiver's own credentials (in-cluster or kubeconfig)."""
    from kubernetes import client, config

    from runbook_lib.adapters.job_runner import JobRunner
    from runbook_lib.core.run_job import JobSpec
    from runbook_lib.receiver import JobDispatch

    if not args.runner_image:
        raise ParameterError(["--runner-image: required with --dispatch job"])
    spec = JobSpec(
        image=args.runner_image,
        service_account=args.job_service_account,
        evidence_claim=args.evidence_claim,
        secret_name=args.job_secret,
    )
    if args.kubeconfig:
        config.load_kube_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    else:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
    return JobDispatch(JobRunner(client.BatchV1Api()), spec)


def _check(args: argparse.Namespace) -> tuple[float, float]:
    problems = []
    if not 0 <= args.port < 65536:
        problems.append(f"--port: {args.port} is not a TCP port")
    if args.queue_size < 1:
        problems.append("--queue-size: at least 1")
    if args.workers < 1:
        problems.append("--workers: at least 1")
    if bool(args.tls_cert) != bool(args.tls_key):
        problems.append("--tls-cert and --tls-key: give both, or neither")
    if args.tls_client_ca and not args.tls_cert:
        problems.append("--tls-client-ca: needs --tls-cert and --tls-key")
    durations = []
    for option in ("cooldown", "grace"):
        try:
            durations.append(read_duration(getattr(args, option)))
        except ValueError as err:
            problems.append(f"--{option}: {err}")
    if problems:
        raise ParameterError(problems)
    return durations[0], durations[1]


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM. Returns 0; bad options raise ``ParameterError`` (exit 2)."""
    from runbook_lib.adapters.webhook import tls_context
    from runbook_lib.core.run_job import credential_env_name, credential_parameters
    from runbook_lib.receiver import LocalDispatch, Receiver, notifiers_from_policy, run_service

    cooldown, grace = _check(args)
    policy = load_policy(Path(args.policy))
    token = read_token(Path(args.token_file))
    if args.dispatch == "job":
        secret = credential_parameters(
            {
                **policy.parameters,
                **{k: v for r in policy.releases for k, v in r.parameters.items()},
            }
        )
        if secret:
            raise ParameterError(
                [
                    f"policy parameter {name}: with --dispatch job, put it in the Secret "
                    f"{args.job_secret} as {credential_env_name(name)}, not in the policy"
                    for name in secret
                ]
            )
    context = (
        tls_context(
            Path(args.tls_cert),
            Path(args.tls_key),
            client_ca=Path(args.tls_client_ca) if args.tls_client_ca else None,
        )
        if args.tls_cert
        else None
    )
    state_dir = Path(args.state_dir)
    dispatch = _job_dispatch(args) if args.dispatch == "job" else LocalDispatch(state_dir)
    receiver = Receiver(
        policy,
        state_dir=state_dir,
        output_dir=Path(args.output_dir),
        dispatch=dispatch,
        notifiers=notifiers_from_policy(policy, os.environ),
        capacity=args.queue_size,
        cooldown=cooldown,
        workers=args.workers,
        grace_s=grace,
    )
    run_service(
        receiver,
        token=token,
        host=args.host,
        port=args.port,
        ssl_context=context,
        say=lambda text: print(f"runbook serve: {text}", file=sys.stderr, flush=True),
    )
    return 0
