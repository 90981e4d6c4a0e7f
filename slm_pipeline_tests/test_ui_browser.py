"""Browser end-to-end test of the Dagster UI: `dagster dev` on a free localhost port with a temp DAGSTER_HOME and
a tiny config, driven by Debian's headless Chromium through chromedriver (Selenium never downloads anything).

It opens the asset graph and catalog (every asset and check shown), launches a materialization of raw_corpus
by clicking Materialize, waits for the run to succeed and opens the asset's metadata. Screenshots go to
$SLM_UI_SCREENSHOTS (or the test's tmp folder); set SLM_UPDATE_DOCS_SCREENSHOT=1 to refresh
docs/asset-graph.png from this run.

Install the browser with `make browser-deps` (apt-get install chromium chromium-driver); without it the test
is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from test_pipeline import EXPECTED_ASSETS, write_config

from slm_pipeline.config import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHECKS = {
    "anonymized_corpus": "anonymized_corpus_no_pii_leak",
    "instruction_pairs": "instruction_pairs_schema",
    "eval_report": "eval_report_promotion_gate",
}
STARTUP_TIMEOUT_S = 120
RUN_TIMEOUT_S = 90
UI_TIMEOUT_S = 30

needs_browser = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason=f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian: `make browser-deps`, i.e. "
    "apt-get install chromium chromium-driver)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(base: str, query: str, variables: dict | None = None) -> dict:
    req = urllib.request.Request(
        f"{base}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _wait_for_code_location(base: str, proc: subprocess.Popen, log: Path) -> None:
    """Webserver answers and the code location is loaded (not just the HTTP port open)."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
    query += "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            entries = _graphql(base, query)["data"]["workspaceOrError"]["locationEntries"]
            last = json.dumps(entries)
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                err = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
                assert not err, f"code location failed to load: {err}"
                return
        except (urllib.error.URLError, ConnectionError, OSError, KeyError, TypeError) as e:
            last = repr(e)
        time.sleep(1)
    pytest.fail(f"dagster dev not ready after {STARTUP_TIMEOUT_S}s ({last}):\n{log.read_text()[-3000:]}")


@pytest.fixture
def dagster_ui(tmp_path, tiny_model_dir, request):
    """`dagster dev` on a free port; yields its base URL. The whole process group is killed afterwards."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    config = write_config(tmp_path, tiny_model_dir)
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "SLM_PIPELINE_CONFIG": str(config),
           "DAGSTER_DISABLE_TELEMETRY": "1", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "dagster_dev.log"
    dagster = Path(sys.executable).parent / "dagster"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def stop() -> None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        # Children that outlived the leader (webserver, daemon, code server) are still in the group.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    request.addfinalizer(stop)
    base = f"http://127.0.0.1:{port}"
    _wait_for_code_location(base, proc, log)
    return base, log


@pytest.fixture
def browser(tmp_path, monkeypatch):
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download a driver or browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--disable-dev-shm-usage", "--window-size=1600,1000", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(UI_TIMEOUT_S)
    yield driver
    driver.quit()


def _body_text(driver) -> str:
    from selenium.webdriver.common.by import By

    try:
        return driver.find_element(By.TAG_NAME, "body").text
    except Exception:  # noqa: BLE001 - page still swapping its DOM
        return ""


def _wait_for_texts(driver, texts, timeout: float = UI_TIMEOUT_S, source: bool = False) -> None:
    """Until every text is shown (visible body text, or the DOM when `source`, e.g. SVG graph labels)."""
    deadline = time.monotonic() + timeout
    missing = set(texts)
    while time.monotonic() < deadline:
        page = driver.page_source if source else _body_text(driver)
        missing = {t for t in texts if t not in page}
        if not missing:
            return
        time.sleep(0.5)
    shot = Path(os.environ.get("SLM_UI_SCREENSHOTS") or tempfile.gettempdir()) / "failure.png"
    driver.save_screenshot(str(shot))
    raise AssertionError(f"{driver.current_url}: not shown after {timeout}s: {sorted(missing)} (screenshot: {shot})")


def _dismiss_welcome_dialog(driver, timeout: float = 10) -> None:
    """A fresh Dagster instance greets the first visit with a 'Join the Dagster community' dialog: Skip it."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        buttons = driver.find_elements(By.XPATH, "//div[@role='dialog']//button[normalize-space(.)='Skip']")
        if buttons:
            buttons[0].click()
            time.sleep(0.5)
            return
        time.sleep(0.5)


