"""The generic argument parser and value kinds of a rule's ArgSpec. Standard library only.

Parsing follows GNU getopt closely enough to see every option the real program would see: options may
appear after positionals, "--" ends them, short options combine ("-la") or take an attached value
("-n5"), long options take "=value" or the next word. Long options must be spelled out exactly: getopt's
unambiguous-prefix matching ("--fol" for "--follow") is exactly what a blocklist misses, so any unknown
spelling is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .model import ArgSpec, PathResolver, PolicyError
from .paths import check_device, check_path

_WORD = re.compile(r"[A-Za-z0-9_.:@%+=,/][A-Za-z0-9_.:@%+=,/-]{0,255}")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}")
_INT = re.compile(r"-?[0-9]{1,12}")
_NUM = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,6})?")
MAX_TEXT = 4096


@dataclass
class ParsedArgs:
    """Options in the order given (flags have value None), positionals, and the normalised paths seen."""

    options: list[tuple[str, str | None]] = field(default_factory=list[tuple[str, str | None]])
    positionals: list[str] = field(default_factory=list[str])
    paths: list[str] = field(default_factory=list[str])

    def has(self, *names: str) -> bool:
        return any(name in names for name, _ in self.options)

    def values(self, *names: str) -> list[str]:
        return [value for name, value in self.options if name in names and value is not None]


def _range(kind: str, spec: str) -> tuple[float, float]:
    try:
        low, high = spec.split(":")
        return float(low), float(high)
    except ValueError:
        raise PolicyError(f"bad value kind {kind!r} in the policy") from None


def check_value(kind: str, value: str, what: str, parsed: ParsedArgs, resolve: PathResolver | None) -> None:
    """Refuse value unless it is of the given kind. `what` names the argument in messages."""
    name, _, spec = kind.partition(":")
    if name in ("int", "num", "vmid"):
        pattern = _NUM if name == "num" else _INT
        if not pattern.fullmatch(value):
            raise PolicyError(f"{what} must be {'a number' if name == 'num' else 'an integer'}, got {value!r}")
        number = float(value)
        low, high = (100.0, 999_999_999.0) if name == "vmid" else _range(kind, spec) if spec else (0.0, 1e12)
        if not low <= number <= high:
            raise PolicyError(f"{what} must be between {low:g} and {high:g}, got {value}")
    elif name == "path":
        parsed.paths.append(check_path(value, resolve))
    elif name == "device":
        check_device(value)
    elif name == "word":
        if not _WORD.fullmatch(value):
            raise PolicyError(f"{what} {value!r} must be a plain word (letters, digits, _.:@%+=,/-)")
    elif name == "name":
        if not _NAME.fullmatch(value):
            raise PolicyError(f"{what} {value!r} must be a simple name (letters, digits, _.:@-)")
    elif name == "text":
        if len(value) > MAX_TEXT:
            raise PolicyError(f"{what} is longer than {MAX_TEXT} characters")
    elif name == "choice":
        choices = spec.split("|")
        if value not in choices:
            raise PolicyError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
    elif name == "regex":
        if not re.fullmatch(spec, value):
            raise PolicyError(f"{what} {value!r} is not in the allowed form")
    else:
        raise PolicyError(f"unknown value kind {kind!r} in the policy")


def _positional_kind(spec: ArgSpec, index: int) -> str:
    if not spec.positionals:
        return "word"
    return spec.positionals[min(index, len(spec.positionals) - 1)]


def _long_option(spec: ArgSpec, args: list[str], index: int, parsed: ParsedArgs, resolve: PathResolver | None) -> int:
    token = args[index]
    name, has_value, value = token.partition("=")
    if name in spec.flags and not has_value:
        parsed.options.append((name, None))
        return index + 1
    if name not in spec.options:
        if name in spec.flags:
            raise PolicyError(f"option {name} takes no value")
        raise PolicyError(f"option {name} is not allowed")
    if not has_value:
        if name in spec.attached_only:
            raise PolicyError(f"option {name} needs its value attached: {name}=VALUE")
        if index + 1 >= len(args):
            raise PolicyError(f"option {name} needs a value")
        value = args[index + 1]
        index += 1
    check_value(spec.options[name], value, f"value of {name}", parsed, resolve)
    parsed.options.append((name, value))
    return index + 1


def _short_options(spec: ArgSpec, args: list[str], index: int, parsed: ParsedArgs, resolve: PathResolver | None) -> int:
    """A cluster of short options as getopt reads it: flags, then at most one option whose value is the rest
    of the word or the next word ("-la", "-n5", "-eo pid,comm"). Whole-word flags ("-ww", "-br") first."""
    token = args[index]
    if token in spec.flags:
        parsed.options.append((token, None))
        return index + 1
    for position in range(1, len(token)):
        name = "-" + token[position]
        if name in spec.options:
            value = token[position + 1 :]
            if not value:
                if index + 1 >= len(args):
                    raise PolicyError(f"option {name} needs a value")
                index += 1
                value = args[index]
            check_value(spec.options[name], value, f"value of {name}", parsed, resolve)
            parsed.options.append((name, value))
            return index + 1
        if token[position] not in spec.short_flags:
            where = f" (in {token})" if len(token) > 2 else ""
            raise PolicyError(f"option {name} is not allowed{where}")
        parsed.options.append((name, None))
    return index + 1


def parse_args(spec: ArgSpec, args: list[str], resolve: PathResolver | None = None) -> ParsedArgs:
    """Check every argument against spec; returns what was seen. Raises PolicyError on the first problem."""
    parsed = ParsedArgs()
    index = 0
    options_done = spec.no_options
    while index < len(args):
        token = args[index]
        if not options_done and token == "--":
            options_done = True
            index += 1
        elif not options_done and token.startswith("--"):
            index = _long_option(spec, args, index, parsed, resolve)
        elif not options_done and token.startswith("-") and token != "-":
            index = _short_options(spec, args, index, parsed, resolve)
        else:
            position = len(parsed.positionals)
            if position >= spec.max_positionals:
                if spec.max_positionals == 0:
                    raise PolicyError(f"argument {token!r} is not allowed (this command takes no operands)")
                raise PolicyError(f"too many operands at {token!r} (at most {spec.max_positionals})")
            check_value(_positional_kind(spec, position), token, f"operand {position + 1}", parsed, resolve)
            parsed.positionals.append(token)
            index += 1
    if len(parsed.positionals) < spec.min_positionals:
        raise PolicyError(f"needs at least {spec.min_positionals} operand(s), got {len(parsed.positionals)}")
    return parsed
