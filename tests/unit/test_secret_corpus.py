"""Every planted secret format is redacted, in text and in data; ordinary text is left alone."""

from __future__ import annotations

import html
import json

import pytest
import secret_corpus
import yaml
from secret_corpus import CORPUS, ORDINARY, leaks

from runbook_lib.core.redact import (
    PLACEHOLDER,
    Redactor,
    detector_names,
    is_credential_name,
    redact_manifest,
    redact_text,
    redact_value,
    secrets_from_environment,
)


def test_corpus_is_broad() -> None:
    assert len(CORPUS) >= 30
    assert len({p.name for p in CORPUS}) == len(CORPUS)
    # every planted text really contains what it claims to plant
    for planted in CORPUS:
        assert leaks(planted.text) == [planted.name] or planted.name in leaks(planted.text)


@pytest.mark.parametrize("planted", CORPUS, ids=[p.name for p in CORPUS])
def test_each_planted_secret_is_redacted(planted: secret_corpus.Planted) -> None:
    out = redact_text(planted.text)
    assert planted.name not in leaks(out), out
    assert PLACEHOLDER in out
    assert redact_text(out) == out  # a second pass changes nothing


@pytest.mark.parametrize("planted", CORPUS, ids=[p.name for p in CORPUS])
def test_each_planted_secret_is_redacted_in_every_container(planted: secret_corpus.Planted) -> None:
    """The timeline stores parameters nested in dicts and lists; JSON and HTML escape them."""
    data = {"params": {"manual_reason": planted.text, "nested": [("x", {"k": planted.text})]}}
    clean = redact_value(data)
    assert leaks(json.dumps(clean)) == [], clean
    assert isinstance(clean["params"]["nested"][0], tuple)
    if '\\"' in planted.text or "&#" in planted.text:
        return  # already an escaped spelling; escaping twice is not something we write
    for escaped in (html.escape(planted.text), json.dumps(planted.text)):
        assert planted.name not in leaks(redact_text(f"<pre>{escaped}</pre>")), escaped


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_stays_as_written(text: str) -> None:
    assert Redactor.build(secrets=["unrelatedSecret"])(text) == text
    assert redact_value({"line": text, "items": [text]}) == {"line": text, "items": [text]}


def test_all_planted_text_at_once() -> None:
    text = "\n".join(p.text for p in CORPUS) + "\n" + "\n".join(ORDINARY)
    out = redact_text(text)
    assert leaks(out) == []
    for line in ORDINARY:
        assert line in out


def test_detect_secrets_plugins_are_used() -> None:
    names = detector_names()
    for expected in ("AWSKeyDetector", "GitLabTokenDetector", "SlackDetector", "StripeDetector"):
        assert expected in names
    assert "IPPublicDetector" not in names  # addresses are not secrets
    # A format only the library knows (no rule of ours): Square OAuth secrets.
    square = "sq0csp-" + "PLANTEDsquare0123456789abcdefghijklmnopqrstu"[:43]
    assert "PLANTEDsquare" not in redact_text(f"square {square} end")


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("DB_PASSWORD", True), ("api_token", True), ("client-key-data", True),
        ("slack_webhook_url", True), ("AWS_SECRET_ACCESS_KEY", True), ("PGPASSWORD", True),
        ("PWD", False), ("OLDPWD", False), ("TOKEN_FILE", False), ("secretName", False),
        ("secretKeyRef", False), ("max_tokens", False), ("release", False),
        ("imagePullSecrets", False), ("token_ttl", False),
    ],
)  # fmt: skip
def test_credential_names(name: str, credential: bool) -> None:
    assert is_credential_name(name) is credential


def test_working_directory_is_not_a_secret() -> None:
    env = {
        "PWD": "/work/main",
        "OLDPWD": "/tmp/somewhere-long",
        "GOOGLE_APPLICATION_CREDENTIALS": "/etc/gcp/key.json",
        "PASSWORD_STORE_DIR": "/home/me/.password-store",
        "DB_PASSWORD": "plantedEnvPw2",
    }
    assert secrets_from_environment(env) == ("plantedEnvPw2",)
    redactor = Redactor.build(env=env)
    line = 'replay_csv = "/work/main/data/x.csv"; --kubeconfig /work/main/sandbox/.state/kubeconfig'
    assert redactor(line) == line
    assert redactor("pw plantedEnvPw2") == f"pw {PLACEHOLDER}"


