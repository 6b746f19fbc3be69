"""/access: tickets, users, tokens, ACL, roles, realms, effective permissions."""

from __future__ import annotations

from typing import Any

from proxmox_mcp_pve_sim.access import ALL_PRIVS, ROLES
from proxmox_mcp_pve_sim.api import Call
from proxmox_mcp_pve_sim.endpoints.common import subdirs
from proxmox_mcp_pve_sim.errors import failed, forbidden


def access_index(call: Call) -> list[dict[str, str]]:
    return subdirs("users", "groups", "roles", "acl", "domains", "ticket", "password", "openid", "tfa", "permissions")


def ticket_form(call: Call) -> None:
    return None


def create_ticket(call: Call) -> dict[str, Any]:
    access = call.sim.access
    userid = access.login(call["username"], call["password"], call.get("realm"))
    ticket, csrf = access.issue_ticket(userid)
    return {"username": userid, "ticket": ticket, "CSRFPreventionToken": csrf, "clustername": call.sim.cluster.name}


def _token_list(call: Call, userid: str) -> list[dict[str, Any]]:
    user = call.sim.access.users[userid]
    return [
        {"tokenid": t.tokenid, "privsep": t.privsep, "comment": t.comment, "expire": 0} for t in user.tokens.values()
    ]


def users(call: Call) -> list[dict[str, Any]]:
    access = call.sim.access
    entries: list[dict[str, Any]] = []
    for user in access.users.values():
        if call.get("enabled") is not None and user.enable != call["enabled"]:
            continue
        if (
            user.userid != call.caller.userid
            and "User.Modify" not in access.privileges(call.caller, "/access/groups")
            and "Sys.Audit" not in access.privileges(call.caller, "/access")
        ):
            continue
        entry: dict[str, Any] = {
            "userid": user.userid,
            "enable": user.enable,
            "expire": 0,
            "comment": user.comment,
            "realm-type": user.userid.rpartition("@")[2],
        }
        if call.get("full"):
            entry["tokens"] = _token_list(call, user.userid)
        entries.append(entry)
    return entries


def _user(call: Call) -> str:
    userid = call["userid"]
    if userid not in call.sim.access.users:
        raise failed(f"no such user ('{userid}')")
    access = call.sim.access
    if userid != call.caller.userid and not access.privileges(call.caller, "/access/groups") & {
        "User.Modify",
        "Sys.Audit",
    }:
        raise forbidden("/access/groups, User.Modify")
    return userid


def user(call: Call) -> dict[str, Any]:
    userid = _user(call)
    info = call.sim.access.users[userid]
    tokens = {t["tokenid"]: {k: v for k, v in t.items() if k != "tokenid"} for t in _token_list(call, userid)}
    return {"enable": info.enable, "expire": 0, "comment": info.comment, "groups": [], "tokens": tokens}


def user_tokens(call: Call) -> list[dict[str, Any]]:
    return _token_list(call, _user(call))


def acl(call: Call) -> list[dict[str, Any]]:
    access = call.sim.access
    visible = access.privileges(call.caller, "/access") & {"Sys.Audit", "Permissions.Modify"}
    return [
        {"path": e.path, "ugid": e.ugid, "type": e.type, "roleid": e.roleid, "propagate": e.propagate}
        for e in access.acl
        if visible or e.ugid.partition("!")[0] == call.caller.userid
    ]


def roles(call: Call) -> list[dict[str, Any]]:
    return [{"roleid": role, "privs": ",".join(sorted(privs)), "special": 1} for role, privs in ROLES.items()]


def domains(call: Call) -> list[dict[str, Any]]:
    return [
        {"realm": "pam", "type": "pam", "comment": "Linux PAM standard authentication"},
        {"realm": "pve", "type": "pve", "comment": "Proxmox VE authentication server"},
    ]


def permissions(call: Call) -> dict[str, dict[str, int]]:
    access = call.sim.access
    paths = (
        [call["path"]]
        if call.get("path")
        else [
            "/",
            "/access",
            "/nodes",
            "/storage",
            "/vms",
            *(f"/vms/{vmid}" for vmid in sorted(call.sim.cluster.guests)),
        ]
    )
    result: dict[str, dict[str, int]] = {}
    for path in paths:
        privs = access.privileges(call.caller, path)
        if privs:
            result[path] = {priv: 1 for priv in ALL_PRIVS if priv in privs}
    return result
