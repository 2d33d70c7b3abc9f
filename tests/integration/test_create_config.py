"""container.json settings, each checked from inside a real container.

Capability masks are computed from names with ``names_to_mask`` (never
hard-coded hex); identities, limits and mounts are read back from /proc and
the container's own tools.
"""
from __future__ import annotations

import json
import os
import resource
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from conftest import Nsinit, REPO, give_rootfs_to_mapped_root, needs_root, ok, stderr_lines
from nsinit.capabilities import last_cap, names_to_mask
from nsinit.config.names import CAPABILITIES

pytestmark = needs_root

# The 14 capabilities a container gets when container.json names none.
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]

SAMPLE_2014 = REPO / "tests" / "unit" / "data" / "sample-2014.json"


def status_fields(text: str) -> dict[str, str]:
    return {key: value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())}


def cap_sets(nsinit: Nsinit, *exec_options: str) -> dict[str, int]:
    """CapInh, CapPrm, CapEff, CapBnd, CapAmb of a command run in the container."""
    fields = status_fields(ok(nsinit.run("exec", *exec_options, "cat", "/proc/self/status")))
    return {key: int(fields[key], 16) for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def host_cap(name: str) -> int:
    return int(status_fields(Path("/proc/self/status").read_text())[name], 16)


def mask(*names: str) -> int:
    return names_to_mask(name if name.startswith("CAP_") else "CAP_" + name for name in names)


# --- capabilities -----------------------------------------------------------------

def test_default_capabilities_are_the_14(nsinit: Nsinit) -> None:
    expected = mask(*DEFAULT_CAPS)
    assert cap_sets(nsinit) == {"CapInh": 0, "CapPrm": expected, "CapEff": expected,
                                "CapBnd": expected, "CapAmb": 0}


def test_capability_whitelist(nsinit: Nsinit) -> None:
    nsinit.config(capabilities=["chown", "CAP_KILL", "NET_RAW"])
    expected = mask("CHOWN", "KILL", "NET_RAW")
    assert cap_sets(nsinit) == {"CapInh": 0, "CapPrm": expected, "CapEff": expected,
                                "CapBnd": expected, "CapAmb": 0}


def test_capability_sets_with_ambient_for_a_user(nsinit: Nsinit) -> None:
    nsinit.config(user="1000:1000", capabilities={
        "bounding": ["CHOWN", "KILL", "NET_RAW", "NET_BIND_SERVICE"],
        "effective": ["NET_BIND_SERVICE"],
        "permitted": ["NET_RAW", "NET_BIND_SERVICE"],
        "inheritable": ["NET_BIND_SERVICE"],
        "ambient": ["NET_BIND_SERVICE"],
    })
    # Across execve a non-root user keeps exactly the ambient set (cat has
    # no file capabilities); NET_RAW, only permitted, is gone.
    ambient = mask("NET_BIND_SERVICE")
    assert cap_sets(nsinit) == {"CapInh": ambient, "CapPrm": ambient, "CapEff": ambient,
                                "CapBnd": mask("CHOWN", "KILL", "NET_RAW", "NET_BIND_SERVICE"),
                                "CapAmb": ambient}


def test_capabilities_mask_2014_drops_only_those(nsinit: Nsinit) -> None:
    # Of the capabilities of 2014 that nsinit holds; never DAC_READ_SEARCH.
    dropped = json.loads(SAMPLE_2014.read_text())["capabilities_mask"]
    nsinit.config(capabilities_mask=dropped)
    of_2014 = names_to_mask(n for n, bit in CAPABILITIES.items() if bit <= min(last_cap(), CAPABILITIES["CAP_BLOCK_SUSPEND"]))
    expected = of_2014 & host_cap("CapPrm") & host_cap("CapBnd") & ~mask(*dropped, "DAC_READ_SEARCH")
    assert cap_sets(nsinit) == {"CapInh": 0, "CapPrm": expected, "CapEff": expected,
                                "CapBnd": expected, "CapAmb": 0}


# --- umask ------------------------------------------------------------------------

@contextmanager
def caller_umask(mask: int) -> Iterator[None]:
    """nsinit started with this umask (a host setting the container must not get)."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_the_process_gets_umask_0022_not_the_callers(nsinit: Nsinit) -> None:
    with caller_umask(0o077):
        out = ok(nsinit.sh("umask; touch /tmp/f; stat -c %a /tmp/f"))
    assert out.split() == ["0022", "644"]


def test_the_configured_umask_is_applied(nsinit: Nsinit) -> None:
    nsinit.config(umask="0077")
    with caller_umask(0):
        assert ok(nsinit.sh("umask")).strip() == "0077"


# --- user and groups --------------------------------------------------------------

ID_SCRIPT = 'id -u; id -g; id -G; echo "$HOME"'


def test_user_by_name_gets_its_groups_and_home(nsinit: Nsinit) -> None:
    nsinit.config(user="user")
    uid, gid, groups, home = ok(nsinit.sh(ID_SCRIPT)).splitlines()
    assert (uid, gid, home) == ("1000", "1000", "/home/user")
    assert sorted(groups.split()) == ["10", "1000"]  # its own group and wheel


def test_the_demo_rootfs_has_the_daemon_user(nsinit: Nsinit) -> None:
    # The seed's API sample runs its process as User: "daemon".
    nsinit.config(user="daemon")
    uid, gid, groups, home = ok(nsinit.sh(ID_SCRIPT)).splitlines()
    assert (uid, gid, groups, home) == ("1", "1", "1", "/usr/sbin")
    assert ok(nsinit.sh("id -un; id -gn; id -u nobody")).split() == ["daemon", "daemon", "65534"]


def test_user_as_uid_gid(nsinit: Nsinit) -> None:
    nsinit.config(user="1000:1000")
    uid, gid, groups, home = ok(nsinit.sh(ID_SCRIPT)).splitlines()
    assert (uid, gid, groups, home) == ("1000", "1000", "1000", "/home/user")


@pytest.mark.parametrize("spec", ["user", "1000", "1000:1000"])
def test_user_option_overrides_the_config(nsinit: Nsinit, spec: str) -> None:
    uid, gid, groups, _ = ok(nsinit.exec("--user", spec, "/bin/sh", "-c", ID_SCRIPT)).splitlines()
    assert (uid, gid) == ("1000", "1000")
    assert "0" not in groups.split()


def test_non_root_user_has_no_effective_capabilities(nsinit: Nsinit) -> None:
    caps = cap_sets(nsinit, "--user", "user")
    assert caps == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": mask(*DEFAULT_CAPS), "CapAmb": 0}


# --- rlimits ------------------------------------------------------------------------

def limits(text: str) -> dict[str, tuple[str, str]]:
    rows = {}
    for line in text.splitlines()[1:]:
        name, soft, hard = line[:26].strip(), *line[26:].split()[:2]
        rows[name] = (soft, hard)
    return rows


def test_rlimits_are_set(nsinit: Nsinit) -> None:
    nsinit.config(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048},
                           {"type": resource.RLIMIT_CORE, "soft": 0, "hard": 0}])
    rows = limits(ok(nsinit.exec("cat", "/proc/self/limits")))
    assert rows["Max open files"] == ("1024", "2048")
    assert rows["Max core file size"] == ("0", "0")


def test_raising_a_hard_rlimit_fails_in_one_line(nsinit: Nsinit) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("the host's NOFILE hard limit is unlimited: nothing to raise")
    if host_cap("CapEff") & mask("SYS_RESOURCE"):
        pytest.skip("root has CAP_SYS_RESOURCE here and may raise hard limits")
    nsinit.config(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard + 1000}])
    result = nsinit.exec("true")
    assert result.returncode == 125
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("nsinit: rlimits: "), lines


# --- filesystem ------------------------------------------------------------------------

def test_readonlyfs(nsinit: Nsinit) -> None:
    nsinit.config(readonlyfs=True)
    result = nsinit.sh("touch /x; echo root=$?; touch /tmp/x; echo tmp=$?; touch /dev/shm/x && echo shm=ok")
    out = ok(result, quiet=False).split()  # the shell says which writes failed
    # The default config has no tmpfs on /tmp: it is part of the read-only root.
    assert out[0] != "root=0" and out[1] != "tmp=0" and out[2] == "shm=ok"
    assert "Read-only file system" in result.stderr
    assert not (nsinit.root / "x").exists()


def test_no_pivot_root(nsinit: Nsinit) -> None:
    nsinit.config(no_pivot_root=True)
    assert ok(nsinit.sh("test -f /container.json && echo $$ && hostname && cat /proc/sys/kernel/hostname")) \
        == "1\nnsinit\nnsinit\n"


def test_bind_mounts_2014_form(nsinit: Nsinit, tmp_path: Path) -> None:
    data_file = tmp_path / "data.txt"
    data_file.write_text("from the host\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    nsinit.config(mounts=[
        {"source": str(data_file), "destination": "/mnt/data.txt", "writable": False, "private": True},
        {"source": str(shared), "destination": "/shared", "writable": True},
    ])
    result = nsinit.sh("cat /mnt/data.txt; echo changed >> /mnt/data.txt; echo append=$?;"
                       " echo hello > /shared/new && echo write=ok")
    out = ok(result, quiet=False).splitlines()  # the shell says which writes failed
    assert out == ["from the host", "append=1", "write=ok"]
    assert data_file.read_text() == "from the host\n"
    assert (shared / "new").read_text() == "hello\n"


@pytest.mark.parametrize("target", ["/etc", "../../../../../../../../etc"])
def test_symlinked_mount_destination_stays_in_the_rootfs(nsinit: Nsinit, tmp_path: Path,
                                                         target: str) -> None:
    name = f"nsinit-escape-test-{os.getpid()}"
    source = tmp_path / "payload"
    source.write_text("payload\n")
    (nsinit.root / "evil").symlink_to(target)
    nsinit.config(mounts=[{"source": str(source), "destination": f"/evil/{name}", "writable": False}])
    assert ok(nsinit.exec("cat", f"/etc/{name}")) == "payload\n"
    assert not Path("/etc", name).exists(), "the mount destination escaped to the host's /etc"
    assert (nsinit.root / "etc" / name).exists()


def test_user_namespace_maps(nsinit: Nsinit, traversable: None) -> None:
    base = 100000
    give_rootfs_to_mapped_root(nsinit, base)
    out = ok(nsinit.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u:%g /bin/busybox;"
                       " stat -c %u /home/user; echo $$"))
    lines = [line.split() for line in out.splitlines()]
    assert lines == [["0", str(base), "65536"], ["0", str(base), "65536"], ["0"], ["0:0"], ["1000"], ["1"]]


# --- the 2014 sample -------------------------------------------------------------------

@pytest.mark.parametrize("tty", ["from the config", "--no-tty"])
def test_the_2014_sample_runs(nsinit: Nsinit, tmp_path: Path, tty: str) -> None:
    sample = json.loads(SAMPLE_2014.read_text())
    del sample["networks"]  # veth: the networking issue
    del sample["context"]   # an AppArmor profile this kernel may not have
    for mount in sample["mounts"]:
        source = tmp_path / Path(mount["source"]).name
        source.write_text(f"sample {source.name}\n")
        mount["source"] = str(source)
    (nsinit.root / "container.json").write_text(json.dumps(sample))
    options = [] if tty == "from the config" else ["--no-tty"]
    result = nsinit.run("exec", *options, "/bin/sh", "-c",
                        "hostname; cat /etc/resolv.conf /etc/hostname /etc/hosts;"
                        " (echo x > /etc/hosts) 2>/dev/null || echo read-only; grep CapBnd /proc/self/status")
    out = ok(result).replace("\r\n", "\n").splitlines()
    assert out[:5] == ["koye", "sample resolv.conf", "sample hostname", "sample hosts", "read-only"]
    # The 2014 capabilities nsinit holds, minus the mask, never DAC_READ_SEARCH.
    of_2014 = names_to_mask(n for n, bit in CAPABILITIES.items() if bit <= min(last_cap(), CAPABILITIES["CAP_BLOCK_SUSPEND"]))
    held = host_cap("CapPrm") & host_cap("CapBnd")
    assert int(out[5].split()[1], 16) == of_2014 & held & ~mask(*sample["capabilities_mask"], "DAC_READ_SEARCH")


# --- kernel knobs ---------------------------------------------------------------------

def test_sysctl(nsinit: Nsinit) -> None:
    nsinit.config(sysctl={"net.ipv4.ip_forward": "1", "kernel.domainname": "nsinit.test"})
    assert ok(nsinit.exec("cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/domainname")) \
        == "1\nnsinit.test\n"


def test_oom_score_adj(nsinit: Nsinit) -> None:
    nsinit.config(oom_score_adj=500)
    assert ok(nsinit.exec("cat", "/proc/self/oom_score_adj")) == "500\n"


@pytest.mark.parametrize("enabled", [True, False])
def test_no_new_privileges(nsinit: Nsinit, enabled: bool) -> None:
    nsinit.config(no_new_privileges=enabled)
    fields = status_fields(ok(nsinit.exec("cat", "/proc/self/status")))
    assert fields["NoNewPrivs"] == ("1" if enabled else "0")


def _apparmor_enabled() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False


@pytest.mark.skipif(not _apparmor_enabled(), reason="this kernel has no AppArmor")
def test_apparmor_profile_is_applied_at_exec(nsinit: Nsinit) -> None:
    nsinit.config(apparmor_profile="unconfined")
    result = nsinit.sh("cat /proc/self/attr/current")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "unconfined"


@pytest.mark.skipif(_apparmor_enabled(), reason="this kernel has AppArmor")
def test_apparmor_profile_without_apparmor_is_refused(nsinit: Nsinit) -> None:
    nsinit.config(apparmor_profile="docker-default")
    result = nsinit.exec("/bin/true")
    assert result.returncode == 125
    assert result.stderr.strip() == ("nsinit: container.json: apparmor_profile: "
                                     "AppArmor is not enabled on this kernel")


def test_time_and_cgroup_namespaces_are_created_and_joined(nsinit: Nsinit) -> None:
    kinds = ("NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWTIME", "NEWCGROUP")
    nsinit.config(namespaces=[{"type": t} for t in kinds])
    host = {name: os.readlink(f"/proc/self/ns/{name}") for name in ("time", "cgroup")}
    init = nsinit.popen("exec", "/bin/sh", "-c", "touch /ready; exec sleep 30")
    try:
        nsinit.wait_for(lambda: (nsinit.root / "ready").exists())
        result = nsinit.sh("for n in time cgroup; do readlink /proc/self/ns/$n; readlink /proc/1/ns/$n; done")
        assert result.returncode == 0, result.stderr
        own_time, init_time, own_cgroup, init_cgroup = result.stdout.split()
        assert own_time == init_time != host["time"]
        assert own_cgroup == init_cgroup != host["cgroup"]
    finally:
        nsinit.run("kill", "KILL")
        init.communicate(timeout=10)
