"""A real JupyterLab server and a headless Chromium to drive it, for the notebook tests.

Debian's chromium and chromedriver (``make chromium``) are used as installed; nothing ever
downloads a browser. Without them the browser tests skip, saying so, except under CI=true,
where they fail. The server runs this checkout's package (PYTHONPATH), binds a free
loopback port, reads its token from the environment (never argv), keeps its config, data
and runtime files in the test's temporary directory, and leaves no process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_START_SECONDS = 60.0
_STOP_SECONDS = 30.0


def _missing(what: str) -> None:
    reason = f"{what}: the JupyterLab browser test needs Debian's chromium (make chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}, and CI must run it")
    pytest.skip(reason)


@pytest.fixture
def chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A headless Chromium under selenium, driven through the installed chromedriver."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        _missing("chromium or chromedriver is not installed")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (the test extra)")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser
    options = webdriver.ChromeOptions()
    options.binary_location = str(browser)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--window-size=1400,3000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(driver_path)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class JupyterLab:
    """A running JupyterLab server: its base URL, root directory and token."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, root: Path, token: str):
        self.process = process
        self.url = url
        self.root = root
        self.token = token

    def api(self, path: str, method: str = "GET") -> Any:
        """The server's REST answer at ``path`` (JSON), with the token in a header."""
        request = urllib.request.Request(
            f"{self.url}api/{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=_STOP_SECONDS) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def children(self) -> list[int]:
        """The server's child processes (its kernels), from /proc."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == self.process.pid:
                found.append(int(stat.parent.name))
        return found

    def stop(self) -> None:
        """Shut the server down (its kernels first) and make sure no process is left."""
        kernels = self.children()
        with contextlib.suppress(OSError):  # already gone: the wait below says
            self.api("shutdown", method="POST")
        try:
            self.process.wait(_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(_STOP_SECONDS)
            pytest.fail("JupyterLab did not shut down when asked")
        deadline = time.monotonic() + _STOP_SECONDS
        left = kernels
        while left and time.monotonic() < deadline:
            left = [pid for pid in left if Path(f"/proc/{pid}").exists()]
            time.sleep(0.05)  # polling /proc for the kernel's exit, with a deadline
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"kernel processes outlived the server: {left}"


def _lab_settings(config: Path) -> None:
    """No network calls and no offscreen-cell virtualisation: every cell in the DOM."""
    settings = config / "lab" / "user-settings" / "@jupyterlab"
    wanted = {
        "notebook-extension/tracker": {"windowingMode": "none"},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, values in wanted.items():
        path = settings / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture
def jupyter_env(tmp_path: Path) -> dict[str, str]:
    """Environment variables that keep Jupyter's config, data and runtime files in the test's
    temporary directory (created), away from the user's."""
    env = {"JUPYTER_PLATFORM_DIRS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    for name in ("CONFIG", "DATA", "RUNTIME"):
        folder = tmp_path / f"jupyter-{name.lower()}"
        folder.mkdir()
        env[f"JUPYTER_{name}_DIR"] = str(folder)
    return env


@pytest.fixture
def jupyterlab(tmp_path: Path, jupyter_env: dict[str, str]) -> Iterator[JupyterLab]:
    """A JupyterLab server on 127.0.0.1, serving ``tmp_path / "root"``."""
    pytest.importorskip("jupyterlab")
    root = tmp_path / "root"
    root.mkdir()
    _lab_settings(Path(jupyter_env["JUPYTER_CONFIG_DIR"]))
    token = secrets.token_hex(16)
    env = {**os.environ, **jupyter_env, "JUPYTER_TOKEN": token}
    runtime = Path(jupyter_env["JUPYTER_RUNTIME_DIR"])
    log = (tmp_path / "jupyterlab.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port=0",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.allow_root=True",
            "--ServerApp.log_level=WARN",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ],
        env=env,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    try:
        url = _wait_for_server(process, runtime, tmp_path / "jupyterlab.log", token)
        lab = JupyterLab(process, url, root, token)
        yield lab
        lab.stop()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(_STOP_SECONDS)


def _wait_for_server(process: subprocess.Popen[bytes], runtime: Path, log: Path, token: str) -> str:
    """The server's URL, once its runtime file says it listens (it binds before writing)."""
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline:
        for info in runtime.glob(f"jpserver-{process.pid}.json"):
            try:
                return str(json.loads(info.read_text())["url"])
            except (ValueError, KeyError):
                pass  # still being written
        if process.poll() is not None:
            break
        time.sleep(0.1)  # polling for the runtime file, with a deadline
    said = log.read_text(errors="replace")[-3000:].replace(token, "<token>")
    pytest.fail(f"JupyterLab did not start within {_START_SECONDS:.0f} s:\n{said}")
