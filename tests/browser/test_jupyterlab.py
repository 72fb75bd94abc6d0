"""The notebooks in JupyterLab, in Chromium, as an on-call engineer runs them.

Run All, the "yes"/"no" prompt, the summary banner at the top, the progress of the waits, and
the evidence a run by hand leaves (executed notebook and HTML, redacted and sealed). The
screenshots of the banners go to the test's temporary folder; with
``RUNBOOK_UPDATE_SCREENSHOTS=1`` they replace the ones in ``tests/browser/screenshots``
(docs/BY-HAND.md shows them), so a test run leaves the checkout as it found it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox

Lab = Any  # conftest.Lab: root, url, token, notebook_url(name)
REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"


RUNBOOK = str(Path(sys.executable).parent / "runbook")
# The sandbox's minutes-long windows shortened, as the demo does.
SHORT = {
    "sustain": "20s", "step": "2s", "prometheus_rate_window": "15s", "recovery_poll": "2s",
    "recovery_within": "2m", "business_smoothing": "30s",
}  # fmt: skip


def _prepare(lab: Lab, notebook: str, name: str, parameters: dict[str, Any]) -> str:
    """The notebook with its parameters set (papermill's injected cell), nothing run."""
    import papermill

    papermill.execute_notebook(
        str(NOTEBOOKS / notebook), str(lab.root / name), parameters=parameters,
        prepare_only=True, progress_bar=False,
    )  # fmt: skip
    return name


_DRIVER: list[Any] = []  # the page to describe when a wait times out


def _wait(what: str, check: Callable[[], Any], timeout: float) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            result = None if _DRIVER and _answer_kernel_dialog(_DRIVER[-1]) else check()
        except StaleElementReferenceException:
            result = None  # JupyterLab re-rendered the element while we read it: look again
        if result:
            return result
        if time.monotonic() > deadline:
            page = _page_text(_DRIVER[-1])[:6000] if _DRIVER else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}:\n{page}")
        time.sleep(0.5)


def _page_text(driver: Any) -> str:
    # tqdm's widget writes figure spaces (U+2007) between words.
    return str(driver.execute_script("return document.body.innerText")).replace("\u2007", " ")


def _open_and_run_all(driver: Any, lab: Lab, name: str) -> None:
    from selenium.webdriver.common.by import By

    _DRIVER[:] = [driver]
    driver.get(lab.notebook_url(name))
    _wait("the notebook", lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"),
          90)  # fmt: skip
    _wait("the kernel", lambda: _kernel_ready(driver), 90)
    run_all = "//li[contains(@class,'lm-Menu-item')][.//*[normalize-space()='Run All Cells']]"
    for _attempt in range(3):
        driver.find_element(
            By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel') and normalize-space()='Run']"
        ).click()
        _wait("Run All Cells", lambda: driver.find_elements(By.XPATH, run_all), 10)[0].click()
        # Watched on the first code cell: a cell checked by nbval keeps its committed "[10]:".
        try:
            # A click that lands before the tab is active queues nothing.
            _wait("the first cell to start", lambda: _first_prompt(driver) != "[ ]:", 15)
        except AssertionError:
            continue
        # A queue dropped under it (a kernel changed, as when JupyterLab asks late which one
        # to start) leaves the prompt back at "[ ]:" with nothing run. Only then is Run All
        # clicked again, so no cell runs twice.
        _wait("the first cell to finish, or the queue to be dropped",
              lambda: _first_prompt(driver) != "[*]:", 120)  # fmt: skip
        if re.fullmatch(r"\[\d+\]:", _first_prompt(driver)):
            return
    raise AssertionError("Run All Cells ran nothing")


def _first_prompt(driver: Any) -> str:
    """The open notebook's first code cell's prompt: "[ ]:" not run, "[*]:" queued or running,
    "[1]:" ran."""
    prompts = driver.execute_script(
        "return [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
        ".filter(e => e.offsetParent !== null).map(e => e.innerText.trim())"
    )
    return str(prompts[0]) if prompts else "[ ]:"  # not drawn yet: not run


