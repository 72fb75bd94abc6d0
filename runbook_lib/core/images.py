"""Which images a release revision should run, and which pods do not run them.

"Verify the previous image" compares what the pods actually run with the target revision's
rendered manifest (``helm get manifest --revision N``), never with a version guessed from a
chart name. Image references are normalised the way container runtimes report them
(``nginx`` is ``docker.io/library/nginx:latest``), so an equal image never reads as a mismatch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from runbook_lib.errors import PreconditionFailed

__all__ = ["PodImages", "expected_images", "image_mismatches", "normalise_image"]

_DEFAULT_REGISTRY = "docker.io"


@dataclass(frozen=True)
class PodImages:
    """A pod and the images its containers run.

    ``images`` are the container images (from container statuses when the kubelet reported
    them, else from the spec); ``image_ids`` are the runtime's resolved ids, which carry the
    digest (``...@sha256:<hex>``) on real nodes and may be empty on simulated ones.
    """

    name: str
    phase: str
    ready: bool
    images: tuple[str, ...]
    image_ids: tuple[str, ...] = ()


def normalise_image(ref: str) -> str:
    """Canonical form of an image reference: registry, repository, and tag or digest."""
    ref = ref.strip()
    name, at, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not at:
        name += ":latest"
    first, slash, _rest = name.partition("/")
    # Docker's rule: the first component is a registry only if it looks like a host.
    if not slash or ("." not in first and ":" not in first and first != "localhost"):
        name = f"{_DEFAULT_REGISTRY}/{name}" if slash else f"{_DEFAULT_REGISTRY}/library/{name}"
    return f"{name}@{digest}" if at else name


def _split(ref: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of a normalised reference."""
    name, at, digest = normalise_image(ref).partition("@")
    repo, colon, tag = name.rpartition(":")
    if not colon or "/" in tag:  # the colon belonged to a registry port
        repo, tag = name, ""
    return repo, tag or None, digest if at else None


def _digest(ref: str) -> str | None:
    _, at, digest = ref.partition("@")
    return digest if at and digest.startswith("sha256:") else None


def expected_images(manifest_yaml: str, *, kind: str = "Deployment", name: str) -> tuple[str, ...]:
    """The container images of workload ``kind``/``name`` in a rendered Helm manifest.

    Used by "Verify the previous image" with the target revision's manifest. Init containers
    are left out: they have exited by the time pods are checked. Raises ``PreconditionFailed``
    when the manifest is not YAML, lacks the workload, or the workload has no containers.
    """
    try:
        documents = list(yaml.safe_load_all(manifest_yaml))
    except yaml.YAMLError as err:
        raise PreconditionFailed(f"the release manifest is not valid YAML: {err}") from err
    for doc in documents:
        if not isinstance(doc, dict) or doc.get("kind") != kind:
            continue
        metadata: dict[str, Any] = doc.get("metadata") or {}
        if metadata.get("name") != name:
            continue
        pod_spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        containers = pod_spec.get("containers") or []
        images = tuple(str(c["image"]) for c in containers if isinstance(c, dict) and "image" in c)
        if not images:
            raise PreconditionFailed(f"{kind} {name!r} in the release manifest has no images")
        return images
    raise PreconditionFailed(f"the release manifest has no {kind} named {name!r}")


def _matches(want: str, have: str, digests: set[str]) -> bool:
    want_repo, want_tag, want_digest = _split(want)
    have_repo, have_tag, _ = _split(have)
    if want_repo != have_repo:
        return False
    # Runtimes report the tag in ``image`` and the digest only in ``imageID``; a digest-only
    # report cannot confirm a tag, so it does not match.
    if want_tag is not None and want_tag != have_tag:
        return False
    return want_digest is None or want_digest in digests


def _pod_problem(pod: PodImages, expected: Sequence[str]) -> str | None:
    digests = {d for d in (_digest(i) for i in (*pod.images, *pod.image_ids)) if d}
    unmatched = list(pod.images)
    for want in expected:
        hit = next((h for h in unmatched if _matches(want, h, digests)), None)
        if hit is None:
            digest = _split(want)[2]
            if digest is not None and any(_matches(want, h, {digest}) for h in unmatched):
                seen = ", ".join(sorted(digests)) or "no digest reported"
                return f"{pod.name}: image {want} expected digest {digest}; pod reports {seen}"
            return f"{pod.name}: runs {', '.join(pod.images)}; expected {', '.join(expected)}"
        unmatched.remove(hit)
    if unmatched:
        return f"{pod.name}: runs {', '.join(pod.images)}; expected {', '.join(expected)}"
    return None


def image_mismatches(pods: Sequence[PodImages], expected: Sequence[str]) -> list[str]:
    """One line per pod that does not run exactly ``expected`` ("Verify the previous image").

    An empty pod list is itself a mismatch: nothing runs the target revision. Pure; raises
    nothing.
    """
    if not pods:
        return ["no pods matched the selector; expected pods running " + ", ".join(expected)]
    problems = []
    for pod in sorted(pods, key=lambda p: p.name):
        problem = _pod_problem(pod, expected)
        if problem is not None:
            problems.append(problem)
    return problems
