"""nsinit.oci.process: a runtime-spec Process JSON (nsinit-runc exec --process)
and runc's exec flags -> one nsinit Process; HookPlan's state and record."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nsinit.config.model import CapabilitySets, Config, Rlimit
from nsinit.errors import ConfigError, ConfigErrors, NsinitError
from nsinit.lifecycle.hooks import HookPlan
from nsinit.oci.hooks import Hook, Hooks
from nsinit.process_settings import process_config
from nsinit.oci.process import as_engines_read_it, parse_process, process_from_flags, write_pid_file

# What conmon 2.1.6 writes for `podman exec -u 1000 -w /tmp -e FOO=bar CTR sh` (fields as podman 4.3 sets them).
CONMON = {
    "terminal": False, "user": {"uid": 1000, "gid": 1000, "umask": 18, "additionalGids": [10, 1000]},
    "args": ["sh"], "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "FOO=bar",
                            "TERM=xterm", "HOSTNAME=c1"],
    "cwd": "/tmp",
    "capabilities": {key: ["CAP_CHOWN", "CAP_KILL"] for key in ("bounding", "effective", "permitted")},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": False, "oomScoreAdj": 0,
}


def test_conmons_process_json() -> None:
    process = parse_process(CONMON)
    assert process.args == ["sh"] and process.cwd == "/tmp" and process.user == "1000:1000"
    assert "FOO=bar" in process.env and process.tty is False
    assert process.additional_groups == ["10", "1000"] and process.umask == 0o22
    assert process.capabilities is not None and process.capabilities.effective == ("CAP_CHOWN", "CAP_KILL")
    assert process.rlimits is not None and [(r.soft, r.hard) for r in process.rlimits] == [(1024, 1024)]
    assert process.no_new_privileges is False and process.oom_score_adj == 0


def test_what_is_absent_stays_the_containers() -> None:
    process = parse_process({"args": ["sh"], "cwd": "/"})
    assert process.capabilities is process.rlimits is process.no_new_privileges is process.umask is None
    config = Config(source="t", rootfs="/", namespaces=(), capabilities=CapabilitySets(effective=("CAP_KILL",)), mounts=(),
                    devices=(), environment=(), mask_paths=(), readonly_paths=(),
                    rlimits=(Rlimit(7, 10, 10),), no_new_privileges=True, umask=0o77)
    mine = process_config(config, process)
    assert mine.capabilities.effective == ("CAP_KILL",) and mine.no_new_privileges and mine.umask == 0o77
    assert mine.additional_groups == ()  # the process's own: it has none
    changed = process_config(config, parse_process(CONMON))
    assert changed.no_new_privileges is False and changed.umask == 0o22 and changed.rlimits[0].soft == 1024


@pytest.mark.parametrize("change, message", [
    ({"ioPriority": {"class": "IOPRIO_CLASS_RT"}}, "ioPriority: not supported"),
    ({"scheduler": {"policy": "SCHED_FIFO"}}, "scheduler: not supported"),
    ({"user": {"uid": -1}}, "user.uid: "),
    ({"args": []}, "args: must name the command to run"),
    ({"cwd": "tmp"}, "cwd: "),
    ({"capabilities": {"effective": ["CAP_NOPE"]}}, "capabilities.effective"),
    ({"rlimits": [{"type": "RLIMIT_NOPE", "hard": 1, "soft": 1}]}, "rlimits[0].type"),
    ({"terminal": "yes"}, "terminal: "),
    ({"consoleSize": {"height": -1, "width": 80}}, "consoleSize.height: "),
])
def test_a_bad_field_is_named(change: dict[str, Any], message: str) -> None:
    data = {**CONMON, **change}
    with pytest.raises(ConfigError) as failed:
        parse_process(data, "p.json")
    errors = failed.value.errors if isinstance(failed.value, ConfigErrors) else [failed.value]
    assert any(str(error).startswith(f"p.json: {message}") for error in errors), [str(e) for e in errors]


def test_the_flag_form() -> None:
    words: dict[str, Any] = {"COMMAND": ["--", "sh", "-c", "x"], "--user": "1000", "--cwd": "/etc",
                             "--env": ["A=1"], "--tty": True, "--additional-gids": ["5"], "--cap": ["net_raw"],
                             "--no-new-privs": False, "--apparmor": None, "--process-label": None}
    process = process_from_flags(words, CapabilitySets(bounding=("CAP_KILL",), effective=("CAP_KILL",)))
    assert process.args == ["sh", "-c", "x"] and process.user == "1000:0" and process.cwd == "/etc"
    assert process.env == ["A=1"] and process.tty is True and process.additional_groups == ["5"]
    assert process.capabilities is not None
    assert process.capabilities.bounding == ("CAP_KILL", "CAP_NET_RAW") and process.capabilities.ambient == ()
    for key, value, message in (("--user", "root", "--user"), ("--cwd", "etc", "--cwd"),
                                ("--env", ["A"], "--env"), ("--cap", ["nope"], "--cap"), ("COMMAND", [], "give")):
        with pytest.raises(NsinitError, match=message):
            process_from_flags({**words, key: value}, CapabilitySets())


def test_pid_file_is_bare_decimal(tmp_path: Path) -> None:
    write_pid_file(str(tmp_path / "pid"), 4242)
    assert (tmp_path / "pid").read_bytes() == b"4242"
    assert [p.name for p in tmp_path.iterdir()] == ["pid"]
    with pytest.raises(NsinitError, match="--pid-file"):
        write_pid_file(str(tmp_path / "no" / "pid"), 1)


def test_podmans_words_for_127_and_126() -> None:
    missing = as_engines_read_it(NsinitError("exec", "x: command not found in the rootfs /r", 127))
    assert "executable file not found in $PATH" in str(missing) and missing.exit_code == 127
    denied = as_engines_read_it(NsinitError("exec", "/x: Permission denied", 126))
    assert str(denied) == "exec: /x: Permission denied (permission denied)" and denied.exit_code == 126
    other = NsinitError("mounts", "boom")
    assert as_engines_read_it(other) is other


def test_hook_plan_round_trips_through_the_record() -> None:
    hooks = Hooks(create_runtime=(Hook("/bin/a", ("a", "1"), ("K=V",), 3),), poststop=(Hook("/bin/b"),))
    plan = HookPlan(hooks, "c1", "/b", "1.0.2", (("k", "v"),))
    again = HookPlan.from_record(json.loads(json.dumps(plan.to_record())))
    assert again == plan
    assert plan.state("creating", 7) == {"ociVersion": "1.0.2", "id": "c1", "status": "creating", "pid": 7,
                                         "bundle": "/b", "annotations": {"k": "v"}}
    assert HookPlan.from_record({}) is None
