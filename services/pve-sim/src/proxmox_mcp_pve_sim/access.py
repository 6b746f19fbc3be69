"""Users, API tokens, ACLs, tickets and CSRF tokens, with Proxmox's privilege rules."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from proxmox_mcp_pve_sim.errors import ApiError, forbidden, unauthorized
from proxmox_mcp_pve_sim.persisted import SimSecrets

TICKET_LIFETIME = 7200

VM_PRIVS = (
    "VM.Allocate",
    "VM.Audit",
    "VM.Backup",
    "VM.Clone",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.HWType",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.Console",
    "VM.GuestAgent.Audit",
    "VM.GuestAgent.FileRead",
    "VM.GuestAgent.FileSystemMgmt",
    "VM.GuestAgent.FileWrite",
    "VM.GuestAgent.Unrestricted",
    "VM.Migrate",
    "VM.PowerMgmt",
    "VM.Replicate",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
)
ALL_PRIVS = (
    "Datastore.Allocate",
    "Datastore.AllocateSpace",
    "Datastore.AllocateTemplate",
    "Datastore.Audit",
    "Group.Allocate",
    "Mapping.Audit",
    "Mapping.Modify",
    "Mapping.Use",
    "Permissions.Modify",
    "Pool.Allocate",
    "Pool.Audit",
    "Realm.Allocate",
    "Realm.AllocateUser",
    "SDN.Allocate",
    "SDN.Audit",
    "SDN.Use",
    "Sys.AccessNetwork",
    "Sys.Audit",
    "Sys.Console",
    "Sys.Incoming",
    "Sys.Modify",
    "Sys.PowerMgmt",
    "Sys.Syslog",
    "User.Modify",
    *VM_PRIVS,
)
ROLES: dict[str, tuple[str, ...]] = {
    "Administrator": ALL_PRIVS,
    "NoAccess": (),
    "PVEAuditor": (
        "Datastore.Audit",
        "Mapping.Audit",
        "Pool.Audit",
        "SDN.Audit",
        "Sys.Audit",
        "VM.Audit",
        "VM.GuestAgent.Audit",
    ),
    "PVEVMUser": (
        "VM.Audit",
        "VM.Backup",
        "VM.Config.CDROM",
        "VM.Config.Cloudinit",
        "VM.Console",
        "VM.GuestAgent.Audit",
        "VM.PowerMgmt",
    ),
    "PVEVMAdmin": tuple(p for p in ALL_PRIVS if p.startswith("VM."))
    + (
        "Datastore.AllocateSpace",
        "Datastore.Audit",
        "Mapping.Audit",
        "Mapping.Use",
        "Pool.Audit",
        "SDN.Audit",
        "SDN.Use",
        "Sys.Audit",
        "Sys.Console",
        "Sys.Syslog",
    ),
    "PVEDatastoreUser": ("Datastore.AllocateSpace", "Datastore.Audit"),
}
_TOKEN_HEADER = re.compile(r"^PVEAPIToken[= ](?P<user>[^!\s]+)!(?P<token>[A-Za-z][A-Za-z0-9.\-_]+)[=:](?P<secret>\S+)$")


@dataclass(frozen=True)
class Caller:
    """Who makes a call: a user (ticket or password) or an API token of a user."""

    userid: str
    tokenid: str | None = None

    @property
    def authid(self) -> str:
        return f"{self.userid}!{self.tokenid}" if self.tokenid else self.userid

    @property
    def is_root(self) -> bool:
        return self.userid == "root@pam" and self.tokenid is None


ROOT = Caller("root@pam")


@dataclass
class Token:
    tokenid: str
    secret: str
    privsep: int
    comment: str = ""


@dataclass
class User:
    userid: str
    password: str | None
    comment: str = ""
    enable: int = 1
    tokens: dict[str, Token] = field(default_factory=dict[str, Token])


@dataclass(frozen=True)
class AclEntry:
    path: str
    ugid: str
    type: str
    roleid: str
    propagate: int = 1


@dataclass(frozen=True)
class TokenInfo:
    user: str
    token_id: str
    secret: str

    @property
    def full_id(self) -> str:
        return f"{self.user}!{self.token_id}"

    @property
    def header(self) -> str:
        return f"PVEAPIToken={self.full_id}={self.secret}"

    def as_dict(self) -> dict[str, str]:
        return {
            "user": self.user,
            "token_id": self.token_id,
            "secret": self.secret,
            "full_id": self.full_id,
            "header": self.header,
        }


class AccessControl:
    """The secrets (given: kept in the state directory; else new for this start) and the fixed user/ACL layout
    of the simulator."""

    def __init__(self, sim_secrets: SimSecrets | None = None) -> None:
        sim_secrets = sim_secrets or SimSecrets.generate()
        self._key = sim_secrets.ticket_key
        self.root_password = sim_secrets.root_password
        self.users: dict[str, User] = {
            "root@pam": User("root@pam", self.root_password, "Built-in Superuser"),
            "auditor@pve": User("auditor@pve", None, "read-only auditor for tests and demos"),
        }
        self.admin_token = TokenInfo("root@pam", "pmcp", sim_secrets.admin_token_secret)
        self.readonly_token = TokenInfo("auditor@pve", "readonly", sim_secrets.readonly_token_secret)
        self.users["root@pam"].tokens["pmcp"] = Token("pmcp", self.admin_token.secret, 0, "pve-sim admin token")
        self.users["auditor@pve"].tokens["readonly"] = Token(
            "readonly", self.readonly_token.secret, 1, "pve-sim read-only token"
        )
        self.acl: list[AclEntry] = [
            AclEntry("/", "auditor@pve", "user", "PVEAuditor"),
            AclEntry("/", "auditor@pve!readonly", "token", "PVEAuditor"),
        ]

    # --- privileges -------------------------------------------------------------------------

    def _acl_privs(self, ugid: str, kind: str, path: str) -> set[str]:
        privs: set[str] = set()
        for entry in self.acl:
            if entry.ugid != ugid or entry.type != kind:
                continue
            if entry.path == path or (entry.propagate and _is_ancestor(entry.path, path)):
                privs.update(ROLES.get(entry.roleid, ()))
        return privs

    def privileges(self, caller: Caller, path: str) -> set[str]:
        is_root = caller.userid == "root@pam"
        user_privs: set[str] = set(ALL_PRIVS) if is_root else self._acl_privs(caller.userid, "user", path)
        if caller.tokenid is None:
            return user_privs
        token = self.users[caller.userid].tokens.get(caller.tokenid)
        if token is None or not token.privsep:
            return user_privs
        return user_privs & self._acl_privs(caller.authid, "token", path)

    def check_permissions(
        self, caller: Caller, permissions: Mapping[str, Any] | None, params: Mapping[str, Any]
    ) -> None:
        """Raise 403 like RPCEnvironment::check_api2_permissions would."""
        if not permissions:
            if not caller.is_root:
                raise forbidden("user != root@pam")
            return
        if permissions.get("user") in ("all", "world"):
            return
        check = permissions.get("check")
        if check and not self._evaluate(caller, check, params, raise_on_fail=True):
            raise forbidden("no permission")

    def _evaluate(self, caller: Caller, check: list[Any], params: Mapping[str, Any], *, raise_on_fail: bool) -> bool:
        kind = check[0]
        if kind == "perm":
            path = _substitute(str(check[1]), params)
            wanted = [str(p) for p in check[2]]
            have = self.privileges(caller, path)
            if "any" in check[3:4]:
                if have.intersection(wanted):
                    return True
                if raise_on_fail:
                    raise forbidden(f"{path}, {'|'.join(wanted)}")
                return False
            for priv in wanted:
                if priv not in have:
                    if raise_on_fail:
                        raise forbidden(f"{path}, {priv}")
                    return False
            return True
        if kind == "and":
            return all(self._evaluate(caller, sub, params, raise_on_fail=raise_on_fail) for sub in check[1:])
        if kind == "or":
            if any(self._evaluate(caller, sub, params, raise_on_fail=False) for sub in check[1:]):
                return True
            if raise_on_fail:
                raise forbidden("no permission")
            return False
        if kind == "userid-param":
            if check[1] == "self":
                return params.get("userid") == caller.userid
            realm = str(params.get("userid", "")).rpartition("@")[2]
            return self._evaluate(
                caller, ["perm", f"/access/realm/{realm}", [check[1]]], params, raise_on_fail=raise_on_fail
            )
        if kind == "userid-group":
            return self._evaluate(
                caller, ["perm", "/access/groups", list(check[1])], params, raise_on_fail=raise_on_fail
            )
        if kind == "perm-modify":
            return self._evaluate(
                caller, ["perm", str(check[1]), ["Permissions.Modify"]], params, raise_on_fail=raise_on_fail
            )
        return caller.is_root

    # --- authentication ---------------------------------------------------------------------

    def _sign(self, text: str) -> str:
        return base64.b64encode(hmac.new(self._key, text.encode(), hashlib.sha256).digest()).decode().rstrip("=")

    def issue_ticket(self, userid: str, now: float | None = None) -> tuple[str, str]:
        stamp = f"{int(time.time() if now is None else now):08X}"
        plain = f"PVE:{userid}:{stamp}"
        return f"{plain}::{self._sign(plain)}", f"{stamp}:{self._sign(stamp + ':' + userid)}"

    def verify_ticket(self, ticket: str) -> str | None:
        plain, sep, signature = ticket.partition("::")
        parts = plain.split(":")
        if not sep or len(parts) != 3 or parts[0] != "PVE" or not hmac.compare_digest(signature, self._sign(plain)):
            return None
        try:
            age = time.time() - int(parts[2], 16)
        except ValueError:
            return None
        if age > TICKET_LIFETIME or age < -300 or parts[1] not in self.users:
            return None
        return parts[1]

    def verify_csrf(self, token: str | None, userid: str) -> bool:
        if not token:
            return False
        stamp, _, signature = token.partition(":")
        try:
            age = time.time() - int(stamp, 16)
        except ValueError:
            return False
        return -300 <= age <= TICKET_LIFETIME and hmac.compare_digest(signature, self._sign(f"{stamp}:{userid}"))

    def login(self, username: str, password: str, realm: str | None = None) -> str:
        """The userid for a password (or a valid ticket used as password); 401 otherwise."""
        userid = username if "@" in username or not realm else f"{username}@{realm}"
        user = self.users.get(userid)
        if user is not None and user.enable:
            if user.password is not None and hmac.compare_digest(password.encode(), user.password.encode()):
                return userid
            if password.startswith("PVE:") and self.verify_ticket(password) == userid:
                return userid
        raise ApiError(401, "authentication failure")

    def caller_for_token(self, header: str) -> Caller:
        match = _TOKEN_HEADER.match(header.strip())
        if match is None:
            raise unauthorized("invalid token value!")
        userid, tokenid, secret = match.group("user"), match.group("token"), match.group("secret")
        user = self.users.get(userid)
        token = user.tokens.get(tokenid) if user else None
        if user is None or token is None:
            raise unauthorized(f"no such token '{tokenid}' for user '{userid}'")
        if not hmac.compare_digest(secret.encode(), token.secret.encode()):
            raise unauthorized("invalid token value!")
        return Caller(userid, tokenid)

    def is_admin_token_header(self, header: str | None) -> bool:
        return bool(header) and hmac.compare_digest(str(header).strip().encode(), self.admin_token.header.encode())


def _is_ancestor(ancestor: str, path: str) -> bool:
    if ancestor == "/":
        return True
    return path.startswith(ancestor.rstrip("/") + "/")


def _substitute(template: str, params: Mapping[str, Any]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: str(params.get(m.group(1), m.group(0))), template)
