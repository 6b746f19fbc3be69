"""Settings errors in the words of the environment: the variable a user set and what is wrong with its value."""

from __future__ import annotations

from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings


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
    problems = []
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        if location:
            location[0] = variable_name(settings_type, location[0])
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{'.'.join(location)}: {message}" if location else message)
    return "; ".join(problems)