def _answer_kernel_dialog(driver: Any) -> bool:
    """JupyterLab sometimes asks which kernel to start (seen in CI for the first notebook
    opened, before it had loaded the kernel specs): answered as a person would, with the one
    it proposes (the notebook's Python 3). True when it was there."""
    from selenium.webdriver.common.by import By

    for dialog in driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog"):
        if dialog.is_displayed() and "Select Kernel" in dialog.text:
            dialog.find_element(By.CSS_SELECTOR, ".jp-Dialog-button.jp-mod-accept").click()
            return True
    return False


def _kernel_ready(driver: Any) -> bool:
    from selenium.webdriver.common.by import By

    idle = ".jp-Notebook-ExecutionIndicator[data-status='idle']"
    return any(e.is_displayed() for e in driver.find_elements(By.CSS_SELECTOR, idle))


def _answer(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def prompt() -> list[Any]:  # the open notebook's; an earlier tab's may still be in the page
        return [e for e in driver.find_elements(By.CSS_SELECTOR, ".jp-Stdin-input")
                if e.is_displayed() and e.is_enabled()]  # fmt: skip

    _wait("the go-ahead prompt", prompt, 240)[-1].send_keys(text + Keys.ENTER)


def _all_ran(driver: Any) -> bool:
    """Every code cell shows an execution number ("[7]:"), none is waiting or running."""
    prompts = driver.execute_script(
        "return [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
        ".filter(e => e.offsetParent !== null).map(e => e.innerText.trim())"
    )
    return bool(prompts) and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)


def _banner(driver: Any) -> Any:
    from selenium.webdriver.common.by import By

    found = [e for e in driver.find_elements(By.CSS_SELECTOR, ".runbook-summary")
             if e.is_displayed()]  # fmt: skip
    return found[0] if found else None


def _screenshot(driver: Any, name: str, folder: Path) -> Path:
    first = next(e for e in driver.find_elements("css selector", ".jp-Notebook .jp-Cell")
                 if e.is_displayed())  # the open notebook's title  # fmt: skip
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", first)
    if os.environ.get("RUNBOOK_UPDATE_SCREENSHOTS") == "1":
        folder = SCREENSHOTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    driver.save_screenshot(str(path))
    return path


def test_assess_notebook_shows_the_verdict_banner(browser: Any, lab: Lab, tmp_path: Path) -> None:
    replay = {"replay_csv": "data/bad_deploy.csv", "deployed_at": "2026-11-20T14:00:00+00:00"}
    name = _prepare(lab, "assess.ipynb", "assess-browser.ipynb", replay)
    _open_and_run_all(browser, lab, name)
    _wait("the verdict", lambda: "ROLL BACK" in (getattr(_banner(browser), "text", "")), 180)
    _wait("every cell to run", lambda: _all_ran(browser), 180)
    banner = _banner(browser)
    colour = banner.find_element("css selector", ".runbook-banner").value_of_css_property(
        "background-color"
    )
    assert colour == "rgba(198, 40, 40, 1)"  # red: roll back
    assert "error_rate: fired: above 1%" in banner.text
    assert "business:logins: clear:" in banner.text
    top = banner.location["y"]
    first_parameter = browser.find_element("xpath", "//*[contains(text(), 'replay_csv')]")
    assert top < first_parameter.location["y"], "the banner comes before the parameters"
    assert _screenshot(browser, "assess-banner.png", tmp_path).stat().st_size > 10_000


def _helm_revisions(sandbox: Sandbox) -> int:
    return len(json.loads(sandbox.helm("history", "app", "-o", "json")))


def _pod_images(sandbox: Sandbox) -> set[str]:
    out = sandbox.kubectl(
        "get", "pods", "-l", "app=api", "-o", "jsonpath={.items[*].spec.containers[*].image}"
    )
    return set(out.split())


@pytest.fixture
def bad_release(clean_sandbox: Sandbox) -> Sandbox:
    clean_sandbox.deploy("v1.1.0")
    return clean_sandbox


