"""The built-in profiles: readonly (inspection), operator (+ guest lifecycle), admin (+ configuration).

Standard library only. Profiles from configuration may extend these (see config.py).
"""

from __future__ import annotations

from .model import CommandRule, ProfileSpec
from .rulekit import VMID, guest, merge_rules, rule
from .rules_readonly import READONLY_RULES

PVE_SERVICES = [
    "pveproxy",
    "pvedaemon",
    "pvestatd",
    "pve-cluster",
    "pve-firewall",
    "pve-ha-lrm",
    "pve-ha-crm",
    "pvescheduler",
    "spiceproxy",
    "corosync",
    "pvefw-logger",
    "pve-lxc-syscalld",
    "qmeventd",
    "ksmtuned",
    "chrony",
]

_TIMEOUT = {"--timeout": "int:0:3600"}
OPERATOR_RULES: tuple[CommandRule, ...] = (
    *(guest(tool, "start", options=_TIMEOUT, scope="operate") for tool in ("qm", "pct")),
    *(
        guest(tool, "stop", options=_TIMEOUT, flags=("--keepActive",), scope="operate", destructive=True)
        for tool in ("qm", "pct")
    ),
    *(
        guest(
            tool,
            "shutdown",
            options={**_TIMEOUT, "--forceStop": "choice:0|1"},
            flags=("--keepActive",),
            scope="operate",
            destructive=True,
        )
        for tool in ("qm", "pct")
    ),
    *(guest(tool, "reboot", options=_TIMEOUT, scope="operate", destructive=True) for tool in ("qm", "pct")),
    guest("qm", "reset", scope="operate", destructive=True),
    *(guest(tool, "suspend", scope="operate") for tool in ("qm", "pct")),
    *(guest(tool, "resume", scope="operate") for tool in ("qm", "pct")),
    *(
        rule(
            tool,
            "snapshot",
            positionals=(VMID, "name"),
            min_pos=2,
            options={"--description": "text", **({"--vmstate": "choice:0|1"} if tool == "qm" else {})},
            scope="operate",
        )
        for tool in ("qm", "pct")
    ),
)

ADMIN_RULES: tuple[CommandRule, ...] = (
    rule(
        "qm",
        "rollback",
        positionals=(VMID, "name"),
        min_pos=2,
        options={"--start": "choice:0|1"},
        scope="admin",
        destructive=True,
    ),
    rule("pct", "rollback", positionals=(VMID, "name"), min_pos=2, scope="admin", destructive=True),
    *(
        rule(
            tool,
            "delsnapshot",
            positionals=(VMID, "name"),
            min_pos=2,
            flags=("--force",),
            scope="admin",
            destructive=True,
        )
        for tool in ("qm", "pct")
    ),
    *(
        guest(
            tool,
            "destroy",
            flags=("--purge",),
            options={"--destroy-unreferenced-disks": "choice:0|1"},
            scope="admin",
            destructive=True,
        )
        for tool in ("qm", "pct")
    ),
    *(rule(tool, "set", raw=True, check="guest_set", scope="admin", destructive=True) for tool in ("qm", "pct")),
    rule("pvesh", "get", raw=True, check="pvesh_admin"),
    rule("pvesh", "ls", raw=True, check="pvesh_admin"),
    *(
        rule("pvesh", method, raw=True, check="pvesh_admin", scope="admin", destructive=True)
        for method in ("create", "set", "delete")
    ),
    *(
        rule(
            "systemctl",
            action,
            positionals=("choice:" + "|".join(PVE_SERVICES),),
            min_pos=1,
            max_pos=4,
            scope="admin",
            destructive=True,
        )
        for action in ("restart", "reload", "start", "stop", "try-restart")
    ),
)

BUILTIN_PROFILES: dict[str, ProfileSpec] = {
    "readonly": ProfileSpec(
        "readonly",
        merge_rules(READONLY_RULES),
        description="inspection only: cannot change, destroy, escalate or exfiltrate",
    ),
    "operator": ProfileSpec(
        "operator", merge_rules(READONLY_RULES, OPERATOR_RULES), description="readonly + qm/pct lifecycle and snapshots"
    ),
    "admin": ProfileSpec(
        "admin",
        merge_rules(READONLY_RULES, OPERATOR_RULES, ADMIN_RULES),
        description="operator + guest configuration, rollback/destroy, pvesh writes, PVE service restarts",
    ),
}
