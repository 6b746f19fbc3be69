"""The lexer in isolation: its limits, and words and quotes split as a shell splits them."""

from __future__ import annotations

import pytest
from proxmox_mcp_runtime.command_policy import evaluate_command
from proxmox_mcp_runtime.command_policy.lexer import MAX_COMMAND_CHARS, MAX_WORDS, tokenize
from proxmox_mcp_runtime.command_policy.model import PolicyError


def test_empty_commands_and_commands_past_the_word_or_length_limit_are_refused() -> None:
    assert len(tokenize("echo " + "a " * (MAX_WORDS - 1))) == MAX_WORDS
    with pytest.raises(PolicyError, match="more than 128 words"):
        tokenize("echo " + "a " * MAX_WORDS)
    with pytest.raises(PolicyError, match="limit is 4096"):
        tokenize("echo " + "a" * MAX_COMMAND_CHARS)
    with pytest.raises(PolicyError, match="empty command"):
        tokenize("   ")


def test_quotes_join_and_protect_words_as_a_shell_does() -> None:
    words = tokenize("""qm  'a b'"c"d ''""")
    assert [w.text for w in words] == ["qm", "a bcd", ""]
    assert [w.quoted for w in words] == [False, True, True]
    assert tokenize("echo 'a;b|c$(d)`e`'")[1].text == "a;b|c$(d)`e`"
    assert tokenize('echo "don\'t"')[1].text == "don't"


def test_single_quotes_keep_backslashes_and_dollars_literal() -> None:
    decision = evaluate_command(r"grep -E 'pve(proxy|daemon)\[[0-9]+\]: .*$' /var/log/syslog", "readonly")
    assert decision.allowed, decision.reason
    assert decision.argv[2] == r"pve(proxy|daemon)\[[0-9]+\]: .*$"


def test_adjacent_quotes_join_like_a_shell() -> None:
    decision = evaluate_command("echo a'b c'\"d e\"f", "readonly")
    assert decision.argv == ["echo", "ab cd ef"]
