"""Expected images from a Helm manifest, and pods that do not run them."""

from __future__ import annotations

import pytest
from helm_manifests import RELEASE_MANIFEST

from runbook_lib.core.images import (
    PodImages,
    expected_images,
    image_mismatches,
    normalise_image,
)
from runbook_lib.errors import PreconditionFailed

DIGEST = "sha256:" + "ab" * 32


def test_expected_images_reads_the_named_deployment_only() -> None:
    assert expected_images(RELEASE_MANIFEST, name="app") == (
        "registry.local/api:v1.0.0",
        "envoyproxy/envoy@sha256:aaaa",
    )
    assert expected_images(RELEASE_MANIFEST, name="other") == ("registry.local/other:v9",)


@pytest.mark.parametrize(
    ("manifest", "name", "message"),
    [
        pytest.param(RELEASE_MANIFEST, "missing", "no Deployment named 'missing'", id="absent"),
        pytest.param("kind: [", "app", "not valid YAML", id="bad-yaml"),
        pytest.param(
            "kind: Deployment\nmetadata: {name: app}\nspec: {template: {spec: {containers: []}}}",
            "app",
            "no images",
            id="no-containers",
        ),
    ],
)
def test_expected_images_errors(manifest: str, name: str, message: str) -> None:
    with pytest.raises(PreconditionFailed, match=message):
        expected_images(manifest, name=name)


@pytest.mark.parametrize(
    ("ref", "canonical"),
    [
        pytest.param("nginx", "docker.io/library/nginx:latest", id="bare"),
        pytest.param("nginx:1.27", "docker.io/library/nginx:1.27", id="bare-tag"),
        pytest.param("bitnami/redis:7", "docker.io/bitnami/redis:7", id="hub-user"),
        pytest.param("registry.local/api:v1", "registry.local/api:v1", id="registry"),
        pytest.param("localhost:5000/api", "localhost:5000/api:latest", id="registry-port"),
        pytest.param("api@sha256:ff", "docker.io/library/api@sha256:ff", id="digest-only"),
    ],
)
def test_normalise_image(ref: str, canonical: str) -> None:
    assert normalise_image(ref) == canonical


def pod(name: str, *images: str, ids: tuple[str, ...] = ()) -> PodImages:
    return PodImages(name=name, phase="Running", ready=True, images=images, image_ids=ids)


def test_all_pods_on_expected_images_is_no_mismatch() -> None:
    expected = ("registry.local/api:v1.0.0",)
    pods = [pod("app-1", "registry.local/api:v1.0.0"), pod("app-2", "registry.local/api:v1.0.0")]
    assert image_mismatches(pods, expected) == []


def test_runtime_normalised_names_match_short_names() -> None:
    assert image_mismatches([pod("p", "docker.io/library/nginx:latest")], ("nginx",)) == []


def test_each_wrong_pod_gets_its_own_line() -> None:
    expected = ("registry.local/api:v1.0.0",)
    pods = [
        pod("app-b", "registry.local/api:v1.1.0"),
        pod("app-a", "registry.local/api:v1.0.0"),
        pod("app-c", "registry.local/api:v1.1.0"),
    ]
    lines = image_mismatches(pods, expected)
    assert len(lines) == 2
    assert lines[0].startswith("app-b: runs registry.local/api:v1.1.0")
    assert lines[1].startswith("app-c:")
    assert all("expected registry.local/api:v1.0.0" in line for line in lines)


def test_missing_sidecar_is_a_mismatch() -> None:
    expected = ("registry.local/api:v1.0.0", "envoy:1")
    assert len(image_mismatches([pod("p", "registry.local/api:v1.0.0")], expected)) == 1


@pytest.mark.parametrize(
    ("ids", "ok"),
    [
        pytest.param((f"docker-pullable://registry.local/api@{DIGEST}",), True, id="id-match"),
        pytest.param((f"registry.local/api@{DIGEST}",), True, id="containerd-id"),
        pytest.param(("registry.local/api@sha256:" + "cd" * 32,), False, id="other-digest"),
        pytest.param((), False, id="no-digest-reported"),
    ],
)
def test_digest_is_compared_when_expected_pins_one(ids: tuple[str, ...], ok: bool) -> None:
    expected = (f"registry.local/api@{DIGEST}",)
    problems = image_mismatches([pod("app-1", "registry.local/api:v1.0.0", ids=ids)], expected)
    if ok:
        assert problems == []
    else:
        assert problems == [problems[0]]
        assert "expected digest" in problems[0]


def test_tag_reported_with_digest_in_image_id_passes() -> None:
    expected = (f"registry.local/api:v1.0.0@{DIGEST}",)
    ids = (f"registry.local/api@{DIGEST}",)
    assert image_mismatches([pod("p", "registry.local/api:v1.0.0", ids=ids)], expected) == []


def test_no_pods_is_a_mismatch() -> None:
    assert image_mismatches([], ("registry.local/api:v1.0.0",)) == [
        "no pods matched the selector; expected pods running registry.local/api:v1.0.0"
    ]
