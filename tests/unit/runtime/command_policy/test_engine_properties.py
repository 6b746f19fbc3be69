"""Property tests: no command with an unquoted shell metacharacter is ever allowed; what is sent round-trips."""

from __future__ import annotations

import shlex

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proxmox_mcp_runtime.command_policy import evaluate_command

METACHARACTERS = set(";&|<>()$`\\*?[]{}~!#^\n\r\t\x00")
ALPHABET = st.sampled_from(
    sorted(METACHARACTERS) + list("aeqlmstx019 -./=:,@%+'\"") + ["\u00a0", "\uff1b", "\u202e", "\u200d", "é"]
)
PREFIXES = st.sampled_from(
    [
        "echo ",
        "echo '",
        'echo "',
        "ls ",
        "ls -la /etc",
        "cat /proc/loadavg",
        "qm list",
        "qm status 100",
        "grep x ",
        "df -h",
        "seq 1 ",
        "sleep ",
        "pvesh get /nodes",
        "journalctl -n 5 ",
        "find /etc -maxdepth 1 -name ",
        "",
        "id",
    ]
)
FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def has_unquoted_metacharacter(command: str) -> bool:
    """An independent scanner (POSIX quoting): is any metacharacter outside quotes?"""
    quote: str | None = None
    for char in command:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
        elif char in METACHARACTERS:
            return True
    return False


@FAST
@given(prefix=PREFIXES, body=st.text(ALPHABET, max_size=30), profile=st.sampled_from(["readonly", "admin"]))
def test_no_unquoted_metacharacter_is_ever_allowed(prefix: str, body: str, profile: str) -> None:
    command = prefix + body
    decision = evaluate_command(command, profile)
    if decision.allowed:
        assert not has_unquoted_metacharacter(command), command
        assert not any(ord(c) > 127 for c in command.split("'")[0].split('"')[0]), command


@FAST
@given(prefix=PREFIXES, body=st.text(ALPHABET, max_size=30))
def test_allowed_argv_round_trips_through_the_shell_quoting(prefix: str, body: str) -> None:
    decision = evaluate_command(prefix + body, "readonly")
    if decision.allowed:
        line = shlex.join(decision.argv)
        assert shlex.split(line) == decision.argv
        again = evaluate_command(line, "readonly")
        assert again.allowed and again.argv == decision.argv


@FAST
@given(words=st.lists(st.text(st.characters(codec="utf-8"), max_size=12), min_size=1, max_size=6))
def test_echo_of_any_printable_quoted_words_round_trips(words: list[str]) -> None:
    """Any argument text that is allowed at all arrives unchanged: quoting carries it, never a shell."""
    decision = evaluate_command(shlex.join(["echo", *words]), "readonly")
    if decision.allowed:
        assert decision.argv == ["echo", *words]
        assert shlex.split(shlex.join(decision.argv)) == decision.argv
    else:
        assert any(not c.isprintable() or (c.isspace() and c != " ") for w in words for c in w), words


@settings(max_examples=300, deadline=None)
@given(command=st.text(max_size=60))
def test_the_policy_never_raises_on_arbitrary_text(command: str) -> None:
    decision = evaluate_command(command, "readonly")
    assert decision.allowed == bool(decision.argv)
    assert decision.reason
