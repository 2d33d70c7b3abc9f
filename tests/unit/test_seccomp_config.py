"""Seccomp filters in the config: both forms into one record, every error naming its field."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nsinit.config import config_to_dict, parse_config
from nsinit.config.model import SeccompArg, SeccompConfig, SeccompRule
from nsinit.config.recorded import config_from_dict
from nsinit.config.seccomp import parse_libcontainer, parse_oci
from nsinit.seccomp.profile import from_profile
from nsinit.errors import ConfigError

PODMAN_PROFILE = Path("/usr/share/containers/seccomp.json")

LIBCONTAINER = {
    "default_action": "allow",
    "architectures": ["amd64", "SCMP_ARCH_X86"],
    "syscalls": [
        {"name": "keyctl", "action": "errno", "errno_ret": 38},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 8, "op": "eq"}]},
        {"name": "clone", "action": "kill_process",
         "args": [{"index": 0, "value": 0x10000000, "value_two": 0x10000000, "op": "SCMP_CMP_MASKED_EQ"}]},
    ],
}
EXPECTED = SeccompConfig(
    default_action="allow",
    architectures=("x86_64", "x86"),
    syscalls=(
        SeccompRule(("keyctl",), "errno", 38),
        SeccompRule(("personality",), "errno", 1, (SeccompArg(0, 8, 0, "eq"),)),
        SeccompRule(("clone",), "kill_process", None, (SeccompArg(0, 0x10000000, 0x10000000, "masked_eq"),)),
    ),
)


def load(data: dict, tmp_path: Path) -> tuple[object, list[str]]:
    return parse_config({"seccomp": data}, "container.json", str(tmp_path))


def error(data: dict, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load(data, tmp_path)
    return str(excinfo.value)


def test_libcontainer_form_reads_into_the_record(tmp_path: Path) -> None:
    config, warnings = load(LIBCONTAINER, tmp_path)
    assert config.seccomp == EXPECTED and warnings == []


def test_oci_form_reads_into_the_same_record() -> None:
    oci = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 0, "value": 0x10000000, "valueTwo": 0x10000000, "op": "SCMP_CMP_MASKED_EQ"}]},
        ],
    }
    assert parse_oci(oci, "config.json") == (EXPECTED, [])
    flagged, _ = parse_oci({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
                            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}, "config.json")
    assert flagged == SeccompConfig("errno", 38, flags=("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"))


def test_runcs_libcontainer_numbers_read_as_names(tmp_path: Path) -> None:
    """configs.Action and configs.Operator are Go enums, written as numbers."""
    config, _ = load({"default_action": 4, "architectures": ["amd64", "x86"], "syscalls": [
        {"name": "keyctl", "action": 2, "errnoRet": 38},
        {"name": "personality", "action": 2, "args": [{"index": 0, "value": 8, "value_two": 0, "op": 1}]},
        {"name": "clone", "action": 9, "args": [{"index": 0, "value": 0x10000000, "value_two": 0x10000000, "op": 7}]},
    ]}, tmp_path)
    assert config.seccomp == EXPECTED
    assert error({"default_action": 10}, tmp_path) == \
        "container.json: seccomp.default_action: unknown action 10 (one of allow, errno, kill, kill_process, " \
        "log, notify, trace, trap)"


def test_no_seccomp_means_no_filter(tmp_path: Path) -> None:
    assert parse_config({}, "container.json", str(tmp_path))[0].seccomp is None
    # 2015 configs write the key zero-valued.
    assert load({"default_action": 0, "syscalls": None}, tmp_path)[0].seccomp is None
    assert parse_libcontainer(None, "container.json") == (None, [])


def test_normalised_form_round_trips(tmp_path: Path) -> None:
    config, _ = load(LIBCONTAINER, tmp_path)
    dumped = json.loads(json.dumps(config_to_dict(config)))
    assert dumped["seccomp"]["syscalls"][1] == {
        "names": ["personality"], "action": "errno", "errno_ret": 1,
        "args": [{"index": 0, "value": 8, "value_two": 0, "op": "eq"}],
    }
    assert parse_config(dumped, "dumped.json", "/")[0] == config
    assert config_from_dict(dumped) == config


def test_oci_form_round_trips(tmp_path: Path) -> None:
    from nsinit.config.seccomp import to_oci

    config, _ = load(LIBCONTAINER, tmp_path)
    assert parse_oci(json.loads(json.dumps(to_oci(config.seccomp))), "config.json") == (config.seccomp, [])


def test_unknown_syscalls_are_skipped_with_one_warning(tmp_path: Path) -> None:
    from nsinit.seccomp import program_for, unknown_syscalls_warning, without_unknown_syscalls

    config, warnings = load({"default_action": "allow", "syscalls": [
        {"names": ["no_such_call", "keyctl", "also_not_one"], "action": "errno"},
        {"name": "no_such_call", "action": "kill"},
    ]}, tmp_path)
    assert warnings == []  # the loader keeps the names as written: it never loads libseccomp
    known, unknown = without_unknown_syscalls(config.seccomp)
    assert unknown == ("also_not_one", "no_such_call")
    assert known.syscalls == (SeccompRule(("keyctl",), "errno", 1),)
    assert unknown_syscalls_warning("/x/container.json", unknown) == \
        "container.json: seccomp.syscalls: syscalls unknown to libseccomp skipped: also_not_one, no_such_call"
    # What is compiled, from the cache too, is the filter without them.
    from nsinit.seccomp.compile import compile_filter

    for _ in range(2):
        assert program_for(config.seccomp, str(tmp_path / "cache")) == (compile_filter(known), unknown)


@pytest.mark.parametrize("rule, message", [
    ({"name": "keyctl", "action": "foo"}, 'seccomp.syscalls[1].action: unknown action "foo"'),
    ({"name": "keyctl"}, "seccomp.syscalls[1].action: must be set"),
    ({"names": [], "action": "allow"}, "seccomp.syscalls[1].names: must name at least one syscall"),
    ({"names": [""], "action": "allow"}, "seccomp.syscalls[1].names: must not be empty"),
    ({"name": "keyctl", "action": "allow", "args": [{"index": 6, "value": 1, "op": "eq"}]},
     "seccomp.syscalls[1].args[0].index: must be between 0 and 5"),
    ({"name": "keyctl", "action": "allow", "args": [{"index": 0, "value": 1, "op": "like"}]},
     'seccomp.syscalls[1].args[0].op: unknown operator "like"'),
    ({"name": "keyctl", "action": "allow", "args": [{"index": 0, "value": -1, "op": "eq"}]},
     "seccomp.syscalls[1].args[0].value: must be between 0 and 18446744073709551615"),
    ({"name": "keyctl", "action": "allow", "errno_ret": 1},
     'seccomp.syscalls[1].errno_ret: is only for the "errno" and "trace" actions, not "allow"'),
    ({"name": "keyctl", "action": "notify"}, 'seccomp.listener_path: the "notify" action needs a listener'),
    ({"names": ["sendmsg"], "action": "notify"}, 'seccomp.syscalls[1].names: "sendmsg" cannot be notified'),
])
def test_bad_rules_name_their_field(tmp_path: Path, rule: dict, message: str) -> None:
    data = {"default_action": "allow", "syscalls": [{"name": "getpid", "action": "allow"}, rule]}
    if "sendmsg" in rule.get("names", ()):
        data["listener_path"] = "/run/agent.sock"
    assert error(data, tmp_path).startswith(f"container.json: {message}")


def test_bad_top_level_fields_name_their_field(tmp_path: Path) -> None:
    assert error({"syscalls": [{"name": "keyctl", "action": "errno"}]}, tmp_path) == \
        "container.json: seccomp.default_action: must be set"
    assert error({"default_action": "allow", "architectures": ["vax"]}, tmp_path) == \
        'container.json: seccomp.architectures[0]: unknown architecture "vax"'
    assert error({"default_action": "allow", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}, tmp_path).startswith(
        'container.json: seccomp.flags[0]: unknown flag "SECCOMP_FILTER_FLAG_NOPE"')
    with pytest.raises(ConfigError, match=r"^config.json: linux.seccomp.defaultAction: unknown action"):
        parse_oci({"defaultAction": "SCMP_ACT_EXPLODE"}, "config.json")


@pytest.mark.skipif(not PODMAN_PROFILE.exists(), reason="containers-common (podman's seccomp.json) not installed")
def test_podmans_profile_applies_includes_and_excludes() -> None:
    data = json.loads(PODMAN_PROFILE.read_text())
    without, warnings = from_profile(data, "seccomp.json", ["CAP_CHOWN"], "x86_64")
    with_admin, _ = from_profile(data, "seccomp.json", ["CAP_CHOWN", "CAP_SYS_ADMIN"], "x86_64")
    assert without.default_action == "errno" and without.default_errno_ret == 38
    assert without.architectures == ("x86_64", "x86", "x32")

    def action_of(config: SeccompConfig, name: str) -> set[str]:
        return {rule.action for rule in config.syscalls if name in rule.names}

    assert action_of(without, "bpf") == {"errno"} and action_of(with_admin, "bpf") == {"allow"}
    assert action_of(without, "arch_prctl") == {"allow"}
    assert action_of(without, "s390_runtime_instr") == set()  # another architecture's rule
    assert all("no such" not in w for w in warnings)


def test_default_profile_of_nsinit_spec_parses() -> None:
    from nsinit.seccomp.default_profile import default_seccomp

    config, warnings = parse_libcontainer(default_seccomp(), "container.json")
    assert warnings == []
    assert config.default_action == "allow"
    denied = {name for rule in config.syscalls if rule.action == "errno" for name in rule.names}
    assert {"keyctl", "add_key", "bpf", "mount", "ptrace", "unshare", "clone3"} <= denied
    if os.uname().machine == "x86_64":
        assert config.architectures == ("x86_64", "x86", "x32")


def test_compiled_filter_is_a_bpf_program(tmp_path: Path) -> None:
    from nsinit.seccomp import program_for
    from nsinit.seccomp.compile import compile_filter

    config, _ = load(LIBCONTAINER, tmp_path)
    program = compile_filter(config.seccomp)
    assert program and len(program) % 8 == 0
    cache = tmp_path / "run" / "seccomp-cache"  # the run dir does not exist yet either
    assert program_for(config.seccomp, str(cache)) == (program, ())
    (cached,) = cache.iterdir()
    assert cached.stat().st_mode & 0o777 == 0o600
    assert {cache.stat().st_mode & 0o777, cache.parent.stat().st_mode & 0o777} == {0o700}
    assert program_for(config.seccomp, str(cache)) == (program, ())  # read back


def test_an_upgraded_libseccomp_compiles_again(tmp_path: Path) -> None:
    from nsinit import jsontext
    from nsinit.seccomp import program_for

    config, _ = load(LIBCONTAINER, tmp_path)
    cache = tmp_path / "cache"
    program, _ = program_for(config.seccomp, str(cache))
    (cached,) = cache.iterdir()
    header, _, stored = cached.read_bytes().partition(b"\n")
    meta = jsontext.loads(header)
    assert "libseccomp.so" in meta["library"] and stored == program
    meta["identity"][1] += 1  # another inode: the file was replaced
    cached.write_bytes(jsontext.dumps(meta).encode() + b"\n" + b"\x06\x00\x00\x00\x00\x00\xff\x7f")
    assert program_for(config.seccomp, str(cache)) == (program, ())


# --- start-up cost ----------------------------------------------------------------------

PROBE = """
import sys
sys.path[:0] = [{repo!r}, {site!r}]
from nsinit.container import Container
container = Container.load({root!r})
if container.config.seccomp is not None:
    from nsinit.seccomp import program_for
    program_for(container.config.seccomp, {cache!r})