def _rollback_params(sandbox: Sandbox, lab: Lab, incident: str) -> dict[str, Any]:
    return {
        **sandbox.run_parameters,
        "incident_id": incident, "output_dir": str(lab.root / "evidence"), **SHORT,
        # About the prompt and what the page shows, not the decision: the on-call's call
        # instead of waiting for the bad version to breach.
        "manual_reason": "browser test: on-call decided to roll back",
        "helm_binary": shutil.which("helm", path=sandbox.env["PATH"]) or "helm",
    }  # fmt: skip


def test_rollback_by_hand_no_changes_nothing_yes_rolls_back_with_evidence(
    browser: Any, lab: Lab, bad_release: Sandbox, tmp_path: Path
) -> None:
    revisions, images = _helm_revisions(bad_release), _pod_images(bad_release)

    # "no": the run stops before any change, says why in one line, and leaves its notebook.
    name = _prepare(lab, "rollback.ipynb", "rollback-no.ipynb",
                    _rollback_params(bad_release, lab, "INC-BROWSER-NO"))  # fmt: skip
    _open_and_run_all(browser, lab, name)
    _answer(browser, "no")
    _wait("the declined outcome", lambda: "declined" in getattr(_banner(browser), "text", ""), 60)
    text = _page_text(browser)
    assert "PreconditionFailed" in text
    assert "Traceback (most recent call last)" not in text  # the traceback is in the evidence
    assert (_helm_revisions(bad_release), _pod_images(bad_release)) == (revisions, images)
    declined = lab.root / "evidence" / "INC-BROWSER-NO"
    _wait("the declined run's notebook", lambda: (declined / "rollback.ipynb").exists(), 30)
    assert (declined / "traceback.txt").exists()

    # "yes": rolled back, the waits show progress, the evidence has the executed notebook.
    name = _prepare(lab, "rollback.ipynb", "rollback-yes.ipynb",
                    _rollback_params(bad_release, lab, "INC-BROWSER-YES"))  # fmt: skip
    _open_and_run_all(browser, lab, name)
    _answer(browser, "yes")
    _wait("the rollout progress", lambda: "rollout of deployment/app" in _page_text(browser), 120)
    _wait("the saved notebook", lambda: "Executed notebook saved to the evidence"
          in _page_text(browser), 300)  # fmt: skip
    banner = _banner(browser)
    # After the run the banner says what happened, in green; the verdict is a row below it.
    headline = banner.find_element("css selector", ".runbook-banner")
    assert headline.text == "Rollback: Rolled back, recovered"
    assert headline.value_of_css_property("background-color") == "rgba(46, 125, 50, 1)"
    assert "ROLL BACK" in banner.text
    assert browser.find_elements("css selector", ".widget-hprogress, .widget-progress")
    _screenshot(browser, "rollback-banner.png", tmp_path)
    assert _helm_revisions(bad_release) == revisions + 1
    assert _pod_images(bad_release) != images

    incident = lab.root / "evidence" / "INC-BROWSER-YES"
    for file in ("rollback.ipynb", "rollback.html", "record.md", "MANIFEST.sha256"):
        assert (incident / file).is_file(), file
    executed = json.loads((incident / "rollback.ipynb").read_text())
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in code[:-1]), "every cell ran, in the notebook"
    waits = [c for c in code if "wait_for_rollout" in "".join(c["source"])]
    assert "rollout of deployment/app" in json.dumps(waits[0]["outputs"])  # the progress shown
    summary = code[0]["outputs"][0]["metadata"]["runbook_summary"]
    assert summary["verdict"] == "rollback"
    assert summary["outcome"] == "recovered"
    assert "Rollback: Rolled back, recovered" in (incident / "rollback.html").read_text()
    # By hand the record is written again by the last cell: every step before it is final.
    steps = (incident / "record.md").read_text().split("## Steps")[1].split("##")[0]
    assert "| draft_postmortem |" in steps
    assert "| save_notebook |" in steps
    assert "in progress: this record was written during it" in steps.split("| save_notebook |")[1]
    verify = subprocess.run([RUNBOOK, "verify-evidence", str(incident)], capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
