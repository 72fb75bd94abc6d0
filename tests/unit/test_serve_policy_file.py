"""``runbook serve --policy FILE``: the releases' profiles are the policy folder's and are read
at start-up, so a wrong profile stops the receiver before the first alert, not during it."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib.cli.serve import load_policy
from runbook_lib.errors import ParameterError


def _policy(folder: Path, releases: str) -> Path:
    path = folder / "policy.yaml"
    path.write_text(f"releases:\n{releases}")
    return path


def test_a_relative_profile_is_the_policy_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "shop.yaml").write_text("error_ratio: 2%\nsustain: 3m\n")
    path = _policy(
        tmp_path, "  - {release: shop, auto_rollback: true, profile: profiles/shop.yaml}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the receiver's working folder is not the policy's
    policy = load_policy(path)
    assert policy.releases[0].profile == str(tmp_path / "profiles" / "shop.yaml")


def test_every_profile_problem_stops_the_receiver_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("sustain: 90\nerror_ration: 1%\n")
    path = _policy(
        tmp_path,
        "  - {release: shop, profile: bad.yaml}\n"
        "  - {release: cart, profile: missing.yaml}\n"
        "  - {release: ok}\n",
    )
    with pytest.raises(ParameterError) as caught:
        load_policy(path)
    problems = caught.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith("policy.releases[0].profile: sustain:")
    assert "line 1" in problems[0]
    assert problems[1].startswith("policy.releases[0].profile: error_ration: not a setting")
    assert problems[2].startswith("policy.releases[1].profile: profile: cannot read")
    assert "missing.yaml" in problems[2]


def test_an_absolute_profile_path_is_kept(tmp_path: Path) -> None:
    (tmp_path / "shop.yaml").write_text("sustain: 2m\n")
    (tmp_path / "policies").mkdir()
    path = _policy(
        tmp_path / "policies", f"  - {{release: shop, profile: {tmp_path / 'shop.yaml'}}}\n"
    )
    assert load_policy(path).releases[0].profile == str(tmp_path / "shop.yaml")