def _wait_for_run(base: str, timeout: float = RUN_TIMEOUT_S) -> dict:
    query = "{ runsOrError(limit: 5) { ... on Runs { results { runId status assetSelection { path } } } } }"
    deadline = time.monotonic() + timeout
    runs: list = []
    while time.monotonic() < deadline:
        runs = _graphql(base, query)["data"]["runsOrError"]["results"]
        if runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return runs[0]
        time.sleep(1)
    raise AssertionError(f"run not finished after {timeout}s: {runs}")


def _screenshot(driver, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def test_launchpad_overrides_are_validated_like_the_yaml(tmp_path, tiny_model_dir):
    """The run config the Launchpad offers (TrainOverrides etc.) goes through the same pydantic validation."""
    from slm_pipeline.config import ConfigError, load_config
    from slm_pipeline.defs.resources import (
        AnonymizeOverrides,
        EvalOverrides,
        ExportOverrides,
        TrainOverrides,
        with_overrides,
    )

    cfg = load_config(write_config(tmp_path, tiny_model_dir))
    assert with_overrides(cfg, "train", TrainOverrides()) is cfg  # empty fields keep the YAML
    tuned = with_overrides(cfg, "train", TrainOverrides(max_steps=3, learning_rate=1e-4))
    assert (tuned.train.max_steps, tuned.train.learning_rate, tuned.train.batch_size) == (3, 1e-4, 2)
    assert with_overrides(cfg, "anonymize", AnonymizeOverrides(replacement="fake")).anonymize.replacement == "fake"
    assert with_overrides(cfg, "eval", EvalOverrides(max_gold=1)).eval.max_gold == 1
    assert with_overrides(cfg, "eval", EvalOverrides(variants=["merged", "merged@int8-weights"])).eval.variants == [
        "merged", "merged@int8-weights"]
    assert with_overrides(cfg, "export", ExportOverrides(variants=["gguf-q8_0"])).export.variants == ["gguf-q8_0"]
    with pytest.raises(ConfigError, match=r"export\.variants"):
        with_overrides(cfg, "export", ExportOverrides(variants=["gguf-q2_k"]))
    with pytest.raises(ConfigError, match=r"train\.method: Input should be 'lora', 'qlora' or 'dora'"):
        with_overrides(cfg, "train", TrainOverrides(method="sft"))
    with pytest.raises(ConfigError, match=r"anonymize\.score_threshold"):
        with_overrides(cfg, "anonymize", AnonymizeOverrides(score_threshold=1.5))
    with pytest.raises(ConfigError, match=r"eval\.max_new_tokens"):
        with_overrides(cfg, "eval", {"max_new_tokens": 0})


@pytest.mark.browser
@needs_browser
def test_asset_graph_checks_materialize_and_metadata_in_browser(dagster_ui, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, log = dagster_ui
    shots = Path(os.environ.get("SLM_UI_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    driver = browser

    # 1. Global asset lineage: every asset in its group (groups expanded with the UI's Alt+E shortcut).
    driver.get(f"{base}/asset-groups")
    _wait_for_texts(driver, {"data", "training", "delivery"})
    _dismiss_welcome_dialog(driver)
    ActionChains(driver).key_down(Keys.ALT).send_keys("e").key_up(Keys.ALT).perform()
    _wait_for_texts(driver, EXPECTED_ASSETS, source=True)
    time.sleep(3)  # let the graph finish its zoom animation before the screenshot
    graph_png = _screenshot(driver, shots, "01-asset-graph")

    # 2. Catalog: every asset listed with its group and description (virtualized and
    # middle-truncated names: make it all fit and read the DOM).
    driver.set_window_size(1600, 2000)
    driver.get(f"{base}/assets")
    _wait_for_texts(driver, EXPECTED_ASSETS | {"data", "training", "delivery", "Presidio"}, source=True)
    _screenshot(driver, shots, "02-catalog")
    driver.set_window_size(1600, 1000)

    # 3. Each asset's checks tab shows its check with the description.
    for asset, check in CHECKS.items():
        driver.get(f"{base}/assets/{asset}?view=checks")
        _wait_for_texts(driver, {check})
    _screenshot(driver, shots, "03-checks")

    # 4. Launch a cheap materialization from the UI.
    driver.get(f"{base}/assets/raw_corpus")
    _wait_for_texts(driver, {"raw_corpus", "Materialize"})
    button = WebDriverWait(driver, UI_TIMEOUT_S).until(ec.element_to_be_clickable(
        (By.XPATH, "//button[normalize-space(.)='Materialize' or .//span[normalize-space(.)='Materialize']]")
    ))
    button.click()
    _screenshot(driver, shots, "04-launched")
    run = _wait_for_run(base)
    assert run["status"] == "SUCCESS", f"run {run['runId']} ended {run['status']}:\n{log.read_text()[-3000:]}"
    assert run["assetSelection"] == [{"path": ["raw_corpus"]}]

    # 5. The run page shows success; the asset page shows the materialization's metadata.
    driver.get(f"{base}/runs/{run['runId']}")
    _wait_for_texts(driver, {"raw_corpus", "Success"})
    _screenshot(driver, shots, "05-run")
    driver.get(f"{base}/assets/raw_corpus?view=events")
    _wait_for_texts(driver, {"records", "preview", "artifact_dir", "by_kind"}, timeout=UI_TIMEOUT_S)
    _screenshot(driver, shots, "06-metadata")

    # 6. Launchpad: lora_adapter's run config (TrainOverrides) and the settings resource are editable there.
    driver.get(f"{base}/assets/lora_adapter")
    _wait_for_texts(driver, {"lora_adapter", "Materialize"})
    WebDriverWait(driver, UI_TIMEOUT_S).until(ec.element_to_be_clickable(
        (By.XPATH, "(//button[normalize-space(.)='Materialize']/following-sibling::button"
                   " | //button[normalize-space(.)='Materialize']/../following-sibling::*//button)[1]")
    )).click()  # the arrow beside Materialize opens the menu
    WebDriverWait(driver, UI_TIMEOUT_S).until(ec.element_to_be_clickable(
        (By.XPATH, "//*[normalize-space(.)='Open launchpad'][not(*[normalize-space(.)='Open launchpad'])]")
    )).click()
    # Upstream never materialized in this instance: the UI asks to confirm first.
    deadline = time.monotonic() + UI_TIMEOUT_S
    while "Launchpad" not in _body_text(driver) and time.monotonic() < deadline:
        for confirm in driver.find_elements(By.XPATH, "//div[@role='dialog']//button[normalize-space(.)='Confirm']"):
            confirm.click()
        time.sleep(0.5)
    _wait_for_texts(driver, {"Launchpad", "ASSETS (OPS)", "lora_adapter", "overrides_json",
                             "Where the pipeline's declarative settings come from"})
    # Typing a bad value for TrainOverrides.max_steps is flagged in the Launchpad before anything runs, and the
    # schema panel shows the field's help text at the cursor.
    driver.execute_script(
        "const cm = document.querySelector('.CodeMirror').CodeMirror;"
        "cm.setValue(arguments[0]); cm.focus(); cm.setCursor({line: 3, ch: 18});",
        "ops:\n  lora_adapter:\n    config:\n      max_steps: three\n",
    )
    _wait_for_texts(driver, {"Invalid scalar at path root:ops:lora_adapter:config:max_steps",
                             "Peak learning rate (> 0). Empty = YAML.", "'lora', 'qlora'"})
    _screenshot(driver, shots, "07-launchpad")

    if os.environ.get("SLM_UPDATE_DOCS_SCREENSHOT"):
        _save_docs_screenshot(graph_png, PROJECT_ROOT / "docs" / "asset-graph.png")


def _save_docs_screenshot(src: Path, dest: Path, max_bytes: int = 300_000) -> None:
    """Palette-quantized copy of a screenshot, small enough to commit."""
    from PIL import Image

    dest.parent.mkdir(parents=True, exist_ok=True)
    img = Image.open(src).convert("RGB")
    for colors in (256, 128, 64):
        img.quantize(colors=colors).save(dest, optimize=True)
        if dest.stat().st_size < max_bytes:
            return
    img.thumbnail((1200, 1200))
    img.quantize(colors=64).save(dest, optimize=True)
