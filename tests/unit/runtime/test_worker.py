"""NATS_URL may name one server or every node of a cluster."""

from __future__ import annotations

import pytest
from proxmox_mcp_runtime.worker import nats_servers


def test_a_single_url_is_one_server() -> None:
    assert nats_servers("nats://127.0.0.1:4222") == ["nats://127.0.0.1:4222"]


def test_a_comma_list_names_every_node_in_order_without_blanks() -> None:
    assert nats_servers(" nats://n1:4222, nats://n2:4222,,nats://n3:4222 ") == [
        "nats://n1:4222", "nats://n2:4222", "nats://n3:4222",
    ]


@pytest.mark.parametrize("url", ["", " , ,"])
def test_a_url_without_any_server_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        nats_servers(url)
