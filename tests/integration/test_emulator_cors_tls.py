"""What a browser needs from the emulator: CORS answers for a page of another origin, and TLS
(https and wss), which the official browser clients always use."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from signalwire_chat import ChatClient, ConnectError, TransportError
from signalwire_chat.emulator import Emulator

PAGE = "http://127.0.0.1:5000"
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls(ca: trustme.CA, tmp_path: Path) -> Iterator[tuple[ssl.SSLContext, requests.Session]]:
    """A server context for 127.0.0.1, and a requests session trusting only its test CA
    (closed after the test: a client never closes a session it was given)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE, when set, wins over verify
    session.verify = str(bundle)
    with session:
        yield context, session


def test_tls_serves_https_and_wss_to_a_client_that_trusts_it(
    emulator_factory: Any, tls: tuple[ssl.SSLContext, requests.Session]
) -> None:
    context, trusting = tls
    emu: Emulator = emulator_factory(ssl_context=context)
    assert emu.rest_url == f"https://127.0.0.1:{emu.port}"
    assert emu.relay_url == f"wss://127.0.0.1:{emu.port}/"
    alice = emu.create_subscriber("alice@example.com")
    bob = emu.create_subscriber("bob@example.com")
    with (
        ChatClient(
            alice.token, rest_url=emu.rest_url, relay_url=emu.relay_url, session=trusting
        ) as client,
        emu.client_for(bob, session=trusting) as other,
    ):
        stream = client.stream_messages(bob.address_id, timeout=TIMEOUT)  # over wss
        other.send_message(alice.address_id, "over TLS")
        assert next(stream).text == "over TLS"
        stream.close()
    # The other side: a client that does not trust the test CA is refused, and plain http
    # on the TLS port gets no answer it can use.
    with (
        ChatClient(alice.token, rest_url=emu.rest_url, relay_url=emu.relay_url) as untrusting,
        pytest.raises(TransportError),
    ):
        untrusting.get_subscriber_info()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{emu.port}/api/fabric/addresses", timeout=TIMEOUT)


def preflight(emu: Emulator, origin: str) -> requests.Response:
    return requests.options(
        emu.rest_url + "/api/fabric/messages",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=TIMEOUT,
    )


def test_cors_allows_a_page_of_another_origin(emu: Emulator) -> None:
    alice = emu.create_subscriber("alice@example.com")
    answer = preflight(emu, PAGE)
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == PAGE
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert answer.headers["Access-Control-Allow-Headers"] == "authorization,content-type"
    assert "Origin" in answer.headers["Vary"]
    # The calls themselves, answered and refused alike, say the page may read them.
    info = requests.get(
        emu.rest_url + "/api/fabric/subscriber/info",
        headers={"Origin": PAGE, "Authorization": f"Bearer {alice.token}"},
        timeout=TIMEOUT,
    )
    assert info.status_code == 200
    assert info.headers["Access-Control-Allow-Origin"] == PAGE
    refused = requests.get(
        emu.rest_url + "/api/fabric/subscriber/info", headers={"Origin": PAGE}, timeout=TIMEOUT
    )
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == PAGE
    assert "X-Request-Id" in refused.headers["Access-Control-Expose-Headers"]
    # Without an Origin (not a browser), no CORS headers.
    plain = requests.get(
        emu.rest_url + "/api/fabric/subscriber/info",
        headers={"Authorization": f"Bearer {alice.token}"},
        timeout=TIMEOUT,
    )
    assert "Access-Control-Allow-Origin" not in plain.headers


def test_cors_refuses_an_origin_not_allowed(emulator_factory: Any) -> None:
    emu: Emulator = emulator_factory(cors_origins=[PAGE])
    assert preflight(emu, PAGE).headers["Access-Control-Allow-Origin"] == PAGE
    other = preflight(emu, "http://evil.example")
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Access-Control-Allow-Methods" not in other.headers
    with pytest.raises(TypeError):
        Emulator(cors_origins=PAGE)


def test_the_clients_own_session_trusts_requests_ca_bundle(
    emulator_factory: Any, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQUESTS_CA_BUNDLE is honoured by a client's own session (read at its first call); a
    bundle that does not exist fails every call, none of them sent unverified."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    emu: Emulator = emulator_factory(ssl_context=context)
    alice = emu.create_subscriber("alice@example.com")
    bob = emu.create_subscriber("bob@example.com")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    with ChatClient(alice.token, rest_url=emu.rest_url, relay_url=emu.relay_url) as client:
        client.send_message(bob.address_id, "one")
        client.send_message(bob.address_id, "two")
        assert [m.text for m in client.get_messages(bob.address_id)][:2] == ["two", "one"]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with ChatClient(
        alice.token, rest_url=emu.rest_url, relay_url=emu.relay_url, max_retries=0
    ) as client:
        for _ in range(2):
            with pytest.raises(TransportError):
                client.send_message(bob.address_id, "never sent")
    with ChatClient(alice.token, rest_url=emu.rest_url, relay_url=emu.relay_url) as reader:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        texts = [m.text for m in reader.get_messages(bob.address_id)]
    assert "never sent" not in texts


@pytest.mark.parametrize("own_session", [True, False])
def test_a_tls_failure_is_a_connect_error_never_retried(
    emulator_factory: Any, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch, own_session: bool
) -> None:
    """A server this client does not trust: the same error, and no retry (it would fail the
    same way), whether urllib3's failure comes from our pool or through a caller's session."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    emu: Emulator = emulator_factory(ssl_context=context)
    alice = emu.create_subscriber("alice@example.com")
    sleeps: list[float] = []
    with requests.Session() as session:
        options: dict[str, Any] = {} if own_session else {"session": session}
        with (
            ChatClient(
                alice.token,
                rest_url=emu.rest_url,
                relay_url=emu.relay_url,
                _sleep=sleeps.append,
                **options,
            ) as client,
            pytest.raises(ConnectError) as info,
        ):
            client.get_subscriber_info()  # a GET: retried on most failures, not this one
    assert str(info.value).startswith("TLS failure talking to https://127.0.0.1:")
    assert sleeps == []
