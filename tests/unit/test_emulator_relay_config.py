"""RelayConfig validation and the relay's frame ids (no sockets)."""

from __future__ import annotations

import json
import uuid

import attrs
import hypothesis
import pytest
from hypothesis import strategies as st

from signalwire_chat.emulator._relay import RelayConfig, RelayHub, _FrameIds
from signalwire_chat.emulator._tokens import InvalidTokenError, SatClaims


def test_defaults_match_the_contract() -> None:
    config = RelayConfig()
    assert config.ping_interval == 5.0
    assert config.ping_interval < 15.0  # the official client's watchdog
    assert config.resume_window == 60.0
    assert config.event_window == 100
    assert config.space_host == "puc.emulator.test"
    assert config.queue_limit >= config.event_window


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ping_interval", 0),
        ("ping_interval", -1.0),
        ("resume_window", -0.1),
        ("event_window", 0),
        ("queue_limit", 0),
    ],
)
def test_bad_values_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        RelayConfig(**{field: value})


def test_ping_interval_none_disables_pings() -> None:
    assert RelayConfig(ping_interval=None).ping_interval is None


def test_config_is_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        RelayConfig().event_window = 3  # type: ignore[misc]


def test_frame_ids_are_unique_uuid_shaped_and_differ_between_hubs() -> None:
    ids = _FrameIds()
    seen = {ids() for _ in range(10_000)}
    assert len(seen) == 10_000
    for value in list(seen)[:100]:
        assert str(uuid.UUID(value)) == value
        assert uuid.UUID(value).version == 4
    assert not seen & {_FrameIds()() for _ in range(100)}


def refuse(token: str) -> SatClaims:
    raise InvalidTokenError("never")


def test_a_new_hub_has_nothing_and_starts_nothing() -> None:
    hub = RelayHub(verify_token=refuse, config=RelayConfig())
    assert hub.live_sessions == 0
    assert hub.open_sockets == 0
    assert hub.sessions() == []
    assert hub.connect_attempts == 0
    hub.publish(["nobody"], {"id": "m"})  # no sessions, no loop needed
    with pytest.raises(TypeError, match="collection"):
        hub.publish("nobody", {"id": "m"})
    assert "closed=False" in repr(hub)


def test_fault_hooks_validate_their_arguments() -> None:
    hub = RelayHub(verify_token=refuse, config=RelayConfig())
    with pytest.raises(ValueError, match="count"):
        hub.refuse_connects(-1)
    with pytest.raises(ValueError, match="seconds"):
        hub.set_ping_interval(-2)
    hub.set_ping_interval(None)
    hub.refuse_connects(0)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.one_of(st.text(max_size=250), st.uuids().map(str)))
def test_the_ack_fast_path_reads_exactly_what_json_would(rid: str) -> None:
    # An acknowledgement skips json.loads only when the result would be the same frame.
    from signalwire_chat.emulator._relay_session import _ACK

    for text in (
        json.dumps({"jsonrpc": "2.0", "id": rid, "result": {}}, separators=(",", ":")),
        json.dumps({"jsonrpc": "2.0", "id": rid, "result": {}}, ensure_ascii=False),
        '{"jsonrpc":"2.0","id":"' + rid + '","result":{}}',
    ):
        match = _ACK.fullmatch(text)
        if match is None:
            continue
        assert json.loads(text) == {"jsonrpc": "2.0", "id": match.group(1), "result": {}}
    compact = '{"jsonrpc":"2.0","id":"' + rid + '","result":{}}'
    plain = 0 < len(rid) <= 200 and not any(c in '"\\' or ord(c) < 0x20 for c in rid)
    assert (_ACK.fullmatch(compact) is not None) == plain


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frames_are_final_unmasked_text_frames_in_order(size: int) -> None:
    from signalwire_chat.emulator._relay_wire import text_frames

    texts = ["\u00e9" * (size // 2) + "x" * (size % 2), "after", ""]
    wire = text_frames(texts)
    # RFC 6455 section 5.2, read independently: FIN + text, unmasked, the length's form.
    read, at = [], 0
    while at < len(wire):
        assert wire[at] == 0x81
        length, at = wire[at + 1], at + 2
        assert length < 128  # the mask bit is clear
        if length == 126:
            length, at = int.from_bytes(wire[at : at + 2], "big"), at + 2
            assert length >= 126
        elif length == 127:
            length, at = int.from_bytes(wire[at : at + 8], "big"), at + 8
            assert length >= 65536
        read.append(wire[at : at + length].decode("utf-8"))
        at += length
    assert read == texts
