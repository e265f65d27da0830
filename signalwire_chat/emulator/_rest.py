"""The emulator's REST endpoints (the "fabric" host of protocol.md), as aiohttp handlers.

Project endpoints take HTTP Basic ``project_id:api_token``; subscriber endpoints take
``Authorization: Bearer <SAT>``. Errors are fabric error bodies:

- 400 invalid JSON (or a body that is not a JSON object);
- 401 missing, malformed, expired, tampered or foreign credentials;
- 403 the history of a conversation the caller is not a member of;
- 404 unknown address or route; 405 wrong method; 413 body over 1 MiB;
- 415 a body that is not ``application/json``;
- 422 validation: missing, empty (or blank) or too long ``text`` (the limit is the
  emulator's ``max_text_length``, 10,000 characters by default), ``metadata`` or
  ``details`` that are not objects, nest deeper than 32 levels (the object itself is
  level 1) or exceed 16 KiB as compact UTF-8 JSON (the client's own limits),
  ``page_size`` that is not 1..1000 in plain ASCII digits (``²`` and 5,000-digit
  numbers included), a bad ``page_token`` (not one the emulator wrote for this
  listing: bad base64 or JSON, deep nesting, over 1,024 characters, a number that does
  not fit sqlite's 64-bit integers).
- 408 a request body that does not arrive within the emulator's ``idle_timeout``.

Nothing a client sends makes a 5xx: a handler failure the rules above missed is still
a fabric error body (500), and the fuzz test (``tests/integration/test_emulator_fuzz.py``)
looks for one.

Two dialects (protocol.md and protocol-group.md) are served at once, told apart by the
request body:

- ``POST /api/fabric/conversations/join``: ``{"conversation_id"}`` joins an address's
  conversation (address dialect, answered ``{"table": ...}``): a room's by anyone, a
  subscriber's own address by its owner only (403 for anyone else; see "Membership");
  ``{"from_fabric_address_id", "fabric_address_ids"}`` joins the group of the set
  ``fabric_address_ids`` plus the from-address (group dialect). The group id is a uuid5 of
  the sorted set, so the same set always gives the same group; a set holding a room
  address is the room's one group, which grows with each join. 422 when the set has
  fewer than two addresses (a self-join) or a field is missing or ill-typed; 404 for an
  unknown address; 403 (code ``from_fabric_address_id_does_not_match_subscriber``)
  when the from-address is not the caller's. 200 ``{group_id, fabric_address_ids,
  from_fabric_address_id}``; joining again is harmless.
- ``POST /api/fabric/messages``: a body with ``group_id`` posts to a group (sender
  address ``from_fabric_address_id``, or 0.0.1's ``from_address_id``; the former wins):
  404 unknown group, 403 a from-address not the caller's or a caller not in the group,
  201 with the message object. Otherwise ``conversation_id`` as before.
- ``GET /api/fabric/conversations/{id}/messages``: ``{id}`` is a group id or an address
  id. For an address id the address-dialect conversation is served when the caller is
  a member of it (what 3.28 clients read); otherwise the caller's group with that
  address (for a room, the room's group; else the group of exactly that address and one
  of the caller's); otherwise 403 (a known address) or 404.

Membership in the address dialect follows the group dialect's rule that only a member
address joins: the conversation of a subscriber's own address is that subscriber's inbox.
Anyone may write to it (``POST /api/fabric/messages`` with its ``conversation_id``: 201,
delivered to the owner), but only the owner joins it, receives its events and reads its
history; another subscriber's join is 403, and writing to it makes the writer no member.
A room's conversation is public: whoever joins or writes to it is a member. (Before
this rule, anyone could join someone's own address and read everything ever sent to it.)

A room has one thread, read by both dialects: a message sent to the room's address
(address dialect) and one sent to the room's group are in the history of both, each
shown in the reader's dialect (a group id: the group shape; an address the caller joined:
the address shape). Group messages carry exactly the fields of the official types:
``id, type, subtype, kind, hidden, group_id, from_fabric_address_id, from_address_id``
(the same value), ``ts, metadata, details, text, conversation_name, user_name``, with
``kind`` and ``text`` null when absent and no ``user_id``; address-dialect messages keep
their shape (``user_id`` included). ``GET /api/fabric/messages`` shows each message in the
group shape when the caller is in its group, else in the address shape. The conversations list
gives groups as ``{id, group_id, from_fabric_address_id, from_address_id, name,
created_at, last_message_at, metadata}`` (the from-address is the caller's own in it).

Pages are ``{"data": [...], "links": {"first", "self", "next"?, "prev"?}}`` with absolute
links built from the request's scheme and Host; a link is omitted when there is no such
page. ``page_token`` is opaque: it encodes the listing, a direction and the sort key of
the boundary row, so a page never shifts when rows are inserted meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import math
import re
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from ._app import MAX_BODY_BYTES, FabricHTTPError
from ._store import Cursor, Dialect, DuplicateNameError, Page
from ._tokens import InvalidTokenError, SatClaims

if TYPE_CHECKING:
    from ._app import EmulatorState

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "NOT_SUBSCRIBERS_ADDRESS",
    "add_routes",
    "join_group_as",
    "room_of",
    "video_room_resource",
]

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
_ADDRESS_TYPES = ("app", "call", "room", "subscriber")
_ROOM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_MAX_FIELD = 255
_MAX_GROUP_ADDRESSES = 100
# The client's limits (its _validate module; the emulator imports nothing of the client):
# metadata/details nested deeper than 32 (the object itself is level 1) or larger than
# 16 KiB as compact UTF-8 JSON are refused with 422, as the client refuses to send them.
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 16 * 1024
# A page token the emulator wrote is under 200 characters; anything much longer is junk.
_MAX_PAGE_TOKEN = 1024
# Keyset values are sqlite INTEGERs (signed 64-bit): a larger one cannot be bound.
_MAX_SQL_INT = 2**63 - 1
NOT_SUBSCRIBERS_ADDRESS = "from_fabric_address_id_does_not_match_subscriber"
# Guest tokens: at most 10 addresses, each of the project (documented, with this code);
# reaching another address with a guest or invite token is refused with this code (inferred).
MAX_GUEST_ADDRESSES = 10
NOT_OF_PROJECT = "must_belong_to_project"
ADDRESS_NOT_ALLOWED = "address_not_allowed"

_STATE_KEY: web.AppKey[EmulatorState] = web.AppKey("signalwire_emulator_state")


def add_routes(app: web.Application, state: EmulatorState) -> None:
    """Register every REST route (and the relay's ``GET /``) on ``app``."""
    app[_STATE_KEY] = state
    r = app.router
    r.add_get("/", root)
    r.add_post("/api/fabric/subscribers/tokens", create_token)
    r.add_post("/api/fabric/subscribers/tokens/refresh", refresh_token)
    r.add_post("/api/fabric/guests/tokens", create_guest_token)
    r.add_post("/api/fabric/subscriber/invites", create_invite_token)
    r.add_post("/api/fabric/resources/video_rooms", create_video_room)
    r.add_get("/api/fabric/subscriber/info", subscriber_info)
    r.add_get("/api/fabric/addresses", list_addresses)
    r.add_get("/api/fabric/addresses/{address_id}", get_address)
    r.add_get("/api/fabric/conversations", list_conversations)
    r.add_post("/api/fabric/conversations/join", join_conversation)
    r.add_get("/api/fabric/conversations/{conversation_id}/messages", conversation_messages)
    r.add_get("/api/fabric/messages", list_messages)
    r.add_post("/api/fabric/messages", send_message)


def _state(request: web.Request) -> EmulatorState:
    return request.app[_STATE_KEY]


# -- the relay's path -------------------------------------------------------------------


async def root(request: web.Request) -> web.StreamResponse:
    """Hand a websocket upgrade to the relay hub; anything else is a 404."""
    hub = _state(request).hub
    if request.headers.get("Upgrade", "").lower() == "websocket" and hub is not None:
        response: web.StreamResponse = await hub.handle(request)
        return response
    raise FabricHTTPError(404, "the relay endpoint expects a websocket upgrade")


# -- credentials ------------------------------------------------------------------------


def _require_project(request: web.Request) -> None:
    state = _state(request)
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    challenge = {"WWW-Authenticate": 'Basic realm="SignalWire"'}
    if scheme.lower() != "basic" or not value:
        raise FabricHTTPError(401, "project credentials required", headers=challenge)
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise FabricHTTPError(401, "malformed Basic credentials", headers=challenge) from None
    project, _, token = decoded.partition(":")
    ok_project = hmac.compare_digest(project.encode(), state.project_id.encode())
    ok_token = hmac.compare_digest(token.encode(), state.api_token.encode())
    if not (ok_project and ok_token):
        raise FabricHTTPError(401, "invalid project credentials", headers=challenge)


def _require_subscriber(request: web.Request) -> tuple[SatClaims, dict[str, Any]]:
    state = _state(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise FabricHTTPError(401, "a Bearer subscriber access token is required")
    try:
        claims = state.tokens.verify_sat(token.strip())
    except InvalidTokenError as exc:
        raise FabricHTTPError(401, f"invalid subscriber access token: {exc}") from None
    if claims.project_id != state.project_id:
        raise FabricHTTPError(401, "the token belongs to another project")
    subscriber = state.store.get_subscriber(claims.subscriber_id)
    if subscriber is None:
        raise FabricHTTPError(401, "the token's subscriber does not exist")
    return claims, subscriber


# -- request bodies ---------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise FabricHTTPError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    if request.content_type != "application/json":
        raise FabricHTTPError(415, "the body must be application/json")
    try:
        raw = await asyncio.wait_for(request.read(), _state(request).idle_timeout)
    except web.HTTPRequestEntityTooLarge:
        raise FabricHTTPError(413, f"the body is larger than {MAX_BODY_BYTES} bytes") from None
    except asyncio.TimeoutError:
        raise FabricHTTPError(
            408, "the body did not arrive in time", headers={"Connection": "close"}
        ) from None
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FabricHTTPError(400, "the body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise FabricHTTPError(400, "the body must be a JSON object", code="invalid_json")
    try:
        # A lone surrogate (e.g. "\\ud800") parses but is no text: refuse it up front.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise FabricHTTPError(400, "the body holds invalid unicode", code="invalid_json") from None
    return data


def _missing(attribute: str) -> FabricHTTPError:
    return FabricHTTPError(
        422, f"{attribute} is required", code="missing_required_parameter", attribute=attribute
    )


def _invalid(attribute: str, message: str) -> FabricHTTPError:
    return FabricHTTPError(422, message, code="invalid_parameter", attribute=attribute)


def _required_str(body: dict[str, Any], name: str, *, max_length: int = _MAX_FIELD) -> str:
    value = body.get(name)
    if value is None:
        raise _missing(name)
    if not isinstance(value, str):
        raise _invalid(name, f"{name} must be a string")
    if not value.strip():
        raise _invalid(name, f"{name} must not be empty")
    if len(value) > max_length:
        raise _invalid(name, f"{name} is longer than {max_length} characters")
    return value


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(name, f"{name} must be a string")
    if len(value) > _MAX_FIELD:
        raise _invalid(name, f"{name} is longer than {_MAX_FIELD} characters")
    return value


def _optional_object(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid(name, f"{name} must be an object")
    if _json_depth_exceeds(value, MAX_JSON_DEPTH):
        raise _invalid(name, f"{name} is nested deeper than {MAX_JSON_DEPTH} levels")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > MAX_JSON_BYTES:
        raise _invalid(name, f"{name} is {size} bytes as JSON; at most {MAX_JSON_BYTES}")
    return value


def _json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether decoded JSON nests containers deeper than ``limit`` (an explicit stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > limit:
            return True
        for item in container.values() if isinstance(container, dict) else container:
            if isinstance(item, (dict, list)):
                stack.append((item, depth + 1))
    return False


def _known_address(request: web.Request, address_id: str) -> dict[str, Any]:
    address = _state(request).store.get_address(address_id)
    if address is None:
        raise FabricHTTPError(404, "address not found", attribute="conversation_id")
    return address


# -- pagination -------------------------------------------------------------------------


def _page_size(request: web.Request) -> int:
    raw = request.query.get("page_size")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    # str.isdigit() also accepts "²" and other digits int() refuses, and int() refuses
    # strings of more than 4,300 digits: only a few ASCII digits are ever parsed.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not (
        1 <= int(raw) <= MAX_PAGE_SIZE
    ):
        raise _invalid("page_size", f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


def _encode_token(listing: str, direction: str, key: tuple[Any, int]) -> str:
    raw = json.dumps([listing, direction, key[0], key[1]], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _cursor(request: web.Request, listing: str) -> Cursor | None:
    token = request.query.get("page_token")
    if token is None or token == "":
        return None
    bad = _invalid("page_token", "page_token is not valid for this listing")
    data = _decode_token(token)
    if not (isinstance(data, list) and len(data) == 4):
        raise bad
    name, direction, sort_value, seq = data
    if name != listing or direction not in ("next", "prev"):
        raise bad
    if not _valid_key(sort_value, seq):
        raise bad
    return Cursor(direction=direction, key=(sort_value, seq))


def _decode_token(token: str) -> Any:
    """The JSON inside a page token (400 when it is none)."""
    bad = _invalid("page_token", "page_token is not valid for this listing")
    if len(token) > _MAX_PAGE_TOKEN:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError):
        raise bad from None


def _valid_key(sort_value: Any, seq: Any) -> bool:
    """Whether a page token's key fits sqlite and the listing's sort column."""
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= _MAX_SQL_INT:
        return False
    if isinstance(sort_value, bool) or not isinstance(sort_value, (int, float, str)):
        return False
    if isinstance(sort_value, int):
        return -_MAX_SQL_INT <= sort_value <= _MAX_SQL_INT
    if isinstance(sort_value, float):
        return math.isfinite(sort_value)
    return len(sort_value) <= _MAX_FIELD


def _page_response(request: web.Request, listing: str, page: Page) -> web.Response:
    base = request.url.with_query([(k, v) for k, v in request.query.items() if k != "page_token"])
    links: dict[str, str] = {"first": str(base), "self": str(request.url)}
    if page.has_next and page.last_key is not None:
        token = _encode_token(listing, "next", page.last_key)
        links["next"] = str(base.extend_query(page_token=token))
    if page.has_prev and page.first_key is not None:
        token = _encode_token(listing, "prev", page.first_key)
        links["prev"] = str(base.extend_query(page_token=token))
    return web.json_response({"data": page.items, "links": links})


# -- project endpoints ------------------------------------------------------------------


async def create_token(request: web.Request) -> web.Response:
    """POST /api/fabric/subscribers/tokens: mint a SAT (creating the subscriber)."""
    _require_project(request)
    body = await _json_body(request)
    state = _state(request)
    reference = _required_str(body, "reference")
    _optional_str(body, "password")
    names = {k: _optional_str(body, k) for k in ("display_name", "first_name", "last_name")}
    # Sent by v4-era callers (client-bound SATs), and the profile fields of the OpenAPI's
    # request: accepted (checked) and not kept.
    for name in (
        "fingerprint",
        "application_id",
        "job_title",
        "time_zone",
        "country",
        "region",
        "company_name",
    ):
        _optional_str(body, name)
    scope = body.get("scope")
    if scope is not None and not (
        isinstance(scope, str)
        or (isinstance(scope, list) and all(isinstance(x, str) for x in scope))
    ):
        raise _invalid("scope", "scope must be a string or a list of strings")
    expire_at = _expiry(state, body, "expire_at")
    subscriber, _created = state.store.upsert_subscriber(reference, now=state.clock(), **names)
    answer = _new_tokens(state, subscriber["id"], expire_at=expire_at)
    return web.json_response({"subscriber_id": subscriber["id"], **answer}, status=201)


def _expiry(state: EmulatorState, body: dict[str, Any], name: str) -> float | None:
    """An optional expiry in ``body[name]``: unix seconds, in the future."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(name, f"{name} must be unix seconds")
    if not math.isfinite(value) or value <= state.clock():
        raise _invalid(name, f"{name} must be in the future")
    return float(value)


async def create_guest_token(request: web.Request) -> web.Response:
    """POST /api/fabric/guests/tokens: a token for a new guest, limited to some addresses."""
    _require_project(request)
    body = await _json_body(request)
    state = _state(request)
    allowed = body.get("allowed_addresses")
    if allowed is None:
        raise _missing("allowed_addresses")
    if (
        not isinstance(allowed, list)
        or not 1 <= len(allowed) <= MAX_GUEST_ADDRESSES
        or not all(isinstance(x, str) and x.strip() and len(x) <= _MAX_FIELD for x in allowed)
    ):
        raise _invalid(
            "allowed_addresses",
            f"allowed_addresses must hold 1 to {MAX_GUEST_ADDRESSES} address ids",
        )
    scope = tuple(dict.fromkeys(allowed))
    if any(state.store.get_address(address_id) is None for address_id in scope):
        raise FabricHTTPError(
            422,
            "The addresses must belong to the project",
            code=NOT_OF_PROJECT,
            attribute="allowed_addresses",
        )
    expire_at = _expiry(state, body, "expire_at")
    guest = _new_scoped_subscriber(state, "guest", "Guest")
    answer = _new_tokens(state, guest, expire_at=expire_at, allowed_addresses=scope)
    return web.json_response(answer, status=201)


async def create_invite_token(request: web.Request) -> web.Response:
    """POST /api/fabric/subscriber/invites: a token inviting someone to one address.

    The service documents a subscriber's SAT as the credential (the address is then one of
    the caller's); the official Python SDK sends it with the project's Basic credentials,
    so those are taken too (any subscriber address of the project).
    """
    state = _state(request)
    scheme = request.headers.get("Authorization", "").partition(" ")[0].lower()
    claims: SatClaims | None = None
    if scheme == "basic":
        _require_project(request)
    else:
        claims, _ = _require_subscriber(request)
    body = await _json_body(request)
    address_id = _required_str(body, "address_id")
    address = state.store.get_address(address_id)
    if address is None:
        raise FabricHTTPError(404, "address not found", attribute="address_id")
    if claims is not None:
        if claims.allowed_addresses is not None:
            raise FabricHTTPError(403, "a guest or invite token cannot invite")
        _require_own_address(state, claims.subscriber_id, address_id, "address_id")
    elif address["type"] != "subscriber":
        raise _invalid("address_id", "address_id must be a subscriber's address")
    expires_at = _expiry(state, body, "expires_at")
    invitee = _new_scoped_subscriber(state, "invitee", "Invitee")
    token, _ = state.tokens.mint_sat(
        invitee, state.project_id, expire_at=expires_at, allowed_addresses=(address_id,)
    )
    return web.json_response({"token": token}, status=201)


def _new_scoped_subscriber(state: EmulatorState, kind: str, display_name: str) -> str:
    """A new anonymous subscriber (with its own address) for a guest or invite token."""
    reference = f"{kind}-{uuid.uuid4().hex}@{kind}s.emulator.invalid"
    subscriber, _ = state.store.upsert_subscriber(
        reference, now=state.clock(), display_name=display_name
    )
    return str(subscriber["id"])


def _require_reachable(
    state: EmulatorState, claims: SatClaims, address_ids: list[str], attribute: str
) -> None:
    """Refuse (403) a guest or invite token reaching beyond its ``allowed_addresses``.

    Its own addresses are always reachable; a group with an allowed room address is
    reachable (the room's group holds every member's address).
    """
    scope = claims.allowed_addresses
    if scope is None:
        return
    allowed = set(scope) | set(state.store.address_ids_of(claims.subscriber_id))
    if any(address_id in scope for address_id in address_ids if _is_room(state, address_id)):
        return
    if not allowed.issuperset(address_ids):
        raise FabricHTTPError(
            403,
            "this token may not reach that address",
            code=ADDRESS_NOT_ALLOWED,
            attribute=attribute,
        )


def _is_room(state: EmulatorState, address_id: str) -> bool:
    address = state.store.get_address(address_id)
    return address is not None and address["type"] == "room"


def _require_reachable_group(
    state: EmulatorState, claims: SatClaims, group_id: str, attribute: str
) -> None:
    if claims.allowed_addresses is None:
        return
    group = state.store.get_group(group_id)
    address_ids = group["address_ids"] if group is not None else []
    _require_reachable(state, claims, address_ids, attribute)


async def refresh_token(request: web.Request) -> web.Response:
    """POST /api/fabric/subscribers/tokens/refresh: trade a refresh token for new tokens."""
    _require_project(request)
    body = await _json_body(request)
    state = _state(request)
    value = _required_str(body, "refresh_token", max_length=8192)
    try:
        claims = state.tokens.verify_refresh(value)
    except InvalidTokenError as exc:
        raise FabricHTTPError(401, f"invalid refresh token: {exc}") from None
    if claims.project_id != state.project_id or not state.store.get_subscriber(
        claims.subscriber_id
    ):
        raise FabricHTTPError(401, "invalid refresh token: unknown subscriber")
    # A guest's refresh keeps the guest's scope.
    answer = _new_tokens(state, claims.subscriber_id, allowed_addresses=claims.allowed_addresses)
    return web.json_response(answer, status=201)


def _new_tokens(
    state: EmulatorState,
    subscriber_id: str,
    *,
    expire_at: float | None = None,
    allowed_addresses: tuple[str, ...] | None = None,
) -> dict[str, str]:
    """The body of the token endpoints' 201 answer: a fresh SAT and a fresh refresh token."""
    token, _ = state.tokens.mint_sat(
        subscriber_id, state.project_id, expire_at=expire_at, allowed_addresses=allowed_addresses
    )
    refresh, _ = state.tokens.mint_refresh(
        subscriber_id, state.project_id, allowed_addresses=allowed_addresses
    )
    return {"token": token, "refresh_token": refresh}


async def create_video_room(request: web.Request) -> web.Response:
    """POST /api/fabric/resources/video_rooms: create a room resource and its address."""
    _require_project(request)
    body = await _json_body(request)
    state = _state(request)
    name = _required_str(body, "name", max_length=100)
    if not _ROOM_NAME.match(name):
        raise _invalid("name", "name may hold letters, digits, '.', '_' and '-' only")
    display_name = _optional_str(body, "display_name")
    description = _optional_str(body, "description") or ""
    try:
        resource, address = state.store.create_room(
            name, now=state.clock(), display_name=display_name, description=description
        )
    except DuplicateNameError:
        raise FabricHTTPError(
            422, "an address with this name exists", code="taken", attribute="name"
        ) from None
    return web.json_response(video_room_resource(resource, address, state.project_id), status=201)


def video_room_resource(
    resource: dict[str, Any], address: dict[str, Any], project_id: str
) -> dict[str, Any]:
    """Shape a video room resource the way the fabric resources API answers it."""
    created = address["created_at"]
    return {
        "id": resource["id"],
        "project_id": project_id,
        "display_name": resource["display_name"],
        "type": "video_room",
        "created_at": created,
        "updated_at": created,
        "video_room": {
            "id": resource["id"],
            "name": resource["name"],
            "display_name": resource["display_name"],
            "description": resource["description"],
            "join_from": None,
            "join_until": None,
            "max_members": 20,
            "quality": "720p",
            "remove_at": None,
            "remove_after_seconds_elapsed": None,
            "layout": "grid-responsive",
            "record_on_start": False,
            "enable_room_previews": False,
            "meta": {},
            "created_at": created,
            "updated_at": created,
        },
        "fabric_addresses": [address],
    }


# -- subscriber endpoints ---------------------------------------------------------------


async def subscriber_info(request: web.Request) -> web.Response:
    """GET /api/fabric/subscriber/info: the caller's subscriber object."""
    _claims, subscriber = _require_subscriber(request)
    return web.json_response(subscriber)


async def list_addresses(request: web.Request) -> web.Response:
    """GET /api/fabric/addresses: a page of addresses, filtered and sorted."""
    _require_subscriber(request)
    state = _state(request)
    q = request.query
    type_ = q.get("type") or None
    if type_ is not None and type_ not in _ADDRESS_TYPES:
        raise _invalid("type", f"type must be one of {', '.join(_ADDRESS_TYPES)}")
    sort_by = q.get("sort_by") or "created_at"
    if sort_by not in ("name", "created_at"):
        raise _invalid("sort_by", "sort_by must be name or created_at")
    sort_order = q.get("sort_order") or "asc"
    if sort_order not in ("asc", "desc"):
        raise _invalid("sort_order", "sort_order must be asc or desc")
    listing = f"addresses:{sort_by}:{sort_order}"
    page = state.store.list_addresses(
        page_size=_page_size(request),
        cursor=_cursor(request, listing),
        type_=type_,
        display_name=q.get("display_name") or None,
        name=q.get("name") or None,
        sort_by=sort_by,
        descending=sort_order == "desc",
    )
    return _page_response(request, listing, page)


async def get_address(request: web.Request) -> web.Response:
    """GET /api/fabric/addresses/{id}: one address."""
    claims, _ = _require_subscriber(request)
    state = _state(request)
    address = state.store.get_address(request.match_info["address_id"])
    if address is None:
        raise FabricHTTPError(404, "address not found")
    _require_reachable(state, claims, [address["id"]], "address_id")
    return web.json_response(address)


async def list_conversations(request: web.Request) -> web.Response:
    """GET /api/fabric/conversations: the caller's conversations, most recent first."""
    return _caller_page(request, "conversations", _state(request).store.list_conversations)


async def conversation_messages(request: web.Request) -> web.Response:
    """GET /api/fabric/conversations/{id}/messages: history, newest first.

    ``{id}`` is a group id, or an address id (see the module docstring for how an
    address id resolves).
    """
    claims, _ = _require_subscriber(request)
    state = _state(request)
    store = state.store
    key = request.match_info["conversation_id"]
    dialect: Dialect = "group"
    if store.is_group(key):
        if not store.is_member(key, claims.subscriber_id):
            raise FabricHTTPError(403, "you are not a member of this conversation")
        _require_reachable_group(state, claims, key, "conversation_id")
    elif store.get_address(key) is not None:
        _require_reachable(state, claims, [key], "conversation_id")
        if store.is_member(key, claims.subscriber_id):
            dialect = "address"
        else:
            group_id = store.pair_group(claims.subscriber_id, key)
            if group_id is None:
                raise FabricHTTPError(403, "you are not a member of this conversation")
            key = group_id
    else:
        raise FabricHTTPError(404, "conversation not found")
    page_size = _page_size(request)
    listing = "messages:" + key
    page = store.list_conversation_messages(
        key, dialect, page_size=page_size, cursor=_cursor(request, listing)
    )
    return _page_response(request, listing, page)


async def list_messages(request: web.Request) -> web.Response:
    """GET /api/fabric/messages: the messages of all the caller's conversations."""
    return _caller_page(request, "messages", _state(request).store.list_subscriber_messages)


class _CallerLister(Protocol):
    def __call__(self, subscriber_id: str, *, page_size: int, cursor: Cursor | None) -> Page: ...


def _caller_page(request: web.Request, listing: str, lister: _CallerLister) -> web.Response:
    """One page of a listing of the caller's own things (``lister(subscriber_id, ...)``)."""
    claims, _ = _require_subscriber(request)
    page = lister(
        claims.subscriber_id, page_size=_page_size(request), cursor=_cursor(request, listing)
    )
    return _page_response(request, listing, page)


async def send_message(request: web.Request) -> web.Response:
    """POST /api/fabric/messages: send a chat message (either dialect, by the body)."""
    claims, subscriber = _require_subscriber(request)
    state = _state(request)
    body = await _json_body(request)
    if "group_id" in body:
        return _send_to_group(state, claims, subscriber, body)
    conversation_id = _required_str(body, "conversation_id")
    text = _required_str(body, "text", max_length=state.max_text_length)
    metadata = _optional_object(body, "metadata")
    details = _optional_object(body, "details")
    _known_address(request, conversation_id)
    _require_reachable(state, claims, [conversation_id], "conversation_id")
    state.post_message(
        conversation_id=conversation_id,
        user_id=claims.subscriber_id,
        text=text,
        metadata=metadata,
        details=details,
    )
    # The shape 3.28.0's types expect; nothing more, so nothing else can confuse it.
    return web.json_response(
        {"table": {"conversation_id": conversation_id, "text": text}}, status=201
    )


def _send_to_group(
    state: EmulatorState, claims: SatClaims, subscriber: dict[str, Any], body: dict[str, Any]
) -> web.Response:
    group_id = _required_str(body, "group_id")
    text = _required_str(body, "text", max_length=state.max_text_length)
    # 0.0.1 spells the sender from_address_id; later clients from_fabric_address_id.
    spelling = "from_fabric_address_id" if "from_fabric_address_id" in body else "from_address_id"
    if spelling not in body:
        raise _missing("from_fabric_address_id")
    from_address_id = _required_str(body, spelling)
    metadata = _optional_object(body, "metadata")
    details = _optional_object(body, "details")
    store = state.store
    if not store.is_group(group_id):
        raise FabricHTTPError(404, "group not found", attribute="group_id")
    if from_address_id not in {a["id"] for a in subscriber["fabric_addresses"]}:
        raise _not_own_address(spelling)
    if not store.is_member(group_id, claims.subscriber_id):
        raise FabricHTTPError(403, "you are not a member of this group", attribute="group_id")
    _require_reachable_group(state, claims, group_id, "group_id")
    message = state.post_message(
        conversation_id=group_id,
        group_id=group_id,
        from_address_id=from_address_id,
        user_id=claims.subscriber_id,
        text=text,
        metadata=metadata,
        details=details,
        sender=subscriber,
    )
    return web.json_response(message, status=201)


def _require_own_address(
    state: EmulatorState, subscriber_id: str, address_id: str, attribute: str
) -> None:
    if address_id not in state.store.address_ids_of(subscriber_id):
        raise _not_own_address(attribute)


def _not_own_address(attribute: str) -> FabricHTTPError:
    return FabricHTTPError(
        403,
        f"{attribute} is not an address of the calling subscriber",
        code=NOT_SUBSCRIBERS_ADDRESS,
        attribute=attribute,
    )


async def join_conversation(request: web.Request) -> web.Response:
    """POST /api/fabric/conversations/join: join an address's conversation or a group."""
    claims, _ = _require_subscriber(request)
    state = _state(request)
    body = await _json_body(request)
    if "conversation_id" not in body and (
        "fabric_address_ids" in body or "from_fabric_address_id" in body
    ):
        return _join_group(state, claims, body)
    conversation_id = _required_str(body, "conversation_id")
    _known_address(request, conversation_id)
    _require_reachable(state, claims, [conversation_id], "conversation_id")
    if not state.store.may_join(conversation_id, claims.subscriber_id):
        raise FabricHTTPError(
            403,
            "only its owner may join a subscriber's own address; write to it instead",
            attribute="conversation_id",
        )
    state.store.join(conversation_id, claims.subscriber_id, now=state.clock())
    return web.json_response({"table": {"conversation_id": conversation_id}})


def _group_addresses(body: dict[str, Any]) -> tuple[str, list[str]]:
    """Validate a group join body; return the from-address and the set (from included)."""
    from_address_id = _required_str(body, "from_fabric_address_id")
    ids = body.get("fabric_address_ids")
    if ids is None:
        raise _missing("fabric_address_ids")
    if not isinstance(ids, list) or not ids:
        raise _invalid("fabric_address_ids", "fabric_address_ids must be a non-empty list")
    if len(ids) > _MAX_GROUP_ADDRESSES:
        raise _invalid(
            "fabric_address_ids", f"fabric_address_ids holds more than {_MAX_GROUP_ADDRESSES}"
        )
    for item in ids:
        if not isinstance(item, str) or not item.strip() or len(item) > _MAX_FIELD:
            raise _invalid("fabric_address_ids", "fabric_address_ids must hold address ids")
    return from_address_id, list(dict.fromkeys([*ids, from_address_id]))


def _join_group(state: EmulatorState, claims: SatClaims, body: dict[str, Any]) -> web.Response:
    from_address_id, address_ids = _group_addresses(body)
    room_of(state, address_ids)  # unknown addresses are a 404 first, as for anyone
    _require_reachable(state, claims, address_ids, "fabric_address_ids")
    group = join_group_as(state, claims.subscriber_id, from_address_id, address_ids)
    return web.json_response(
        {
            "group_id": group["group_id"],
            "fabric_address_ids": group["address_ids"],
            "from_fabric_address_id": from_address_id,
        }
    )


def room_of(state: EmulatorState, address_ids: list[str]) -> str | None:
    """Return the room address of a set (None without one).

    Raises:
        FabricHTTPError: 404 for an unknown address, 422 for a set with two rooms.
    """
    rooms = []
    for address_id in address_ids:
        address = state.store.get_address(address_id)
        if address is None:
            raise FabricHTTPError(404, "address not found", attribute="fabric_address_ids")
        if address["type"] == "room":
            rooms.append(address_id)
    if len(rooms) > 1:
        raise _invalid("fabric_address_ids", "a group holds at most one room address")
    return rooms[0] if rooms else None


def join_group_as(
    state: EmulatorState, subscriber_id: str, from_address_id: str, address_ids: list[str]
) -> dict[str, Any]:
    """Join the group of a set of addresses as a subscriber, with the REST call's rules.

    Args:
        state: The emulator's state.
        subscriber_id: The caller.
        from_address_id: The caller's address.
        address_ids: The set, the from-address included, duplicates removed.

    Returns:
        The group (``group_id``, ``name``, ``from_address_id``, ``address_ids``).

    Raises:
        FabricHTTPError: 404 unknown address, 403 a from-address not the caller's,
            422 fewer than two addresses or two rooms.
    """
    room_id = room_of(state, address_ids)
    _require_own_address(state, subscriber_id, from_address_id, "from_fabric_address_id")
    if len(address_ids) < 2:
        raise _invalid("fabric_address_ids", "you can't message your own address")
    return state.store.join_group(
        subscriber_id=subscriber_id,
        from_address_id=from_address_id,
        address_ids=address_ids,
        room_id=room_id,
        now=state.clock(),
    )
