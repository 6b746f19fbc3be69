"""Settings errors in the words of the environment: the variable a user set and what is wrong with its value."""

from __future__ import annotations

from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

from proxmox_mcp_runtime.validation_errors import describe_validation_error


def variable_name(settings_type: type[BaseSettings], field_name: str) -> str:
    """The environment variable that sets a field (its alias, or the prefixed upper-case name)."""
    field = settings_type.model_fields.get(field_name)
    if field is None:
        return field_name  # already an alias, or not a field
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices) and alias.choices and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return (str(settings_type.model_config.get("env_prefix", "")) + field_name).upper()


def describe_settings_error(exc: ValidationError, settings_type: type[BaseSettings]) -> str:
    """One line per problem: `PMCP_RATE_LIMIT: rate limit 'lots': expected N/PERIOD ...`."""
    return describe_validation_error(exc, whole=None, rename_first=lambda field: variable_name(settings_type, field))
