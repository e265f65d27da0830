"""A real browser against the emulator: Debian's Chromium, headless, driven by Selenium.

Nothing is downloaded: the browser is /usr/bin/chromium with Debian's chromedriver (``make
chromium`` installs both), Selenium Manager is kept offline, and the official browser client
is the UMD build of ``@signalwire/client`` 0.0.1 that ``npm ci`` installed for the
conformance tests (tests/conformance/sdk-client-0.0.1). Without any of them these tests are
skipped, loudly; under CI (``CI=true``) that is a failure.

The browser reaches nothing but loopback. The emulator serves https and wss (the official
client never speaks anything else) with a certificate of a test CA (trustme), which this
browser alone trusts (``--ignore-certificate-errors-spki-list`` names its key), and the
token's ``ch`` is ``puc.localhost:PORT``: the SDK derives ``https://fabric.localhost:PORT``
and ``wss://puc.localhost:PORT`` from it, and Chromium resolves ``*.localhost`` to loopback
itself. So the page talks to the emulator exactly as it would to the service, with no shim.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

REPO = Path(__file__).resolve().parents[2]
CLIENT_PACKAGE = (
    REPO / "tests" / "conformance" / "sdk-client-0.0.1" / "node_modules" / "@signalwire" / "client"
)
CLIENT_BUNDLE = CLIENT_PACKAGE / "dist" / "index.umd.js"
CLIENT_VERSION = "0.0.1"


def _unavailable(why: str) -> None:
    """Skip loudly, or fail under CI, where every browser test must run."""
    message = f"BROWSER TESTS NOT RUN: {why}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: this is a failure)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def client_bundle() -> Path:
    """The installed UMD build of the official browser client (never a copy in the repo)."""
    manifest = CLIENT_PACKAGE / "package.json"
    if not CLIENT_BUNDLE.is_file() or not manifest.is_file():
        _unavailable(
            f"{CLIENT_BUNDLE.relative_to(REPO)} is missing; run `npm ci` in "
            "tests/conformance/sdk-client-0.0.1 (`make test` does)"
        )
    version = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    assert version == CLIENT_VERSION, (
        f"@signalwire/client {version} installed, not {CLIENT_VERSION}"
    )
    return CLIENT_BUNDLE


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Debian's chromium and chromedriver: their paths."""
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        _unavailable("chromium or chromedriver not found; `make chromium` installs Debian's")
    assert browser is not None
    assert driver is not None
    return browser, driver


class Tls:
    """A test CA, a server certificate for loopback names, and what trusts it."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost", "puc.localhost", "fabric.localhost")
        self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.server_context)
        self.ca_bundle = directory / "test-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_bundle))
        # Chromium's --ignore-certificate-errors-spki-list takes base64 SHA-256 hashes of
        # SubjectPublicKeyInfo: the server certificate's key here.
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        leaf = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
        spki = leaf.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.spki_hash = base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return Tls(tmp_path_factory.mktemp("tls"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def browser_emulator(emulator_factory: Any, tls: Tls) -> Any:
    """An emulator on https/wss whose tokens name ``puc.localhost:PORT`` as their ``ch``.

    The port goes in the token, so it is chosen first (a few tries, should another process
    take it in between).
    """
    for attempt in range(5):
        port = free_port()
        try:
            return emulator_factory(
                port=port, space_host=f"puc.localhost:{port}", ssl_context=tls.server_context
            )
        except OSError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


class WebServer:
    """A WSGI app on 127.0.0.1 (werkzeug's threaded server) in a thread; close() stops it."""

    def __init__(self, app: Any) -> None:
        from werkzeug.serving import make_server

        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="web-example-server", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


@pytest.fixture
def new_browser(
    chromium: tuple[str, str], tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], Any]]:
    """Return ``new_browser()``: a fresh headless Chromium (its own profile: a browser
    context of its own); each is quit after the test."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Selenium Manager must not look anything up (the driver and browser are given).
    monkeypatch.setenv("SE_OFFLINE", "true")
    browser_path, driver_path = chromium
    drivers: list[Any] = []

    def make() -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = browser_path
        for argument in (
            "--headless=new",
            "--no-sandbox",  # root in a container
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=720,900",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            # Loopback only: every other name fails to resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE *.localhost,"
            " EXCLUDE 127.0.0.1",
            f"--ignore-certificate-errors-spki-list={tls.spki_hash}",
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        drivers.append(driver)
        driver.set_page_load_timeout(60)
        return driver

    yield make
    for driver in reversed(drivers):
        with contextlib.suppress(Exception):  # the next one is still quit
            driver.quit()
