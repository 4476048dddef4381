"""What readers say to each other is data: classified by structure, never by wording.

Every reworded message below would have been misread by the old runner, which
parsed the plugin's English ("retry after ... (in N s)", "no stack named").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from sidecar.answers import (
    ANSWER_METADATA,
    NotReadyYet,
    Refusal,
    Status,
    check_name,
    check_new_name,
    creds_path,
    is_name,
    parse_phase,
)
from sidecar.errors import (
    InputError,
    NotFoundError,
    NotReadyError,
    VaultError,
    VaultForbidden,
)
from sidecar.model import Phase
from sidecar.plugin.path_creds import _not_ready, refusal_response
from sidecar.resolver import rpc
from sidecar.resolver.client import ResolverClient
from sidecar.resolver.server import _refuse
from sidecar.runner.source import _refusal
from sidecar.vault import PathRefusal, check_segment

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
READY_AT = NOW + timedelta(minutes=9, seconds=30)


# -- names, phases, the path ------------------------------------------------------------


@pytest.mark.parametrize("good", ["A", "stack-1", "a.b_c", "x" * 128])
def test_a_name_is_one_safe_segment(good: str) -> None:
    assert is_name(good) and check_name(good, "stack") == good
    assert check_segment(good, "stack name") == good


@pytest.mark.parametrize(
    "bad", ["", "..", "a..b", "../x", "a/b", "-x", "a\nb", "a\n", "x" * 129, 7]
)
def test_every_reader_refuses_the_same_names(bad: object) -> None:
    assert not is_name(bad)
    with pytest.raises(InputError, match="invalid stack name"):
        check_name(bad, "stack")
    if isinstance(bad, str):
        with pytest.raises(VaultError, match="invalid stack name"):
            check_segment(bad, "stack name")


def test_a_new_integration_name_is_stricter() -> None:
    assert check_new_name("web-1") == "web-1"
    for bad in ("Web", "a.b", "a_b", "x" * 64):
        assert is_name(bad)  # fine to read, not to create
        with pytest.raises(InputError, match="invalid integration name"):
            check_new_name(bad)
    with pytest.raises(InputError, match="invalid integration name"):
        check_new_name("web\n")


def test_phase_is_plan_or_apply_exactly() -> None:
    assert parse_phase("plan") is Phase.PLAN and parse_phase("apply") is Phase.APPLY
    for bad in ("PLAN", "deploy", "", None):
        with pytest.raises(InputError, match="invalid phase"):
            parse_phase(bad)


def test_creds_path_shape() -> None:
    assert creds_path("azsidecar", "A", Phase.APPLY) == "azsidecar/creds/A/apply"
    assert creds_path("/team/azure/", "A", Phase.PLAN) == "team/azure/creds/A/plan"


# -- the answer as data ---------------------------------------------------------------


def test_not_ready_counts_the_wait_on_the_servers_clock() -> None:
    refusal = Refusal.not_ready("m", NotReadyError("propagating", READY_AT), NOW)
    assert refusal.retry_after == timedelta(seconds=570)
    assert refusal.to_data() == {
        "status": "not_ready",
        "message": "m",
        "ready_at": "2026-03-01T12:09:30Z",
        "retry_after_seconds": 570,
        "reason": "propagating",
    }
    assert Refusal.from_data(refusal.to_data()) == refusal


@pytest.mark.parametrize(
    "data",
    [None, [], "not_found", {}, {"status": "ready"}, {"status": "gone"}, {"message": "x"}],
)
def test_no_answer_is_no_refusal(data: Any) -> None:
    assert Refusal.from_data(data, "text") is None


def test_a_malformed_time_or_count_is_dropped_not_fatal() -> None:
    refusal = Refusal.from_data(
        {"status": "not_ready", "ready_at": "soon", "retry_after_seconds": "9"}, "text"
    )
    assert refusal is not None
    assert (refusal.message, refusal.ready_at, refusal.retry_after) == ("text", None, None)


def test_each_status_is_its_error() -> None:
    not_ready = Refusal(Status.NOT_READY, "m", READY_AT, timedelta(seconds=3)).error()
    assert isinstance(not_ready, NotReadyYet)
    assert (not_ready.ready_at, not_ready.retry_after) == (READY_AT, timedelta(seconds=3))
    assert isinstance(Refusal.not_found("m").error(), NotFoundError)
    assert isinstance(Refusal.denied("m").error(), VaultForbidden)


# -- the plugin's wire: response data, read by the runner ---------------------------------


def _as_openbao_sends(response_data: Mapping[str, Any]) -> PathRefusal:
    """OpenBao turns an error response into 400 ``{"errors": [error], "data": data}``."""
    return PathRefusal([response_data["error"]], response_data.get("data"))


def test_the_runner_reads_the_plugins_not_ready_whatever_its_words() -> None:
    response = _not_ready(NotReadyError("propagating", READY_AT), "A", Phase.PLAN, NOW)
    reworded = dict(response.data, error="Geduld: noch nicht bereit")
    reworded["data"] = dict(response.data["data"], message="Geduld: noch nicht bereit")
    for data in (response.data, reworded):
        error = _refusal(_as_openbao_sends(data))
        assert isinstance(error, NotReadyYet)
        assert error.ready_at == READY_AT
        assert error.retry_after == timedelta(seconds=570)
    assert str(_refusal(_as_openbao_sends(reworded))) == "Geduld: noch nicht bereit"


def test_the_runner_reads_not_found_whatever_its_words() -> None:
    response = refusal_response(Refusal.not_found("kein Stapel namens 'C'"))
    error = _refusal(_as_openbao_sends(response.data))
    assert isinstance(error, NotFoundError) and "kein Stapel" in str(error)


def test_the_runner_no_longer_parses_prose() -> None:
    """The old markers without the data are just the plugin refusing (an older plugin)."""
    for words in (
        "no stack named 'C'",
        "no ready credential yet: retry after 2026-03-01T12:09:30Z (in 570 s)",
    ):
        error = _refusal(PathRefusal([words], None))
        assert type(error) is VaultError and words in str(error)


# -- the resolver's wire: trailing metadata, read by the client ---------------------------


class _Context:
    """What the server's handler writes to: the trailing metadata, then an abort."""

    def __init__(self) -> None:
        self.trailing: tuple[tuple[str, Any], ...] = ()

    def set_trailing_metadata(self, metadata: tuple[tuple[str, Any], ...]) -> None:
        self.trailing = metadata

    def abort(self, code: Any, details: str) -> None:
        raise _Aborted(code, details, self.trailing)


