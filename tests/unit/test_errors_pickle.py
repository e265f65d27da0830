"""Every exception survives pickling and copying with its attributes.

A web app hands work to a ``ProcessPoolExecutor`` (or a task queue with the pickle
serializer): a ``NotFoundError`` raised in the worker is pickled back to the parent. One
that cannot be rebuilt there broke the whole pool (``BrokenProcessPool``).
"""

from __future__ import annotations

import concurrent.futures
import copy
import multiprocessing
import os
import pickle

import pytest

from signalwire_chat import errors
from signalwire_chat.errors import FabricErrorDetail

_DETAIL = FabricErrorDetail(type="validation_error", code="too_long", message="m", attribute="text")
_API = {
    "errors": [_DETAIL],
    "request_id": "r-1",
    "method": "POST",
    "url": "https://x/api",
    "body": "{}",
}

_SAMPLES: list[errors.ChatError] = [
    errors.ChatError("chat"),
    errors.ClientClosedError("closed"),
    errors.InvalidArgumentError("bad"),
    errors.InvalidArgumentTypeError("bad type"),
    errors.TokenError("token"),
    errors.NoAddressError("none"),
    errors.InsecureURLError("http"),
    errors.TokenUnavailableError("later"),
    errors.TransportError("t", method="GET", url="https://x"),
    errors.ConnectError("c", method="GET", url="https://x"),
    errors.RequestTimeoutError("slow", method="GET", url="https://x"),
    errors.DecodeError("d", field="data.0"),
    errors.ResponseTooLargeError("big", limit=1024),
    errors.UnsafeLinkError("link"),
    errors.PageLimitError("pages", limit=100),
    errors.APIError("api", status=418, **_API),
    errors.BadRequestError("400", status=400, **_API),
    errors.AuthenticationError("401", status=401, **_API),
    errors.PermissionDeniedError("403", status=403, **_API),
    errors.NotFoundError("404", status=404, **_API),
    errors.ValidationError("422", status=422, **_API),
    errors.RateLimitError("429", status=429, retry_after=2.5, **_API),
    errors.ServerError("503", status=503, **_API),
    errors.RealtimeError("rt"),
    errors.RealtimeAuthenticationError("refused", rpc_code=-32002),
    errors.RealtimeConnectError("down", permanent=True),
    errors.MessagesMayBeMissingError("gap", address_id="a", last_message_id="m"),
    errors.CheckpointNotFoundError("cp", address_id=None, last_message_id="m", checkpoint_key="k"),
    errors.SlowCallbackError("slow", address_id="a", elapsed=3.0),
    errors.CallbackError("raised", address_id=None),
    errors.StoreError("store"),
    errors.StoreUnavailableError("away"),
    errors.CorruptCheckpointError("corrupt", key="k"),
    errors.FencedWriteError("fenced", fencing_token=7),
    errors.LeaseTimeoutError("lease"),
]


def test_every_exported_exception_has_a_sample() -> None:
    exported = {
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), errors.ChatError)
    }
    assert exported == {type(sample).__name__ for sample in _SAMPLES}


@pytest.mark.parametrize("sample", _SAMPLES, ids=lambda sample: type(sample).__name__)
def test_an_exception_pickles_and_copies_with_its_attributes(sample: errors.ChatError) -> None:
    for again in (pickle.loads(pickle.dumps(sample)), copy.copy(sample), copy.deepcopy(sample)):
        assert type(again) is type(sample)
        assert str(again) == str(sample)
        assert again.args == sample.args
        assert vars(again) == vars(sample)


def _raise_not_found() -> None:
    raise errors.NotFoundError("no such address", status=404, method="POST", url="https://x")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs the fork start method")
def test_an_api_error_raised_in_a_process_pool_reaches_the_caller() -> None:
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        with pytest.raises(errors.NotFoundError) as raised:
            pool.submit(_raise_not_found).result(timeout=30)
        assert (raised.value.status, raised.value.method) == (404, "POST")
        assert pool.submit(int, "3").result(timeout=30) == 3  # the pool still works