def test_credential_keys_hide_values_of_any_type_at_any_depth() -> None:
    data = {
        "password": 12345678,
        "db": {"password": "a b", "user": "app", "enabled": True, "token": None},
        "secrets": {"api": "plantedNested", "count": 3},
        "tls": {"secret": {"secretName": "app-tls", "extra": "plantedExtra"}},
        "items": [{"apiKey": 987654}, ("clientSecret", "kept: a tuple value is not keyed")],
        "ratio": 0.5,
    }
    out = redact_value(data)
    assert out["password"] == PLACEHOLDER
    assert out["db"] == {"password": PLACEHOLDER, "user": "app", "enabled": True, "token": None}
    assert out["secrets"] == {"api": PLACEHOLDER, "count": PLACEHOLDER}
    assert out["tls"]["secret"] == {"secretName": "app-tls", "extra": PLACEHOLDER}
    assert out["items"][0] == {"apiKey": PLACEHOLDER}
    assert out["ratio"] == 0.5
    assert data["password"] == 12345678  # the input is not modified


def test_secret_data_and_credential_env_entries_are_hidden() -> None:
    secret = {
        "kind": "Secret",
        "metadata": {"name": "db"},
        "data": {"tls.key": "c2VjcmV0", "key": "a2V5", "ca.crt": "Y2VydA=="},
        "stringData": {"config.ini": "[db]\nhost=db\nuser=app"},
    }
    out = redact_value(secret)
    assert set(out["data"].values()) == {PLACEHOLDER}
    assert out["stringData"] == {"config.ini": PLACEHOLDER}
    assert out["metadata"] == {"name": "db"}
    env = [{"name": "DB_PASSWORD", "value": "hunter"}, {"name": "MODE", "value": "fast"}]
    assert redact_value(env) == [{"name": "DB_PASSWORD", "value": PLACEHOLDER}, env[1]]


def test_secret_in_a_key_is_redacted() -> None:
    samples = {"business:orders_xoxb-1234567890-1234567890123-PLANTEDkey0AbCd": 1.0}
    out = redact_value(samples)
    assert "PLANTEDkey0AbCd" not in json.dumps(out)


def test_other_objects_go_through_the_hook() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "password=plantedInRepr"

    out = Redactor().redact_value({"x": Opaque()}, other=lambda o: redact_text(str(o)))
    assert out == {"x": f"password={PLACEHOLDER}"}


def test_manifest_secrets_and_credential_keys_are_redacted_as_data() -> None:
    manifest = (
        "---\n# Source: app/templates/secret.yaml\napiVersion: v1\nkind: Secret\n"
        "metadata:\n  name: db\ndata:\n  tls.key: UExBTlRFRHRsc2tleQ==\n"
        "stringData:\n  url: postgres://app:PLANTEDpg@db/app\n"
        "---\n# Source: app/templates/deploy.yaml\napiVersion: apps/v1\nkind: Deployment\n"
        "metadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n"
        "      - name: api\n        env:\n        - name: API_TOKEN\n          value: PLANTEDenv\n"
        "        - name: MODE\n          value: fast\n"
        "---\n# Source: app/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\n"
        "metadata:\n  name: plain\ndata:\n  greeting: hello   # kept byte for byte\n"
    )
    out = redact_manifest(manifest)
    for planted in ("UExBTlRFRHRsc2tleQ", "PLANTEDpg", "PLANTEDenv"):
        assert planted not in out
    assert "# Source: app/templates/secret.yaml" in out
    assert "greeting: hello   # kept byte for byte" in out  # unchanged document kept as text
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert docs[0]["data"] == {"tls.key": PLACEHOLDER}
    assert docs[1]["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"] == "fast"
