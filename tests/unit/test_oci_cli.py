"""nsinit-runc's command line: what podman, conmon, containerd and go-runc send and
read (shared/reference/oci-clients.md), run as a real process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from nsinit.oci.usage import USAGES
from nsinit.oci.spec import load_bundle

NOT_YET = "not yet implemented in nsinit-runc"


def runc(*argv: str, cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "nsinit.oci", *argv], capture_output=True, text=True,
                          cwd=cwd, input=stdin, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def failed(done: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a run that must have failed with exit 1."""
    assert done.returncode == 1, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_version_as_go_runc_parses_it() -> None:
    done = runc("--version")
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith("runc version ") and len(lines[0].split()) == 3
    assert lines[1] == "spec: 1.1.0"
    assert runc("-v").stdout == done.stdout


def test_features_in_runcs_shape() -> None:
    done = runc("features")
    assert done.returncode == 0
    features = json.loads(done.stdout)
    assert features["ociVersionMin"] == "1.0.0" and features["ociVersionMax"] == "1.1.0"
    assert features["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer",
                                 "poststart", "poststop"]
    assert {"rbind", "rprivate", "ro", "nosuid"} <= set(features["mountOptions"])
    assert "tmpcopyup" in features["mountOptions"] and "rro" not in features["mountOptions"]
    linux = features["linux"]
    assert set(linux["namespaces"]) == {"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"}
    assert "CAP_SYS_ADMIN" in linux["capabilities"]
    assert linux["cgroup"]["systemd"] is False and linux["seccomp"]["enabled"] is True
    assert "SCMP_ACT_ERRNO" in linux["seccomp"]["actions"] and "SCMP_ARCH_X86_64" in linux["seccomp"]["archs"]


@pytest.mark.parametrize("command, argv", [
    # The argv conmon and containerd send (oci-clients.md), both --x=v and --x v.
    ("start", ["start", "c1"]),
    ("state", ["state", "c1"]),
    ("kill", ["kill", "c1", "15"]),
    ("kill", ["kill", "--all", "c1", "9"]),
    ("delete", ["delete", "c1"]),
    ("ps", ["ps", "--format", "json", "c1"]),
    ("ps", ["ps", "c1", "-o", "pid"]),
    ("pause", ["pause", "c1"]),
    ("resume", ["resume", "c1"]),
    ("update", ["update", "--memory", "1M", "c1"]),
])
def test_every_lifecycle_command_is_recognised_and_knows_an_unknown_id(tmp_path: Path, command: str,
                                                                       argv: list[str]) -> None:
    # containerd matches "does not exist" to tell a container that is gone.
    done = runc("--root", str(tmp_path / "r"), *argv)
    assert failed(done) == f'nsinit-runc: {command}: container "c1" does not exist'
    assert os.listdir(tmp_path / "r") == []


@pytest.mark.parametrize("argv", [
    ["delete", "--force", "c1"],
    ["delete", "-f", "c1"],
])
def test_delete_force_of_an_unknown_id_is_no_error(tmp_path: Path, argv: list[str]) -> None:
    # podman's cleanup and containerd's shim both delete --force after the container went.
    done = runc("--root", str(tmp_path / "r"), *argv)
    assert done.returncode == 0 and done.stdout == done.stderr == ""


@pytest.mark.parametrize("argv", [
    ["exec", "--pid-file", "/p", "--process", "/f", "--detach", "--tty", "--console-socket", "/s", "c1"],
    ["exec", "--process=/f", "--detach", "--pid-file=/p", "c1"],
    ["exec", "-e", "A=1", "--env=B=2", "c1", "sh", "-c", "echo --not-an-option"],
])
def test_exec_is_parsed_as_conmon_and_the_shim_send_it(tmp_path: Path, argv: list[str]) -> None:
    """Every form reaches the container lookup (the words after the ID are the process's)."""
    assert failed(runc("--root", str(tmp_path), *argv)) == 'nsinit-runc: exec: container "c1" does not exist'


