"""Settings errors in the validation errors' wording, each field named by the variable that sets it."""

from __future__ import annotations

import pytest
from proxmox_mcp_runtime.settings_errors import describe_settings_error
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET = "hunter2-do-not-echo"


def test_the_first_location_part_can_be_renamed_for_settings() -> None:
    class Settings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="PMCP_")
        rate: int = 1

    with pytest.raises(ValidationError) as caught:
        Settings(rate=SECRET)  # type: ignore[arg-type]
    message = describe_settings_error(caught.value, Settings)
    assert message.startswith("PMCP_RATE: ") and SECRET not in message
