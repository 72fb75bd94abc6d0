"""Secrets planted in text must not survive redaction; ordinary text must."""

from __future__ import annotations

import html
import json

import pytest

from runbook_lib.core.redact import (
    PLACEHOLDER,
    Redactor,
    secrets_from_environment,
    secrets_from_kubeconfig,
)

WEBHOOK = "https://hooks.slack.com/services/T0PLANTED/B0PLANTED/pl4nt3dW3bh00kS3cr3t"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwbGFudGVkIiwibmFtZSI6InRlc3QifQ"
    ".c2lnbmF0dXJlLXBsYW50ZWQ"
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer s3cr3tT0kenValue.abc", "s3cr3tT0kenValue.abc"),
        ("GET /api?access_token=tok-Planted-123&page=2", "tok-Planted-123"),
        ("db password=Pl4nted!pw in config", "Pl4nted!pw"),
        ("export DB_PASSWORD='Pl4ntedQuoted'", "Pl4ntedQuoted"),
        ("aws key AKIAIOSFODNN7PLANTED in logs", "AKIAIOSFODNN7PLANTED"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTED", "wJalrXUtnFEMI"),
        (f"posting to {WEBHOOK} now", "pl4nt3dW3bh00kS3cr3t"),
        (f"cookie session {JWT}", "c2lnbmF0dXJlLXBsYW50ZWQ"),
        ("users:\n- name: admin\n  user:\n    token: kubeTokenPlanted42\n", "kubeTokenPlanted42"),
        ("    client-key-data: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg==\n", "LS0tLS1CRUdJTi"),
        ("clone https://deploy:hunter2planted@git.example/repo.git", "hunter2planted"),
        ('{"password": "jsonPlanted99", "user": "bob"}', "jsonPlanted99"),
        ("slack bot xoxb-123456789012-PlantedToken", "PlantedToken"),
    ],
    ids=[
        "bearer",
        "query-token",
        "password=",
        "quoted-env",
        "aws-key-id",
        "aws-secret",
        "slack-webhook",
        "jwt",
        "kubeconfig-token",
        "kubeconfig-client-key",
        "url-basic-auth",
        "json-password",
        "slack-bot-token",
    ],
)
def test_secret_shapes_are_redacted(text: str, secret: str) -> None:
    out = Redactor.build()(text)
    assert secret not in out
    assert PLACEHOLDER in out


def test_known_values_are_redacted_in_every_spelling() -> None:
    secret = 'we<ird"&pa\\ss'
    redactor = Redactor.build(secrets=[secret])
    spellings = [secret, json.dumps(secret)[1:-1], html.escape(secret), html.escape(secret, False)]
    for text in spellings:
        assert redactor(f"value: {text} end") == f"value: {PLACEHOLDER} end"


def test_environment_credentials_are_redacted_but_ordinary_variables_are_not() -> None:
    env = {"SLACK_BOT_TOKEN": "plantedEnvToken1", "DB_PASSWORD": "plantedEnvPw2",
           "HOME": "/home/oncall", "RELEASE": "app"}  # fmt: skip
    assert set(secrets_from_environment(env)) == {"plantedEnvToken1", "plantedEnvPw2"}
    out = Redactor.build(env=env)("home /home/oncall plantedEnvToken1 plantedEnvPw2 app")
    assert out == f"home /home/oncall {PLACEHOLDER} {PLACEHOLDER} app"


@pytest.mark.parametrize(
    "text",
    [
        "helm rollback app 3 --namespace default",
        'slack_webhook_url: str = ""  # secret: Slack incoming webhook',
        "password: str = None",
        "error_ratio 0.0123 at 2026-11-27T10:00:00+00:00, max_tokens=5",
        "image registry.local/api:v1.0.0 token bucket",
    ],
    ids=["helm-command", "param-line", "param-none", "metrics", "prose"],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor.build(secrets=["unrelatedSecret"])(text) == text


def test_short_values_are_not_treated_as_secrets() -> None:
    # A 3-character "secret" would blank out every "app" in the evidence.
    assert Redactor.build(secrets=["app"])("release app") == "release app"


def test_redact_json_hides_values_under_credential_keys_of_any_type() -> None:
    redactor = Redactor.build(secrets=["plantedValue"])
    data = {
        "parameters": {"slack_webhook_url": WEBHOOK, "api_token": 123456, "release": "app"},
        "source": ["x = 'plantedValue'"],
        "count": 3,
    }
    out = redactor.redact_json(data)
    assert out["parameters"] == {
        "slack_webhook_url": PLACEHOLDER, "api_token": PLACEHOLDER, "release": "app"
    }  # fmt: skip
    assert out["source"] == [f"x = '{PLACEHOLDER}'"]
    assert out["count"] == 3
    assert "plantedValue" not in json.dumps(out)


def test_with_secrets_extends_and_is_clean_reports() -> None:
    redactor = Redactor.build(secrets=["firstPlanted"]).with_secrets("secondPlanted", None)
    assert redactor("firstPlanted secondPlanted") == f"{PLACEHOLDER} {PLACEHOLDER}"
    assert not redactor.is_clean("has secondPlanted")
    assert redactor.is_clean("nothing here")


def test_kubeconfig_credentials_are_found() -> None:
    config = {
        "users": [
            {"name": "a", "user": {"token": "kubeTokenPlanted1"}},
            {"name": "b", "user": {"client-key-data": "S0VZcGxhbnRlZA==", "username": "bob"}},
            {"name": "c", "user": {"auth-provider": {"config": {"id-token": "idTokPlanted"}}}},
            {"name": "d"},
        ]
    }
    assert secrets_from_kubeconfig(config) == (
        "kubeTokenPlanted1",
        "S0VZcGxhbnRlZA==",
        "idTokPlanted",
    )


def test_executed_notebook_is_redacted_everywhere_papermill_puts_parameters() -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from runbook_lib.evidence.notebook import redact_notebook, render_html

    hook = "https://hooks.slack.com/services/T0/B0/nbPlantedHook"
    password = "nb&Planted<Pw>"
    nb = new_notebook(
        cells=[
            new_code_cell(
                f'slack_webhook_url = "{hook}"\ndb_password = "{password}"\n',
                metadata={"tags": ["injected-parameters"]},
                outputs=[
                    new_output("stream", name="stdout", text=f"using {password}\n"),
                    new_output(
                        "display_data",
                        data={"text/html": f"<b>{html.escape(password)}</b>", "image/png": "iVBO"},
                    ),
                    new_output("error", ename="X", evalue=f"bad {password}", traceback=[hook]),
                ],
            )
        ],
        metadata={
            "papermill": {"parameters": {"slack_webhook_url": hook, "db_password": password}}
        },
    )
    redactor = Redactor.build(secrets=[password])
    clean = redact_notebook(nb, redactor)
    text = nbformat.writes(clean)
    for secret in ("nbPlantedHook", "Planted"):
        assert secret not in text
    assert clean.metadata["papermill"]["parameters"]["slack_webhook_url"] == PLACEHOLDER
    assert clean.cells[0].outputs[1]["data"]["image/png"] == "iVBO"  # images untouched
    assert "nb&Planted" in nbformat.writes(nb)  # the original is not modified
    assert "Planted" not in render_html(clean, redactor)