@pytest.mark.parametrize("command, argv", [
    ("events", ["events", "--stats", "c1"]),
])
def test_the_commands_still_to_come_are_parsed_and_say_not_yet(command: str, argv: list[str]) -> None:
    assert failed(runc(*argv)) == f"nsinit-runc: {command}: {NOT_YET}"


@pytest.mark.parametrize("argv, expected", [
    (["checkpoint", "--image-path", "/i", "--work-path", "/w", "--leave-running", "c1"],
     'checkpoint: container "c1" does not exist'),
    (["restore", "--image-path=/i", "--detach", "--bundle", "/nonexistent-b", "c1"], "restore: "),
    (["checkpoint", "--lazy-pages", "c1"], "checkpoint: --lazy-pages: not supported"),
    (["restore", "--empty-ns", "bogus", "c1"], 'restore: --empty-ns: "bogus" is not one of network'),
])
def test_checkpoint_and_restore_are_parsed_as_engines_send_them(tmp_path: Path, argv: list[str],
                                                                expected: str) -> None:
    assert failed(runc("--root", str(tmp_path), *argv)).startswith(f"nsinit-runc: {expected}")


@pytest.mark.parametrize("argv, expected", [
    (["c1"], "c1"),
    (["bad/id"], 'invalid id format: "bad/id"'),
    ([".."], 'invalid id format: ".."'),
    (["a" * 256], "invalid id format: the id has 256 characters"),
])
def test_ids_are_validated_as_libcontainer_does(tmp_path: Path, argv: list[str], expected: str) -> None:
    line = failed(runc("--root", str(tmp_path / "r"), "state", *argv))
    assert expected in line


def test_options_of_exec_and_ps_end_at_the_id() -> None:
    from nsinit.oci.usage import parse_command_words

    words = parse_command_words("ps", ["--format", "json", "c1", "-o", "pid,comm"], USAGES["ps"])
    assert words["--format"] == "json" and words["ID"] == "c1" and words["PS_ARG"] == ["-o", "pid,comm"]
    words = parse_command_words("exec", ["-e", "A=1", "--env=B=2", "--pid-file", "/p", "c1", "sh", "-c", "x --help"],
                                USAGES["exec"])
    assert words["--env"] == ["A=1", "B=2"] and words["--pid-file"] == "/p"
    assert words["ID"] == "c1" and words["COMMAND"] == ["sh", "-c", "x --help"]


def test_list_of_an_empty_root(tmp_path: Path) -> None:
    done = runc("--root", str(tmp_path / "r"), "list")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    done = runc("--root", str(tmp_path / "r"), "list", "--format", "json")
    assert json.loads(done.stdout) == []


def test_every_runc_command_has_a_usage() -> None:
    assert set(USAGES) == {"create", "run", "start", "state", "kill", "delete", "exec", "ps", "pause", "resume",
                           "update", "list", "events", "checkpoint", "restore", "spec", "features"}


def test_every_command_has_its_body_where_the_dispatch_looks() -> None:
    import importlib

    from nsinit.oci.cli import COMMAND_HOMES

    assert set(COMMAND_HOMES) == set(USAGES)
    for command, home in COMMAND_HOMES.items():
        assert home is None or callable(getattr(importlib.import_module(home), f"cmd_{command}")), command


def test_global_options_before_the_command_in_both_forms(tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    # containerd's form: --root R --log F --log-format json
    done = runc("--root", str(tmp_path / "r"), "--log", str(log), "--log-format", "json", "delete", "c1")
    assert failed(done) == 'nsinit-runc: delete: container "c1" does not exist'
    done = runc(f"--root={tmp_path}/r", f"--log={log}", "--log-format=json", "--debug", "state", "c1")
    assert done.returncode == 1
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["msg"] for entry in entries] == ['delete: container "c1" does not exist',
                                                   'state: container "c1" does not exist']
    for entry in entries:
        assert entry["level"] == "error"
        datetime.fromisoformat(entry["time"][:26] + "+00:00")  # RFC3339: parses


