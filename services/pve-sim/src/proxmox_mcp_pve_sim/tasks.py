"""Worker tasks: real-format UPIDs, running -> stopped with an exitstatus, a log readable while running.

Tasks on the same guest serialise on its config lock, as `lock_config` does on a node: the second of
two concurrent starts runs after the first has finished and fails with the real message.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from proxmox_mcp_pve_sim.access import Caller
from proxmox_mcp_pve_sim.errors import TaskFailed

UPID_RE = re.compile(
    r"^UPID:(?P<node>[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):(?P<pid>[0-9A-Fa-f]{8}):(?P<pstart>[0-9A-Fa-f]{8,9}):"
    r"(?P<starttime>[0-9A-Fa-f]{8}):(?P<type>[^:\s]+):(?P<id>[^:\s]*):(?P<user>[^:\s]+):$"
)
MAX_TASKS = 2000


@dataclass
class Task:
    upid: str
    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str
    status: str = "running"
    exitstatus: str | None = None
    endtime: int | None = None
    log: list[str] = field(default_factory=list[str])
    done: asyncio.Event = field(default_factory=asyncio.Event)
    duration: float = 0.0

    def write(self, line: str) -> None:
        self.log.append(line)

    async def work(self, fraction: float = 1.0) -> None:
        """Spend (a fraction of) the configured task duration."""
        if self.duration > 0:
            await asyncio.sleep(self.duration * fraction)

    def status_entry(self) -> dict[str, object]:
        userid, _, tokenid = self.user.partition("!")
        entry: dict[str, object] = {
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.type,
            "id": self.id,
            "user": userid,
            "status": self.status,
        }
        if tokenid:
            entry["tokenid"] = tokenid
        if self.exitstatus is not None:
            entry["exitstatus"] = self.exitstatus
        return entry

    def list_entry(self) -> dict[str, object]:
        entry: dict[str, object] = {
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.type,
            "id": self.id,
            "user": self.user,
        }
        if self.exitstatus is not None:
            entry["status"] = self.exitstatus
            entry["endtime"] = self.endtime
        return entry


TaskBody = Callable[[Task], Awaitable[None]]


class TaskManager:
    def __init__(self, duration: float, *, lock_timeout: float = 10.0, first_pid: int = 0x1F400) -> None:
        self.duration = duration
        self.lock_timeout = lock_timeout
        self.tasks: OrderedDict[str, Task] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._runners: set[asyncio.Task[None]] = set()
        self._next_pid = first_pid
        self._pstart_base = int(time.monotonic() * 100) & 0x0FFFFFFF

    def start(
        self,
        node: str,
        type_: str,
        id_: str,
        caller: Caller,
        body: TaskBody,
        *,
        lock: str | None = None,
        lock_file: str | None = None,
    ) -> Task:
        self._next_pid += 1
        pid = self._next_pid & 0xFFFFFFFF
        pstart = (self._pstart_base + pid * 7) & 0xFFFFFFFF
        starttime = int(time.time())
        upid = f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{type_}:{id_}:{caller.authid}:"
        task = Task(
            upid=upid,
            node=node,
            pid=pid,
            pstart=pstart,
            starttime=starttime,
            type=type_,
            id=id_,
            user=caller.authid,
            duration=self.duration,
        )
        self.tasks[upid] = task
        while len(self.tasks) > MAX_TASKS:
            oldest = next(iter(self.tasks.values()))
            if oldest.status == "running":
                break
            self.tasks.popitem(last=False)
        runner = asyncio.get_running_loop().create_task(self._run(task, body, lock, lock_file))
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)
        return task

    async def _run(self, task: Task, body: TaskBody, lock: str | None, lock_file: str | None) -> None:
        exitstatus = "OK"
        acquired: asyncio.Lock | None = None
        try:
            if lock is not None:
                acquired = self._locks.setdefault(lock, asyncio.Lock())
                if acquired.locked():
                    task.write("trying to acquire lock...")
                    try:
                        await asyncio.wait_for(acquired.acquire(), self.lock_timeout)
                    except TimeoutError:
                        acquired = None
                        raise TaskFailed(f"can't lock file '{lock_file or lock}' - got timeout") from None
                    task.write(" OK")
                else:
                    await acquired.acquire()
            await body(task)
        except TaskFailed as exc:
            exitstatus = str(exc)
        except asyncio.CancelledError:
            exitstatus = "interrupted by signal"
            raise
        except Exception as exc:  # a bug in a task body must still end the task
            exitstatus = f"internal error: {exc}"
        finally:
            if acquired is not None and acquired.locked():
                acquired.release()
            task.write("TASK OK" if exitstatus == "OK" else f"TASK ERROR: {exitstatus}")
            task.exitstatus = exitstatus
            task.endtime = int(time.time())
            task.status = "stopped"
            task.done.set()

    def get(self, upid: str) -> Task | None:
        return self.tasks.get(upid)

    async def stop_all(self) -> None:
        for runner in list(self._runners):
            runner.cancel()
        for runner in list(self._runners):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner

    def clear(self) -> None:
        for runner in list(self._runners):
            runner.cancel()
        self.tasks.clear()
        self._locks.clear()