class _Aborted(grpc.RpcError):  # type: ignore[misc]
    """What the client receives: code, details and trailing metadata."""

    def __init__(self, code: Any, details: str, trailing: Any) -> None:
        super().__init__(details)
        self._code, self._details, self._trailing = code, details, trailing

    def code(self) -> Any:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailing


def _over_the_wire(code: Any, refusal: Refusal, details: str | None = None) -> Exception:
    context = _Context()
    with pytest.raises(_Aborted) as sent:
        _refuse(context, code, refusal)
    received = _Aborted(
        sent.value.code(),
        sent.value.details() if details is None else details,
        sent.value.trailing_metadata(),
    )
    client = ResolverClient("127.0.0.1:9")
    try:
        return client._translate(received)
    finally:
        client.close()


def test_the_resolver_sends_the_answer_beside_the_old_keys() -> None:
    context = _Context()
    refusal = Refusal.not_ready("m", NotReadyError("propagating", READY_AT), NOW)
    with pytest.raises(_Aborted):
        _refuse(context, grpc.StatusCode.FAILED_PRECONDITION, refusal)
    trailing = dict(context.trailing)
    assert json.loads(trailing[ANSWER_METADATA]) == refusal.to_data()
    assert trailing[rpc.READY_AT_METADATA] == "2026-03-01T12:09:30Z"
    assert trailing[rpc.RETRY_AFTER_METADATA] == "570"


def test_the_client_reads_the_resolvers_answer_not_its_code_or_words() -> None:
    not_ready = Refusal.not_ready("anders", NotReadyError("propagating", READY_AT), NOW)
    # A proxy that rewrote the code and the details changes nothing: the answer decides.
    error = _over_the_wire(grpc.StatusCode.UNKNOWN, not_ready, details="something else")
    assert isinstance(error, NotReadyYet)
    assert (error.ready_at, error.retry_after) == (READY_AT, timedelta(seconds=570))
    found = _over_the_wire(grpc.StatusCode.UNKNOWN, Refusal.not_found("weg"))
    assert isinstance(found, NotFoundError) and "weg" in str(found)
    denied = _over_the_wire(grpc.StatusCode.UNKNOWN, Refusal.denied("nein"))
    assert isinstance(denied, VaultForbidden) and "nein" in str(denied)


def test_the_client_still_understands_a_resolver_without_the_answer() -> None:
    old = _Aborted(
        grpc.StatusCode.FAILED_PRECONDITION,
        "stack A phase plan: propagating",
        ((rpc.READY_AT_METADATA, "2026-03-01T12:09:30Z"), (rpc.RETRY_AFTER_METADATA, "570")),
    )
    client = ResolverClient("127.0.0.1:9")
    try:
        error = client._translate(old)
    finally:
        client.close()
    assert isinstance(error, NotReadyYet)
    assert (error.ready_at, error.retry_after) == (READY_AT, timedelta(seconds=570))
    assert "retry after 2026-03-01T12:09:30Z (in 570 s)" in str(error)
