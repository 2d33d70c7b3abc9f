"""Docker's and podman's seccomp profile files, for a given container.

podman's default (``/usr/share/containers/seccomp.json``, Debian's
containers-common) and Docker's are the OCI form plus ``archMap`` (which
architectures come with the native one) and rules kept or dropped by
``includes``/``excludes`` of capabilities and architectures.  ``from_profile``
applies those for one container, as podman does, and reads the result with
the OCI parser.
"""
from __future__ import annotations

from nsinit.config.model import SeccompConfig
from nsinit.config.seccomp import ARCH_ALIASES, parse_oci
from nsinit.errors import ConfigError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, Iterable


# Go's GOARCH names (which includes.arches use) for libseccomp's native arch names.
_GOARCH = {
    "x86_64": "amd64", "x86": "386", "x32": "x32", "aarch64": "arm64", "arm": "arm", "mips": "mips",
    "mipsel": "mipsle", "mips64": "mips64", "mipsel64": "mips64le", "mips64n32": "mips64n32",
    "mipsel64n32": "mips64len32", "ppc": "ppc", "ppc64": "ppc64", "ppc64le": "ppc64le",
    "s390": "s390", "s390x": "s390x", "riscv64": "riscv64",
}


def from_profile(data: Any, source: str, capabilities: Iterable[str], native_arch: str) -> tuple[SeccompConfig | None, list[str]]:
    """A Docker/podman seccomp.json for a container with these (bounding)
    capabilities on ``native_arch`` (libseccomp's name, e.g. "x86_64").

    As podman's and Docker's conversion: without ``architectures``, the
    ``archMap`` entry of the native arch gives it and its sub-architectures;
    a rule is kept only if every ``includes.caps`` is held, the native arch
    is among ``includes.arches``, and none of ``excludes`` applies.
    ``minKernel`` conditions are not evaluated: such a rule is kept.
    """
    if not isinstance(data, dict):
        raise ConfigError(source, "", "must be a JSON object")
    caps = {c if c.startswith("CAP_") else f"CAP_{c}" for c in capabilities}
    goarch = _GOARCH.get(native_arch, native_arch)
    oci: dict[str, Any] = {key: data[key] for key in ("defaultAction", "defaultErrnoRet", "flags", "listenerPath")
                           if key in data}
    arches = data.get("architectures")
    if not arches:
        arches = []
        for entry in data.get("archMap") or ():
            main = entry.get("architecture", "")
            if ARCH_ALIASES.get(main[len("SCMP_ARCH_"):].lower()) == native_arch:
                arches = [main, *(entry.get("subArchitectures") or ())]
                break
    oci["architectures"] = arches
    rules = []
    for raw in data.get("syscalls") or ():
        if not isinstance(raw, dict) or not _profile_rule_applies(raw, caps, goarch):
            continue
        rule = {key: raw[key] for key in ("names", "action", "errnoRet", "args") if raw.get(key) is not None}
        if raw.get("name"):  # Docker's profiles before 1.13
            rule["names"] = [raw["name"], *rule.get("names", [])]
        rules.append(rule)
    oci["syscalls"] = rules
    return parse_oci(oci, source, "seccomp")


def _profile_rule_applies(raw: dict[str, Any], caps: set[str], goarch: str) -> bool:
    includes = raw.get("includes") or {}
    excludes = raw.get("excludes") or {}
    if any(cap not in caps for cap in includes.get("caps") or ()):
        return False
    if includes.get("arches") and goarch not in includes["arches"]:
        return False
    if any(cap in caps for cap in excludes.get("caps") or ()):
        return False
    if goarch in (excludes.get("arches") or ()):
        return False
    return True
