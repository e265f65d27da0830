"""Cold start against the emulator: client created -> subscription live, ours and @signalwire/js v4.

run.py starts one emulator process (pinned to the server core) and, before each run, calls
:func:`make_pair` here: two fresh subscribers, alice (the client under test) and bob (who talks
to her), and bob's join of their group, so every run starts from the same empty conversation.
The client process (ours: ``clients.py coldstart ours``; the official one:
``official_v4_coldstart.cjs``) then times, from just before the client object is created:

- ``subscribed_ms``: until the subscription call returned (ours: ``ChatClient.subscribe`` of
  bob's address; v4: ``directory.get$(bob)`` then ``textMessages$`` emitted its collection);
- ``live_ms``: until a message that bob posts right after that (:func:`post_as_bob`, REST)
  reached the subscriber: the proof that the subscription was live.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import _bench


def rest_call(
    rest_url: str, authorization: str, method: str, path: str, body: object = None
) -> Any:
    """Call the emulator's REST side once (a fresh connection); return the decoded answer."""
    rest = _bench.Rest(rest_url, authorization)
    try:
        return rest.call(method, path, body)
    finally:
        rest.close()


def make_pair(emulator: dict[str, Any]) -> dict[str, Any]:
    """Mint two fresh subscribers and bob's group with alice; return what a client run needs."""
    basic = base64.b64encode(f"{emulator['project_id']}:{emulator['api_token']}".encode())
    project = f"Basic {basic.decode()}"
    rest_url = emulator["rest_url"]
    run = uuid.uuid4().hex[:12]
    tokens, addresses = {}, {}
    for name in ("alice", "bob"):
        body = {"reference": f"{name}-{run}@bench.test", "display_name": name.title()}
        token = rest_call(rest_url, project, "POST", "/api/fabric/subscribers/tokens", body)
        tokens[name] = token["token"]
        info = rest_call(rest_url, f"Bearer {tokens[name]}", "GET", "/api/fabric/subscriber/info")
        addresses[name] = info["fabric_addresses"][0]["id"]
    joined = rest_call(
        rest_url,
        f"Bearer {tokens['bob']}",
        "POST",
        "/api/fabric/conversations/join",
        {
            "from_fabric_address_id": addresses["bob"],
            "fabric_address_ids": [addresses["alice"], addresses["bob"]],
        },
    )
    return {
        "rest_url": rest_url,
        "relay_url": emulator["relay_url"],
        "token": tokens["alice"],
        "bob_token": tokens["bob"],
        "bob_address_id": addresses["bob"],
        "group_id": joined["group_id"],
        "text": f"cold start {run}",
    }


def post_as_bob(p: dict[str, Any]) -> None:
    """Bob sends ``p['text']`` to the group (the liveness probe)."""
    rest_call(
        p["rest_url"],
        f"Bearer {p['bob_token']}",
        "POST",
        "/api/fabric/messages",
        {
            "group_id": p["group_id"],
            "from_fabric_address_id": p["bob_address_id"],
            "text": p["text"],
        },
    )
