"""Planted secrets: fake credentials in the formats a runbook's evidence can meet.

Importable from every test (``import secret_corpus``: the root ``conftest.py`` puts ``tests/`` on
``sys.path``). Each ``Planted`` has the text as it would be written (a log line, a parameter, a
YAML field) and the fragments that must not survive redaction; ``leaks(text)`` names the ones
that did, so an end-to-end test can plant ``PLANTED`` values in parameters, the environment, a
Secret, Helm values, pod logs and metric names, then grep the whole bundle. ``ORDINARY`` lists
text that must come out of the redactor exactly as written (paths, hostnames, words).

Every value is fake: made up here, matching only the format.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

__all__ = ["CORPUS", "ORDINARY", "Planted", "leaks"]


@dataclass(frozen=True)
class Planted:
    name: str
    text: str
    secrets: tuple[str, ...]  # fragments that must not appear after redaction


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


_PEM_BODY = "MIIEpAIBAAKCAQEAplantedRSAkeyBODY0123456789abcdefghijklmnopqrstuv\nPLANTEDline2xyz=="
_RSA = f"-----BEGIN RSA PRIVATE KEY-----\n{_PEM_BODY}\n-----END RSA PRIVATE KEY-----\n"
_OPENSSH = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQPLANTEDopensshBODY\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
_EC = (
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIPLANTEDecKEYbody0123456789\n"
    "-----END EC PRIVATE KEY-----"
)
_JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6InBsYW50ZWQifQ"
    ".eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpydW5ib29rIn0"
    ".PLANTEDjwtSignature0123456789_abcdefghij-KLMNOP"
)
_AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTED0001"  # 40 characters
_AZURE_KEY = "PLANTEDazure" + "A1b2C3d4" * 9 + "Xy/+"  # 88 characters

CORPUS: tuple[Planted, ...] = (
    # cloud keys
    Planted("aws access key id", "found key AKIAPLANTED00000TEST in the logs",
            ("AKIAPLANTED00000TEST",)),
    Planted("aws secret access key", f'aws_secret_access_key = "{_AWS_SECRET}"',
            ("bPxRfiCYPLANTED0001",)),
    Planted("aws secret, unquoted env", f"AWS_SECRET_ACCESS_KEY={_AWS_SECRET} aws s3 ls",
            ("bPxRfiCYPLANTED0001",)),
    Planted("gcp api key", "maps key AIzaSyPLANTED_0123456789abcdefghijklmno used",
            ("AIzaSyPLANTED_0123456789abcdefghijklmno",)),
    Planted("gcp oauth access token", "token ya29.PLANTEDgoogleAccess0123456789 expired",
            ("PLANTEDgoogleAccess0123456789",)),
    Planted("gcp service account json",
            '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
            'MIIEvQIBADANPLANTEDgcpKEY0123\\n-----END PRIVATE KEY-----\\n", "client_email": '
            '"runbook@project.iam.gserviceaccount.com"}',
            ("PLANTEDgcpKEY0123",)),
    Planted("azure storage connection string",
            f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={_AZURE_KEY};"
            "EndpointSuffix=core.windows.net",
            ("PLANTEDazureA1b2",)),
    Planted("azure sas url",
            "https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02&sig=PLANTEDsas%2Fq0123%3D",
            ("PLANTEDsas",)),
    Planted("vault token", "VAULT said hvs.PLANTEDvault0123456789abcdef ok",
            ("PLANTEDvault0123456789abcdef",)),
    # version control
    Planted("github classic token", "git push with ghp_PLANTED0123456789abcdefghijklmnopqrs",
            ("PLANTED0123456789abcdefghijklmnopqrs",)),
    Planted("github fine-grained token",
            "GH github_pat_11PLANTED0_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ end",
            ("11PLANTED0_abcdefghijklmnopqrstuvwxyz",)),
    Planted("gitlab token", "CI uses glpat-PLANTEDgitlab0123456 now", ("PLANTEDgitlab0123456",)),
    Planted("npm token", "//registry/:_authToken=npm_PLANTEDnpm0123456789abcdefghijklmnopqr",
            ("PLANTEDnpm0123456789abcdefghijklmnopqr",)),
    Planted("pypi token", "password pypi-AgEIcHlwaS5vcmc" + "PLANTEDpypi0123456789" * 4,
            ("PLANTEDpypi0123456789",)),
    Planted("docker hub token", "login dckr_pat_PLANTEDdocker0123456789ab",
            ("PLANTEDdocker0123456789ab",)),
    # chat tokens and webhooks
    Planted("slack bot token", "bot xoxb-1234567890-1234567890123-PLANTEDxoxbToken0AbCd",
            ("PLANTEDxoxbToken0AbCd",)),
    Planted("slack user token", "user xoxp-1234567890-1234567890-PLANTEDxoxp0123",
            ("PLANTEDxoxp0123",)),
    Planted("slack app token", "socket xapp-1-A0PLANTED-1234567890-abcdef0123456789",
            ("A0PLANTED-1234567890",)),
    Planted("slack webhook",
            "posting to https://hooks.slack.com/services/T0PLANTED/B0PLANTED/PLANTEDhook0123456789",
            ("PLANTEDhook0123456789", "T0PLANTED")),
    Planted("discord webhook",
            "https://discord.com/api/webhooks/123456789012345678/PLANTED-discord_hook_0123",
            ("PLANTED-discord_hook_0123",)),
    Planted("telegram bot token", "bot 123456789:AAPLANTEDtelegram0123456789abcdefghi ok",
            ("AAPLANTEDtelegram0123456789abcdefghi",)),
    # payment and mail
    Planted("stripe secret key", "charge with sk_live_PLANTED0123456789abcdefghijklmnopqrstu",
            ("PLANTED0123456789abcdefghijklmnopqrstu", "klmnopqrstu")),
    Planted("stripe restricted key", "rk_live_PLANTEDrestricted0123456789ab",
            ("PLANTEDrestricted0123456789ab",)),
    Planted("sendgrid key",
            "SG.PLANTEDsendgrid01234567.PLANTEDsendgridSecret0123456789abcdefghijklmnopq",
            ("PLANTEDsendgridSecret0123456789",)),
    Planted("twilio api key", "twilio SK0123456789abcdef0123456789abcdef planted",
            ("SK0123456789abcdef0123456789abcdef",)),
    Planted("openai project key", "OPENAI sk-proj-PLANTEDopenai0123456789abcdefghijkl",
            ("PLANTEDopenai0123456789abcdefghijkl",)),
    # JWTs and Kubernetes credentials
    Planted("jwt", f"cookie session={_JWT}", ("PLANTEDjwtSignature0123456789",
                                               _JWT.split(".")[1])),
    Planted("kubeconfig service-account token",
            f"users:\n- name: runbook\n  user:\n    token: {_JWT}\n", ("PLANTEDjwtSignature",)),
    Planted("kubeconfig static token",
            "users:\n- name: admin\n  user:\n    token: PLANTEDkubeStaticTok3n\n",
            ("PLANTEDkubeStaticTok3n",)),
    Planted("kubeconfig client key",
            f"    client-key-data: {_b64(_RSA)}\n", (_b64(_RSA)[:40], _b64(_RSA)[-20:])),
    Planted("base64 private key without a field name",
            f"tls.key {_b64(_RSA)} end", (_b64(_RSA)[:40],)),
    # PEM private keys
    Planted("pem rsa private key", f"key file:\n{_RSA}done", ("plantedRSAkeyBODY", "PLANTEDline2")),
    Planted("pem openssh private key", _OPENSSH, ("PLANTEDopensshBODY",)),
    Planted("pem ec private key", f"ec: {_EC}", ("PLANTEDecKEYbody",)),
    # basic-auth URLs, any case
    Planted("url password", "DATABASE_URL postgres://app:PLANTEDpgPass1@db.internal:5432/app",
            ("PLANTEDpgPass1",)),
    Planted("url password, upper-case scheme", "POSTGRES://u:PLANTEDupper@h/db",
            ("PLANTEDupper",)),
    Planted("url token as user", "clone https://PLANTEDghUserTok0123@github.com/org/repo.git",
            ("PLANTEDghUserTok0123",)),
    Planted("url password, empty user", "redis at postgres://:PLANTEDnouser@cache:6379",
            ("PLANTEDnouser",)),
    Planted("url password with @", "mysql://user:PLANTED@ss@host/db", ("PLANTED@ss", "ss@host")),
    Planted("url in cluster address", "expected_cluster https://admin:PLANTEDapiPw@api:6443",
            ("PLANTEDapiPw",)),
    # headers
    Planted("authorization bearer", "Authorization: Bearer PLANTEDbearer0123.abc",
            ("PLANTEDbearer0123",)),
    Planted("authorization token", "-H 'Authorization: Token PLANTEDtokenScheme99'",
            ("PLANTEDtokenScheme99",)),
    Planted("authorization basic", f"Authorization: Basic {_b64('ops:PLANTEDbasicpw')}",
            (_b64("ops:PLANTEDbasicpw"),)),
    Planted("header then password in one reason",
            "Authorization: Token PLANTEDtokenTwo77 and password='PLANTED second words'",
            ("PLANTEDtokenTwo77", "PLANTED second words", "second words")),
    Planted("api key header", 'curl -H "X-Api-Key: PLANTEDapiKeyHdr7" https://api',
            ("PLANTEDapiKeyHdr7",)),
    Planted("query access token", "GET /v1?access_token=PLANTEDqueryTok1&page=2",
            ("PLANTEDqueryTok1",)),
    # password= forms, dict reprs, credential-named keys
    Planted("password single-quoted with space", "connect(password='PLANTED two words')",
            ("PLANTED two words", "two words")),
    Planted("password double-quoted with space", 'DB_PASSWORD = "PLANTED spaced pw"',
            ("PLANTED spaced pw", "spaced pw")),
    Planted("password unterminated quote", "password='PLANTED never closed",
            ("PLANTED never closed", "never closed")),
    Planted("password bare", "db password=Pl4ntedBare! in config", ("Pl4ntedBare",)),
    Planted("password annotated", 'db_password: str = "PLANTEDannotated"', ("PLANTEDannotated",)),
    Planted("dict repr", "{'password': 'PLANTEDdict pw', 'user': 'bob'}",
            ("PLANTEDdict pw", "dict pw")),
    Planted("json password number", '{"password": 90817263, "user": "bob"}', ("90817263",)),
    Planted("json escaped in a string", '"{\\"api_token\\": \\"PLANTEDescaped1\\"}"',
            ("PLANTEDescaped1",)),
    Planted("yaml secret diff line", "+  password: PLANTEDdiffAdded\n-  password: PLANTEDdiffGone",
            ("PLANTEDdiffAdded", "PLANTEDdiffGone")),
    Planted("helm --set", "helm upgrade app c --set db.password=PLANTEDhelmSet,replicas=2",
            ("PLANTEDhelmSet",)),
    Planted("cli flag with space", "migrate --password PLANTEDcliFlag up", ("PLANTEDcliFlag",)),
    Planted("oauth client secret", "client_secret: PLANTEDoauthClient0\n",
            ("PLANTEDoauthClient0",)),
    Planted("html-escaped quotes", "password=&#39;PLANTED html pw&#39;", ("PLANTED html pw",)),
)  # fmt: skip

# Text that must come out of the redactor exactly as it went in.
ORDINARY: tuple[str, ...] = (
    "replay_csv = /work/main/notebooks/data/bad-deploy.csv",
    "helm rollback app 3 --kubeconfig /work/main/sandbox/.state/kubeconfig --namespace default",
    "PWD=/work/main OLDPWD=/tmp/runbook-run-abc",
    "expected_cluster https://api.internal.example:6443 and prometheus http://127.0.0.1:19090",
    "ssh://git@github.com/org/repo.git and https://deploy@git.example.org/repo",
    "registry.local/api@sha256:" + "0123456789abcdef" * 4,
    "0123456789abcdef" * 4 + "  kubernetes/logs/app-7d9f8c6b5-x2x9k.log",
    "the token bucket refills; the bearer of bad news; basic functionality",
    "slack_webhook_url: must start with https://",
    'slack_webhook_url: str = ""  # secret: Slack incoming webhook',
    "password: str = None",
    "ctx = rb.start_run(slack_webhook_url=slack_webhook_url or None)",
    "error_ratio 0.0123 at 2026-11-27T10:00:00+00:00, max_tokens=5",
    "volumes:\n- name: tls\n  secret:\n    secretName: app-tls\n",
    "env:\n- name: DB_PASSWORD\n  valueFrom:\n    secretKeyRef:\n"
    "      name: db\n      key: password\n",
    "TOKEN_FILE=/var/run/secrets/kubernetes.io/serviceaccount/token",
    "authorization: denied for user bob",
    "request id 9b2f6c1e-3c0a-4f5e-8a7d-2b1c0d9e8f7a, incident INC-1234",
    "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHHIG\n-----END CERTIFICATE-----",
    "business:orders dropped 12% below the 30-min baseline",
    # source lines a traceback in the executed notebook can show
    "def make_app(api: ReceiverApi, *, token: str, max_body: int = MAX_BODY) -> None:",
    "def f(tmp_path: Path, webhook_factory: type[Webhook], status: int) -> None:",
    '"webhook_configs": [',
    'webhook.mode = "500"',
    "Redactor.build(secrets=..., env=...)",
    "token = read_token(Path(args.token_file))",
    "POST /alerts  ``Authorization: Bearer <token>``",
    "notify: {notify_file: /var/log/runbook/notifications.jsonl, slack_webhook_url: ...}",
    "Paths and words are not secrets: `PWD`/`OLDPWD`, file names",
)


def leaks(text: str) -> list[str]:
    """Names of the planted secrets that ``text`` still contains (empty: nothing leaked)."""
    return [p.name for p in CORPUS if any(fragment in text for fragment in p.secrets)]
