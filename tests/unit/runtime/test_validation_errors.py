"""One wording for every pydantic validation error we show (tool arguments, request envelopes, the cluster config,
settings): each bad field named with the reason, never the rejected value."""

from __future__ import annotations

from typing import Literal

import pytest
from proxmox_mcp_runtime.validation_errors import describe_validation_error
from pydantic import BaseModel, Field, ValidationError, field_validator

SECRET = "hunter2-do-not-echo"


class Inner(BaseModel):
    port: int = Field(ge=1, le=65535)


class Args(BaseModel):
    vmid: int
    mode: Literal["fast", "safe"] = "safe"
    inner: Inner | None = None
    name: str = Field(default="x", pattern=r"^[a-z]+$")

    @field_validator("name")
    @classmethod
    def _not_root(cls, value: str) -> str:
        if value == "root":
            raise ValueError("root is reserved")
        return value


def _error(model: type[BaseModel], data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return caught.value


def test_each_bad_field_is_named_with_the_reason_in_order() -> None:
    message = describe_validation_error(_error(Args, {"vmid": "abc", "mode": "turbo"}))
    vmid, mode = message.split("; ")
    assert vmid.startswith("vmid: ") and "integer" in vmid
    assert mode.startswith("mode: ") and "'fast' or 'safe'" in mode


def test_a_nested_field_is_named_by_its_dotted_path() -> None:
    message = describe_validation_error(_error(Args, {"vmid": 1, "inner": {"port": 0}}))
    assert message.startswith("inner.port: ") and "greater than or equal to 1" in message


def test_rejected_values_are_never_echoed() -> None:
    for data in ({"vmid": SECRET}, {"vmid": 1, "name": SECRET}, {"vmid": 1, "mode": SECRET},
                 {"vmid": 1, "inner": {"port": SECRET}}):
        assert SECRET not in describe_validation_error(_error(Args, data))


def test_a_problem_with_the_whole_input_is_named_as_the_caller_says() -> None:
    error = _error(Args, ["not", "an", "object"])
    assert describe_validation_error(error).startswith("arguments: ")
    assert describe_validation_error(error, whole="request").startswith("request: ")
    assert not describe_validation_error(error, whole=None).startswith(":")


def test_a_validators_own_reason_is_shown_without_pydantics_prefix() -> None:
    assert describe_validation_error(_error(Args, {"vmid": 1, "name": "root"})) == "name: root is reserved"