print(repr(sorted(sys.modules)))
"""


def modules_loaded_by_create(tmp_path: Path, config: dict, cache: str | None = None) -> set[str]:
    import ast
    import subprocess
    import sys

    import _cffi_backend

    (tmp_path / "container.json").write_text(json.dumps(config))
    code = PROBE.format(repo=str(Path(__file__).resolve().parents[2]),
                        site=str(Path(_cffi_backend.__file__).parent), root=str(tmp_path), cache=cache)
    probe = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    return set(ast.literal_eval(probe.stdout))


def test_a_container_without_a_filter_never_loads_libseccomp(tmp_path: Path) -> None:
    loaded = modules_loaded_by_create(tmp_path, {"hostname": "probe"})
    assert not {m for m in loaded if "seccomp" in m}


def test_a_filter_costs_no_heavy_imports(tmp_path: Path) -> None:
    from test_startup_imports import KEPT_OFF

    loaded = modules_loaded_by_create(tmp_path, {"seccomp": LIBCONTAINER})
    assert "nsinit.seccomp._seccomp" in loaded
    assert not loaded & {*KEPT_OFF, "hashlib"}


def test_a_cached_filter_loads_no_libseccomp(tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    assert "nsinit.seccomp._seccomp" in modules_loaded_by_create(tmp_path, {"seccomp": LIBCONTAINER}, cache)
    assert "nsinit.seccomp._seccomp" not in modules_loaded_by_create(tmp_path, {"seccomp": LIBCONTAINER}, cache)


def test_a_cache_entry_others_could_write_is_not_trusted(tmp_path: Path) -> None:
    from nsinit.seccomp import program_for
    from nsinit.seccomp.compile import compile_filter

    config, _ = load(LIBCONTAINER, tmp_path)
    cache = tmp_path / "cache"
    program, _ = program_for(config.seccomp, str(cache))
    (cached,) = cache.iterdir()
    header = cached.read_bytes().partition(b"\n")[0]
    cached.write_bytes(header + b"\n" + b"\x06\x00\x00\x00\x00\x00\xff\x7f")  # "allow everything"
    cached.chmod(0o666)
    assert program_for(config.seccomp, str(cache)) == (program, ()) == (compile_filter(config.seccomp), ())
