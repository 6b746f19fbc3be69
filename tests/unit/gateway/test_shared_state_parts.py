"""The parts of PMCP_STATE=jetstream that need no server: the token snapshot and what the authenticator does
with it, the audit log with a replica, how a failed replica fails the call, rate windows and name tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import nats.errors
import nats.js.errors
import pytest
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_gateway.access import AccessPolicy
from proxmox_mcp_gateway.audit import AuditError, AuditLog
from proxmox_mcp_gateway.auth import AuthStatus, TokenAuthenticator, TokenRecord, digest_secret
from proxmox_mcp_gateway.calls import CallLimits, CallSecurity, ToolExecutor
from proxmox_mcp_gateway.jetstream_calls import DUPLICATE_IN_PROCESS, name_token, until_answered
from proxmox_mcp_gateway.limits import CallLimiter, RateSpec
from proxmox_mcp_gateway.shared_limits import Window
from proxmox_mcp_gateway.token_kv import TokenSnapshot
from proxmox_mcp_gateway.tokens import TokenGrant
from proxmox_mcp_runtime.kv import KvEntry

from tests.unit.gateway.fakes import FakeBus
from tests.unit.gateway.test_calls import caller, records


def _entry_of(grant: TokenGrant) -> tuple[str, KvEntry]:
    new = grant.mint()
    return new.secret, KvEntry(f"token.{new.entry.id}", new.entry.model_dump_json().encode(), 1)


def test_stored_tokens_are_refused_as_not_loaded_until_the_snapshot_is_but_static_ones_work() -> None:
    snapshot = TokenSnapshot()
    secret, entry = _entry_of(TokenGrant.checked(name="a", scope=Scope.READ))
    static = "pmcp_0123456789ab_" + "S" * 43  # a static token may look like a stored one
    auth = TokenAuthenticator([TokenRecord("static", digest_secret(static), Scope.ADMIN)], source=snapshot)
    snapshot.apply(entry)
    assert auth.check(secret).status is AuthStatus.UNAVAILABLE
    assert auth.check(static).status is AuthStatus.OK
    snapshot.loaded = True
    result = auth.check(secret)
    assert result.status is AuthStatus.OK and result.caller is not None and result.caller.scope is Scope.READ


def test_the_snapshot_follows_changes_and_deletions_and_refuses_a_damaged_entry() -> None:
    snapshot = TokenSnapshot()
    snapshot.loaded = True
    secret, entry = _entry_of(TokenGrant.checked(name="a", scope=Scope.READ))
    auth = TokenAuthenticator([], source=snapshot)
    snapshot.apply(entry)
    snapshot.apply(KvEntry("name.abc", b"ignored", 2))
    snapshot.apply(KvEntry("meta.file-import", b"{}", 3))
    assert auth.check(secret).status is AuthStatus.OK and len(snapshot.current()) == 1
    snapshot.apply(KvEntry(entry.key, b"{damaged", 4))
    assert auth.check(secret).status is AuthStatus.INVALID
    snapshot.apply(entry)
    snapshot.apply(KvEntry(entry.key, None, 5))
    assert auth.check(secret).status is AuthStatus.INVALID and not snapshot.current()


class Replica:
    def __init__(self, fail: AuditError | None = None) -> None:
        self.fail = fail
        self.lines: list[bytes] = []

    async def store(self, line: bytes, message_id: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.lines.append(line)


async def test_a_record_goes_to_the_file_and_the_replica_and_the_same_line_to_both(tmp_path: Path) -> None:
    replica = Replica()
    log = AuditLog(tmp_path / "a.jsonl", replica=replica)
    await log.append({"event": "tool_call", "n": 1})
    assert (tmp_path / "a.jsonl").read_bytes() == replica.lines[0] + b"\n"
    assert log.healthy


async def test_a_replica_that_does_not_answer_fails_the_append_and_marks_the_log_unhealthy(tmp_path: Path) -> None:
    replica = Replica(AuditError("no quorum", unavailable=True))
    seen: list[Exception] = []
    log = AuditLog(tmp_path / "a.jsonl", replica=replica, on_failure=seen.append)
    with pytest.raises(AuditError, match="no quorum"):
        await log.append({"event": "tool_call"})
    assert not log.healthy and log.failures == 1 and len(seen) == 1
    replica.fail = None
    await log.append({"event": "tool_call"})
    assert log.healthy


async def test_a_call_whose_record_the_stream_refuses_fails_unavailable_and_names_the_reason(tmp_path: Path) -> None:
    replica = Replica(AuditError("the audit record could not be stored: no quorum of the audit stream PMCP_AUDIT",
                                 unavailable=True))
    audit = AuditLog(tmp_path / "audit.jsonl", replica=replica)
    executor = ToolExecutor(cast(Any, FakeBus()), CallLimits(), CallSecurity(access=AccessPolicy(), audit=audit))
    with pytest.raises(ServiceFailure) as caught:
        await executor.call("vm_action", {"vmid": 100, "node": "pve1", "action": "start"}, caller(Scope.ADMIN),
                            transport="test")
    info = caught.value.info
    assert info.code is ErrorCode.UNAVAILABLE and info.retryable is True, info
    assert "no quorum of the audit stream PMCP_AUDIT" in info.message and "not performed" in info.message
    assert records(tmp_path / "audit.jsonl")[0]["event"] == "tool_call_started"  # the file has it all the same


async def test_the_local_limiter_serves_the_async_interface_the_call_path_uses() -> None:
    limiter = CallLimiter(per_token=RateSpec.parse("1/m"), max_concurrent=1)
    await limiter.admit("t", "list_vms")
    with pytest.raises(ServiceFailure, match="rate limit"):
        await limiter.admit("t", "list_vms")
    async with limiter.slot("t"):
        with pytest.raises(ServiceFailure, match="calls running"):
            async with limiter.slot("t"):
                pass
    async with limiter.slot("t"):
        pass


def test_a_window_counts_whole_calls_and_names_its_stream_after_its_spec() -> None:
    spec = RateSpec.parse("2.5/500ms")
    assert spec is not None
    window = Window.of(spec)
    assert (window.capacity, window.period) == (2, 0.5)
    assert window.stream == ("PMCP_RATE_2_500", "pmcp.rate.2_500")
    config = window.config(replicas=3)
    assert config.max_msgs_per_subject == 2 and config.discard_new_per_subject is True
    assert config.duplicate_window == 0.5 and config.num_replicas == 3


def test_ids_that_cannot_be_subject_tokens_become_digests() -> None:
    assert name_token("0123456789ab") == "0123456789ab" and name_token("static") == "static"
    for odd in ("oauth:user@example.org", "a.b", "has space", "x" * 65, ""):
        token = name_token(odd)
        assert token.startswith("h") and len(token) == 33 and token.isalnum()
    assert name_token("a.b") != name_token("a:b")


def _in_process() -> nats.js.errors.APIError:
    return nats.js.errors.APIError(code=409, err_code=DUPLICATE_IN_PROCESS,
                                   description="duplicate message id is in process")


async def test_a_publish_the_leader_still_holds_is_sent_again_until_it_is_acknowledged() -> None:
    answers: list[BaseException | int] = [_in_process(), _in_process(), 7]

    async def attempt(_seconds: float) -> int:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    assert await until_answered(attempt, timeout=5) == 7
    assert not answers


async def test_a_publish_still_in_process_at_the_deadline_is_unanswered_not_refused() -> None:
    async def attempt(_seconds: float) -> int:
        raise _in_process()

    with pytest.raises(nats.errors.TimeoutError):
        await until_answered(attempt, timeout=0.1)


async def test_another_refusal_of_the_stream_is_raised_at_once() -> None:
    tried: list[float] = []

    async def attempt(seconds: float) -> int:
        tried.append(seconds)
        raise nats.js.errors.APIError(code=400, err_code=10071, description="wrong last sequence")

    with pytest.raises(nats.js.errors.APIError):
        await until_answered(attempt, timeout=5)
    assert len(tried) == 1