def test_systemd_cgroup_is_a_clear_error_in_the_log_too(tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    line = failed(runc("--systemd-cgroup", "--log", str(log), "--log-format", "json", "create", "c1"))
    assert line.startswith("nsinit-runc: --systemd-cgroup: not supported: PID 1 is not systemd")
    assert json.loads(log.read_text())["msg"] == line.removeprefix("nsinit-runc: ")


@pytest.mark.parametrize("argv, expected", [
    (["frob"], 'nsinit-runc: frob: unknown command "frob" (see nsinit-runc --help)'),
    (["create"], "nsinit-runc: create: bad arguments; usage: nsinit-runc create [options] ID"),
    (["kill", "--bogus", "c1"], "nsinit-runc: kill: bad arguments; usage: nsinit-runc kill [options] ID [SIGNAL]"),
    (["--log-format", "xml", "state", "c1"], 'nsinit-runc: --log-format: "xml" is not one of text, json'),
    (["--rootless", "maybe", "state", "c1"], 'nsinit-runc: --rootless: "maybe" is not one of true, false, auto'),
])
def test_usage_errors_are_one_line(argv: list[str], expected: str) -> None:
    assert failed(runc(*argv)) == expected


def test_help_for_a_command_and_for_all(tmp_path: Path) -> None:
    done = runc("delete", "--help")
    assert done.returncode == 0 and done.stdout.startswith("Usage: nsinit-runc delete [options] ID")
    assert runc().stdout.startswith("nsinit-runc: runc's command line over nsinit")
    # exec's words after the ID are the process's own, --help included.
    assert failed(runc("--root", str(tmp_path), "exec", "c1", "ls", "--help")) == \
        'nsinit-runc: exec: container "c1" does not exist'


# --- bad bundles: one line naming the field, exit 1, in the log as JSON ------

def bundle(tmp_path: Path, **changes: object) -> Path:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    config = {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/"},
              "linux": {"namespaces": [{"type": "mount"}]}}
    config.update(changes)
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


@pytest.mark.parametrize("case, expected", [
    ("missing", "nsinit-runc: create: {b}/config.json: No such file or directory"),
    ("invalid", "nsinit-runc: create: {b}/config.json: invalid JSON at line 1 column 2: "
                "Expecting property name enclosed in double quotes"),
    ("namespace", 'nsinit-runc: create: config.json: linux.namespaces[1].type: unknown namespace "pidns" '
                  "(expected one of pid, network, mount, ipc, uts, user, cgroup, time)"),
    ("mount", "nsinit-runc: create: config.json: mounts[0].destination: must be an absolute path"),
])
def test_bad_bundles(tmp_path: Path, case: str, expected: str) -> None:
    b = tmp_path / "bundle"
    b.mkdir()
    if case == "invalid":
        (b / "config.json").write_text("{oops")
    elif case == "namespace":
        bundle(b, linux={"namespaces": [{"type": "mount"}, {"type": "pidns"}]})
    elif case == "mount":
        bundle(b, mounts=[{"destination": "proc", "type": "proc"}])
    log = tmp_path / "log.json"
    line = failed(runc("--log", str(log), "--log-format", "json", "create", "--bundle", str(b), "c1"))
    assert line == expected.format(b=b)
    assert json.loads(log.read_text()) == {**json.loads(log.read_text()), "level": "error",
                                           "msg": line.removeprefix("nsinit-runc: ")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "log.json"]  # nothing else made


def test_a_bundle_is_read_and_its_process_checked_before_anything_is_made(tmp_path: Path) -> None:
    b = bundle(tmp_path, unknownKey=1, process={"args": ["sh"], "cwd": "/", "terminal": True})
    log = tmp_path / "log"
    root = tmp_path / "r"
    assert failed(runc("--root", str(root), "--log", str(log), "create", "-b", str(b), "c1")) == (
        "nsinit-runc: create: config.json: process.terminal is true: cannot allocate tty if runc will detach "
        "without setting console socket (the engine receives the pty master there)")
    assert not root.exists()  # checked before the state root was even made
    # The unknown key is a warning in the log, never on stderr (the container's stderr).
    assert 'level=warning msg="config.json: unknown key \\"unknownKey\\" ignored"' in log.read_text()


# --- spec --------------------------------------------------------------------

def test_spec_writes_a_config_this_runtime_reads(tmp_path: Path) -> None:
    done = runc("spec", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == done.stderr == ""
    (tmp_path / "rootfs").mkdir()
    spec, warnings = load_bundle(str(tmp_path))
    assert warnings == [] and spec.args == ("sh",) and spec.config.tty is True and spec.config.readonlyfs
    assert spec.config.capabilities.inheritable == spec.config.capabilities.ambient == ()  # CVE-2022-29162
    assert failed(runc("spec", cwd=tmp_path)) == f"nsinit-runc: spec: {tmp_path}/config.json exists: remove it first"


def test_spec_rootless(tmp_path: Path) -> None:
    import os

    assert runc("spec", "--rootless", "--bundle", str(tmp_path)).returncode == 0
    (tmp_path / "rootfs").mkdir()
    config = load_bundle(str(tmp_path))[0].config
    assert config.has_namespace("NEWUSER") and not config.has_namespace("NEWNET")
    assert [(m.container_id, m.host_id, m.size) for m in config.uid_mappings] == [(0, os.geteuid(), 1)]
    assert all("gid=" not in m.data for m in config.mounts)
    sysfs = next(m for m in config.mounts if m.destination == "/sys")
    assert sysfs.device == "bind" and sysfs.source == "/sys"


# --- the hot commands' plain lines: the dicts docopt makes, or docopt's turn -------------

PLAIN_LINES = [["--root", "/x", "state", "c1"], ["--root=/x", "--debug", "--log", "/l", "--log-format", "json", "start", "c1"],
               ["kill", "c1", "KILL"], ["kill", "-a", "c1"], ["kill", "c1", "--all", "9"], ["delete", "-f", "c1"],
               ["delete", "c1", "--force"], ["--rootless", "true", "--criu", "c", "--systemd-cgroup", "state", "x"],
               ["create", "--bundle", "/b", "--pid-file", "/p", "c1"], ["create", "-b", "/b", "--console-socket=/s", "c1"],
               ["--log", "/l", "create", "c1", "--no-pivot", "--no-new-keyring", "--preserve-fds", "2"], ["create", "c1"]]


@pytest.mark.parametrize("argv", PLAIN_LINES, ids=" ".join)
def test_a_plain_hot_line_parses_as_docopt_parses_it(argv: list[str]) -> None:
    from docopt import docopt

    from nsinit.oci import cli, usage

    hot = cli.parse_hot_command(argv)
    assert hot is not None
    words = docopt(usage.USAGE, argv=argv, default_help=False, options_first=True)
    command = words["COMMAND"]
    assert hot == (words, usage.parse_command_words(command, words["ARG"], usage.USAGES[command] + usage._HELP))


@pytest.mark.parametrize("argv", [["--version"], ["-v"]], ids=" ".join)
def test_a_lone_version_flag_parses_as_docopt_parses_it(argv: list[str]) -> None:
    from docopt import docopt

    from nsinit.oci import cli, usage

    words = docopt(usage.USAGE, argv=argv, default_help=False, options_first=True)
    assert words["--version"] is True
    assert cli.parse_hot_command(argv) == (words, {})


@pytest.mark.parametrize("argv", [["state"], ["state", "a", "b"], ["-h"], ["--debug", "--version"], ["-v", "-v"],
                                  ["--version", "state", "c"], ["--ro", "/x", "state", "c"],
                                  ["kill", "-af", "c"], ["delete", "--", "c"], ["--root", "a", "--root", "b", "state", "c"],
                                  ["kill", "-a", "-a", "c"], ["state", "-h", "c"], ["exec", "c"], ["--root"],
                                  ["--debug=1", "state", "c"], ["create", "-b/b", "c"], ["create", "--bundle", "/b"],
                                  ["create", "-b", "/b", "-b", "/c", "c"], ["create", "--no-pivot=1", "c"],
                                  ["create", "c", "--pid-file"]], ids=" ".join)
def test_any_other_line_is_left_to_docopt(argv: list[str]) -> None:
    from nsinit.oci import cli

    assert cli.parse_hot_command(argv) is None
