"""Commands in a VM through the guest agent: what a reply may carry."""

from __future__ import annotations

from proxmox_mcp_api_worker.guest_exec import cap_output


def test_output_is_capped_like_the_ssh_worker_stdout_first() -> None:
    assert cap_output("abc", "def", 10) == ("abc", "def", False)
    assert cap_output("abcdef", "ghij", 8) == ("abcdef", "gh", True)
    assert cap_output("é" * 4, "", 3) == ("é", "", True)  # never half a character
