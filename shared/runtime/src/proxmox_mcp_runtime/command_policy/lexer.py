"""A strict command-line lexer: words and quotes only, every shell feature refused. Standard library only.

The result is the argv a POSIX shell would build *if* the line contains no shell feature at all; anything
a shell could expand, redirect, chain or reinterpret is refused instead of being "handled". The SSH worker
then sends shlex.join(argv), so the host shell rebuilds exactly this argv.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from .model import PolicyError

MAX_COMMAND_CHARS = 4096
MAX_WORDS = 128

_UNQUOTED_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:,@%+=")
"""Characters a word may hold outside quotes. Everything else (the shell metacharacters) is refused."""

_NAMES = {
    ";": "command separator ';'",
    "&": "background/and operator '&'",
    "|": "pipe '|'",
    "<": "redirection '<'",
    ">": "redirection '>'",
    "(": "subshell/grouping '('",
    ")": "subshell/grouping ')'",
    "$": "expansion '$'",
    "`": "command substitution '`'",
    "\\": "backslash escape",
    "*": "glob '*'",
    "?": "glob '?'",
    "[": "glob '['",
    "]": "glob ']'",
    "{": "brace expansion '{'",
    "}": "brace expansion '}'",
    "~": "tilde expansion '~'",
    "!": "history/negation '!'",
    "#": "comment '#'",
    "^": "'^' (a pipe in old shells)",
    "\t": "tab",
    "\n": "newline",
    "\r": "carriage return",
    "\x00": "NUL byte",
}


@dataclass(frozen=True)
class Word:
    text: str
    quoted: bool
    """Some part of the word was inside quotes."""
    start: int
    """Offset of the word in the command line (for messages)."""


def describe_char(char: str) -> str:
    if char in _NAMES:
        return _NAMES[char]
    code = f"U+{ord(char):04X}"
    try:
        return f"character {code} ({unicodedata.name(char)})"
    except ValueError:
        return f"character {code}"


def _check_invisible(command: str) -> None:
    """Control, format (RTL overrides, zero-width joiners), surrogate, private and unassigned characters are
    refused anywhere, even inside quotes: they make what a reviewer reads differ from what runs."""
    for index, char in enumerate(command):
        if char != " " and unicodedata.category(char)[0] in "CZ":
            raise PolicyError(f"{describe_char(char)} at offset {index} is not allowed")


def tokenize(command: str) -> list[Word]:
    """Split a command line into words. Raises PolicyError naming the first refused character or construct."""
    if len(command) > MAX_COMMAND_CHARS:
        raise PolicyError(f"command is {len(command)} characters long; the limit is {MAX_COMMAND_CHARS}")
    _check_invisible(command)
    words: list[Word] = []
    index = 0
    length = len(command)
    while index < length:
        if command[index] == " ":
            index += 1
            continue
        start = index
        parts: list[str] = []
        quoted = False
        while index < length and command[index] != " ":
            char = command[index]
            if char == "'":
                end = command.find("'", index + 1)
                if end < 0:
                    raise PolicyError(f"unterminated single quote at offset {index}")
                parts.append(command[index + 1 : end])
                quoted = True
                index = end + 1
            elif char == '"':
                end = command.find('"', index + 1)
                if end < 0:
                    raise PolicyError(f"unterminated double quote at offset {index}")
                content = command[index + 1 : end]
                for offset, inner in enumerate(content):
                    if inner in "$`\\":
                        raise PolicyError(
                            f"{describe_char(inner)} inside double quotes at offset {index + 1 + offset} "
                            "is not allowed (use single quotes for literal text)"
                        )
                parts.append(content)
                quoted = True
                index = end + 1
            elif char in _UNQUOTED_OK:
                parts.append(char)
                index += 1
            elif ord(char) > 127:
                raise PolicyError(f"non-ASCII {describe_char(char)} outside quotes at offset {index} is not allowed")
            else:
                raise PolicyError(f"shell {describe_char(char)} at offset {index} is not allowed")
        words.append(Word("".join(parts), quoted, start))
        if len(words) > MAX_WORDS:
            raise PolicyError(f"command has more than {MAX_WORDS} words")
    if not words:
        raise PolicyError("empty command")
    return words
