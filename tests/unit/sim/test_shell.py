"""The emulated shell: parsing, host commands, pvesh/qm/pct, and that nothing real is ever run."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from proxmox_mcp_pve_sim.guest_shell import guest_shell
from proxmox_mcp_pve_sim.host_shell import host_shell
from proxmox_mcp_pve_sim.shell import Streams, run_argv, run_line
from proxmox_mcp_pve_sim.sim import Sim, SimOptions


@pytest.fixture
def sim() -> Sim:
    return Sim(SimOptions(seed=7, nodes=3, guests=8, task_duration=0.01))


async def sh(sim: Sim, line: str, node: str = "pve1") -> tuple[int, str, str]:
    out: list[str] = []
    err: list[str] = []
    status = await run_line(line, host_shell(sim, node), Streams(out.append, err.append))
    return status, "".join(out), "".join(err)


async def test_host_identity_commands_answer_as_the_node(sim: Sim) -> None:
    assert await sh(sim, "hostname") == (0, "pve1\n", "")
    assert await sh(sim, "whoami") == (0, "root\n", "")
    assert await sh(sim, "id") == (0, "uid=0(root) gid=0(root) groups=0(root)\n", "")
    assert (await sh(sim, "uname -a"))[1].startswith("Linux pve1 6.17.2-1-pve #1 SMP")
    assert await sh(sim, "uname -r") == (0, "6.17.2-1-pve\n", "")
    assert await sh(sim, "cat /etc/hostname", node="pve2") == (0, "pve2\n", "")
    assert (await sh(sim, "pveversion"))[1] == "pve-manager/9.1.1/42db4a6cf33dac83 (running kernel: 6.17.2-1-pve)\n"
    assert "pve-manager: 9.1.1" in (await sh(sim, "pveversion -v"))[1]


async def test_resource_commands_print_plausible_tables(sim: Sim) -> None:
    status, out, _ = await sh(sim, "df -h")
    assert status == 0 and out.splitlines()[0].split() == [
        "Filesystem",
        "Size",
        "Used",
        "Avail",
        "Use%",
        "Mounted",
        "on",
    ]
    assert "/dev/mapper/pve-root" in out
    status, out, _ = await sh(sim, "free -m")
    assert status == 0 and out.splitlines()[1].startswith("Mem:") and out.splitlines()[2].startswith("Swap:")
    assert " up " in (await sh(sim, "uptime"))[1] and "load average:" in (await sh(sim, "uptime"))[1]
    assert (await sh(sim, "uptime -p"))[1].startswith("up ")
    assert (await sh(sim, "date +%Y"))[1] == time.strftime("%Y\n", time.gmtime())
    assert (await sh(sim, "journalctl -u pveproxy -n 4 --no-pager"))[1].count("\n") == 4
    assert (await sh(sim, "journalctl -u nosuch -n 4"))[1] == "-- No entries --\n"
    assert (await sh(sim, "ls /etc/pve/qemu-server"))[1].split() == [
        f"{g.vmid}.conf" for g in sim.cluster.guests_on("pve1", "qemu")
    ]
    assert (await sh(sim, "ls /nope"))[0] == 2


async def test_host_health_commands_report_the_simulated_cluster(sim: Sim) -> None:
    status, out, _ = await sh(sim, "corosync-quorumtool -s", node="pve2")
    assert status == 0 and "Quorate:          Yes" in out and f"Nodes:            {len(sim.cluster.nodes)}" in out
    assert "         2          1 pve2 (local)" in out.splitlines()
    status, out, _ = await sh(sim, "corosync-quorumtool -l -i -o n")
    assert status == 0 and [line.split()[2] for line in out.splitlines()[4:]] == [
        node.ip for node in sorted(sim.cluster.nodes.values(), key=lambda n: n.nodeid)
    ]
    assert (await sh(sim, "corosync-quorumtool -e 1"))[0] == 1
    status, out, _ = await sh(sim, "vmstat -w 1 2")
    assert status == 0 and len(out.splitlines()) == 4
    assert out.splitlines()[1].split()[-5:] == ["us", "sy", "id", "wa", "st"]
    assert len((await sh(sim, "vmstat"))[1].splitlines()) == 3
    status, out, _ = await sh(sim, "timedatectl")
    assert status == 0 and "System clock synchronized: yes" in out
    assert "NTPSynchronized=yes" in (await sh(sim, "timedatectl show -p NTPSynchronized"))[1]
    assert (await sh(sim, "timedatectl set-time 12:00"))[0] == 1


async def test_unknown_commands_answer_like_bash(sim: Sim) -> None:
    assert await sh(sim, "rm -rf /") == (127, "", "bash: rm: command not found\n")
    assert await sh(sim, "/usr/bin/uptime") == (0, (await sh(sim, "uptime"))[1], "")
    assert await sh(sim, "/opt/tool") == (127, "", "bash: /opt/tool: No such file or directory\n")
    assert (await sh(sim, "echo 'unterminated"))[0] == 2
    status, _, err = await sh(sim, "echo hi > /etc/passwd")
    assert status == 2 and "not supported" in err
    assert (await sh(sim, "cat /etc/shadow"))[0] == 1


async def test_sequences_pipes_and_exit_status_variables_work_as_in_bash(sim: Sim) -> None:
    assert await sh(sim, "true && echo yes || echo no") == (0, "yes\n", "")
    assert await sh(sim, "false && echo yes || echo no") == (0, "no\n", "")
    assert await sh(sim, "false; echo $?") == (0, "1\n", "")
    assert await sh(sim, "echo $HOME $HOSTNAME") == (0, "/root pve1\n", "")
    assert await sh(sim, "qm list | grep -c running") == (0, "1\n", "")
    assert await sh(sim, "journalctl -u pvedaemon -n 20 | head -n 2 | wc -l") == (0, "2\n", "")
    assert await sh(sim, "printf x | cat") == (0, "", "bash: printf: command not found\n")


async def test_sleep_waits_and_timeout_interrupts(sim: Sim) -> None:
    started = time.monotonic()
    assert await sh(sim, "sleep 0.1") == (0, "", "")
    assert time.monotonic() - started >= 0.1
    assert (await sh(sim, "timeout 0.05 sleep 10"))[0] == 124
    assert (await sh(sim, "timeout -s KILL 0.05 sleep 10"))[0] == 137
    assert (await sh(sim, "timeout --preserve-status -s INT 0.05 sleep 10"))[0] == 130
    assert (await sh(sim, "timeout -k 1 1 hostname")) == (0, "pve1\n", "")
    assert (await sh(sim, "timeout 1 nosuch"))[0] == 127
    assert (await sh(sim, "timeout x sleep 1"))[0] == 125
    assert (await sh(sim, "sleep abc"))[0] == 1
    started = asyncio.Event()
    task = asyncio.ensure_future(run_line("echo started; sleep 30", host_shell(sim, "pve1"),
                                          Streams(lambda _: started.set(), lambda _: None)))
    await asyncio.wait_for(started.wait(), 5)  # echo never suspends: the shell is in the sleep now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_pvesh_prints_the_api_answer_in_the_requested_format(sim: Sim) -> None:
    status, out, _ = await sh(sim, "pvesh get /nodes/pve1/qemu --output-format json")
    assert status == 0 and [g["vmid"] for g in json.loads(out)] == [
        g.vmid for g in sim.cluster.guests_on("pve1", "qemu")
    ]
    assert json.loads((await sh(sim, "pvesh get /version --output-format json-pretty"))[1])["release"] == "9.1"
    assert (await sh(sim, "pvesh get /version --output-format yaml"))[1].startswith("---\n")
    assert "│ release" in (await sh(sim, "pvesh get /version"))[1]
    assert (await sh(sim, "pvesh get /cluster/resources --type vm --output-format json --noborder"))[0] == 0


async def test_pvesh_errors_look_like_pvesh(sim: Sim) -> None:
    status, _, err = await sh(sim, "pvesh get /cluster/resources --type bogus")
    assert status == 255 and err.startswith("400 Parameter verification failed.\ntype: value 'bogus'")
    assert err.endswith("pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")
    assert await sh(sim, "pvesh get /nodes/pve1/bogus") == (
        255,
        "",
        "No 'get' handler defined for '/nodes/pve1/bogus'\n",
    )
    assert (await sh(sim, "pvesh frobnicate /x"))[0] == 255
    assert (await sh(sim, "pvesh get"))[0] == 255
    assert (await sh(sim, "pvesh get /version --output-format xml"))[0] == 255


async def test_pvesh_create_waits_for_the_task_and_prints_the_upid(sim: Sim) -> None:
    guest = next(g for g in sim.cluster.guests_on("pve1", "qemu") if not g.running)
    status, out, _ = await sh(sim, f"pvesh create /nodes/pve1/qemu/{guest.vmid}/status/start --output-format json")
    assert status == 0 and json.loads(out.splitlines()[-1]).startswith("UPID:pve1:") and guest.running
    status, out, err = await sh(sim, f"pvesh create /nodes/pve1/qemu/{guest.vmid}/status/start")
    assert (status, err) == (255, f"VM {guest.vmid} already running\n")


async def test_qm_and_pct_drive_local_guests_and_wait_for_their_tasks(sim: Sim) -> None:
    vm = next(g for g in sim.cluster.guests_on("pve1", "qemu") if not g.running)
    assert await sh(sim, f"qm start {vm.vmid}") == (0, "", "")
    assert await sh(sim, f"qm status {vm.vmid}") == (0, "status: running\n", "")
    assert await sh(sim, f"qm start {vm.vmid}") == (255, "", f"VM {vm.vmid} already running\n")
    assert "qmpstatus: running" in (await sh(sim, f"qm status {vm.vmid} --verbose"))[1]
    assert f"name: {vm.name}" in (await sh(sim, f"qm config {vm.vmid}"))[1]
    assert await sh(sim, f"qm snapshot {vm.vmid} snap1") == (0, "", "")
    assert "snap1" in (await sh(sim, f"qm listsnapshot {vm.vmid}"))[1]
    assert await sh(sim, f"qm rollback {vm.vmid} snap1") == (0, "", "")
    assert await sh(sim, f"qm delsnapshot {vm.vmid} snap1") == (0, "", "")
    assert await sh(sim, "qm start") == (255, "", "400 not enough arguments\nqm start <vmid> [OPTIONS]\n")
    assert (await sh(sim, "qm start abc"))[2].startswith("400 Parameter verification failed.\nvmid: type check")
    other = next(g for g in sim.cluster.guests.values() if g.node != "pve1" and g.kind == "qemu")
    assert (await sh(sim, f"qm status {other.vmid}"))[
        2
    ] == f"Configuration file 'nodes/pve1/qemu-server/{other.vmid}.conf' does not exist\n"
    assert (await sh(sim, "qm frob"))[2].startswith("ERROR: unknown command 'qm frob'")
    ct = sim.cluster.guests_on("pve1", "lxc")[0]
    listing = (await sh(sim, "pct list"))[1]
    assert listing.splitlines()[0].split() == ["VMID", "Status", "Lock", "Name"] and str(ct.vmid) in listing
    assert await sh(sim, f"pct exec {ct.vmid} -- hostname") == (0, f"{ct.name}\n", "")
    assert await sh(sim, f"pct exec {ct.vmid} -- sh -c 'exit_code_test; echo done'") == (
        0,
        "done\n",
        "bash: exit_code_test: command not found\n",
    )
    assert await sh(sim, f"pct stop {ct.vmid}") == (0, "", "")
    assert await sh(sim, f"pct exec {ct.vmid} -- hostname") == (255, "", f"CT {ct.vmid} not running\n")


async def test_guest_shells_have_no_proxmox_tools(sim: Sim) -> None:
    guest = next(g for g in sim.cluster.guests.values() if g.kind == "qemu" and g.running)
    out: list[str] = []
    err: list[str] = []
    env = guest_shell(sim, guest)
    assert await run_argv(["qm", "list"], env, Streams(out.append, err.append)) == 127
    assert await run_argv(["/usr/sbin/pct", "list"], env, Streams(out.append, err.append)) == 127
    assert await run_argv(["sh", "-c", "which pvesh || command -v uname"], env, Streams(out.append, err.append)) == 0
    assert out == ["/usr/bin/uname\n"]
    out.clear()
    assert await run_argv(["uname", "-r"], env, Streams(out.append, err.append)) == 0
    assert out == ["6.1.0-26-amd64\n"]
    assert await run_argv([], env, Streams(out.append, err.append)) == 0


async def test_the_ssh_workers_remote_timeout_wrapper_runs_the_command(sim: Sim) -> None:
    assert await sh(sim, "exec timeout --signal=TERM --kill-after=5 31 hostname") == (0, "pve1\n", "")
    assert (await sh(sim, "exec timeout --signal=TERM --kill-after=1 0.05 sleep 5"))[0] == 124
    assert await sh(sim, "env LANG=C uname -s") == (0, "Linux\n", "")
    assert await sh(sim, "command -v qm") == (0, "/usr/bin/qm\n", "")
    assert (await sh(sim, "which nosuch"))[0] == 1


async def test_seq_counts_like_coreutils_and_feeds_pipes(sim: Sim) -> None:
    assert await sh(sim, "seq 3") == (0, "1\n2\n3\n", "")
    assert await sh(sim, "seq 2 4") == (0, "2\n3\n4\n", "")
    assert await sh(sim, "seq 10 -5 0") == (0, "10\n5\n0\n", "")
    assert await sh(sim, "seq -w 8 10") == (0, "08\n09\n10\n", "")
    assert await sh(sim, "seq -s , 1 3") == (0, "1,2,3\n", "")
    assert await sh(sim, "seq 1 100000 | wc -l") == (0, "100000\n", "")
    assert (await sh(sim, "seq 1 200000"))[1].count("\n") == 200000
    assert await sh(sim, "seq 5 1") == (0, "", "")
    status, _, err = await sh(sim, "seq 1 0 3")
    assert status == 1 and "Zero increment" in err
    status, _, err = await sh(sim, "seq x")
    assert status == 1 and "invalid argument" in err
