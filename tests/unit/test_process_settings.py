"""A Process's own settings, read by the config loader's rules (nsinit/process_settings.py)."""
from __future__ import annotations

import pytest

from nsinit.config.model import CapabilitySets, Config, Rlimit
from nsinit.container import Process
from nsinit.errors import NsinitError
from nsinit.process_settings import process_config


def base() -> Config:
    return Config(source="test", rootfs="/", namespaces=(), capabilities=CapabilitySets(), mounts=(), devices=(),
                  environment=(), mask_paths=(), readonly_paths=(), rlimits=(Rlimit(7, 10, 10),), user="root")


def test_each_form_of_a_setting_becomes_the_configs_value() -> None:
    config = process_config(base(), Process(
        ["/bin/true"], additional_groups=["wheel", 1000], capabilities=["kill", "CAP_CHOWN"],
        no_new_privileges=True, rlimits=[("nofile", 5, 6), {"type": "RLIMIT_CORE", "soft": -1, "hard": -1},
                                         Rlimit(6, 1, 2)]))
    assert config.additional_groups == ("wheel", "1000")
    assert config.capabilities == CapabilitySets(bounding=("CAP_CHOWN", "CAP_KILL"), effective=("CAP_CHOWN", "CAP_KILL"),
                                                 permitted=("CAP_CHOWN", "CAP_KILL"))
    assert config.no_new_privileges is True
    assert config.rlimits == (Rlimit(7, 5, 6), Rlimit(4, -1, -1), Rlimit(6, 1, 2))
    assert process_config(base(), Process(["/bin/true"])) == base()   # nothing set: the config's


def test_an_empty_profile_or_label_keeps_the_configs() -> None:
    from nsinit.record import replace

    confined = replace(base(), apparmor_profile="docker-default", process_label="system_u:system_r:c_t:s0")
    assert process_config(confined, Process(["/bin/true"], apparmor_profile="", label="")) == confined


def test_a_dict_of_sets_is_the_seeds_capabilities() -> None:
    caps = process_config(base(), Process(["/bin/true"], capabilities={
        "Bounding": ["CAP_KILL"], "Permitted": ["CAP_KILL"], "Inheritable": ["CAP_KILL"], "Ambient": ["CAP_KILL"]})).capabilities
    assert caps.ambient == caps.inheritable == caps.bounding == ("CAP_KILL",) and caps.effective == ()


@pytest.mark.parametrize("fields, line", [
    ({"capabilities": {"effective": ["CAP_KILL"]}},
     'process: capabilities.effective[0]: "CAP_KILL" must also be in the permitted set'),
    ({"capabilities": {"bounds": []}}, 'process: unknown key "capabilities.bounds"'),
    ({"capabilities": "CAP_KILL"}, "process: capabilities: must be a list of names, a dict of sets or a CapabilitySets"),
    ({"rlimits": [("RLIMIT_NOPE", 1, 1)]}, 'process: rlimits[0].type: unknown rlimit "RLIMIT_NOPE"'),
    ({"additional_groups": [""]}, "process: additional_groups[0]: must not be empty"),
    ({"no_new_privileges": 1}, "process: no_new_privileges: must be True or False"),
])
def test_a_bad_setting_is_one_line_naming_it(fields: dict, line: str) -> None:
    with pytest.raises(NsinitError) as caught:
        process_config(base(), Process(["/bin/true"], **fields))
    assert str(caught.value).startswith(line), str(caught.value)
