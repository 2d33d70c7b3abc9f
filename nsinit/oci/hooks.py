"""OCI hooks: programs the runtime runs at fixed points of a container's life.

runtime-spec config.md "POSIX-platform Hooks" and runtime.md "Lifecycle":

- ``prestart`` (deprecated) and ``createRuntime``: after the namespaces exist,
  before pivot_root, in the runtime's namespaces;
- ``createContainer``: same moment, in the container's mount namespace;
- ``startContainer``: on ``start``, in the container, before the user process;
- ``poststart``: after the user process started, in the runtime's namespaces;
- ``poststop``: after the container is deleted.

Each hook gets the container's state JSON on stdin, exactly its own ``env``
(never the runtime's: podman's and containerd's variables are no business
of a host hook) and ``args`` as its argv (argv[0] included).  A ``timeout``
kills it.  Failure semantics: a failing hook of the first four kinds fails
the operation (the lifecycle then destroys the container) and the hooks
after it do not run; a failing ``poststart`` or ``poststop`` hook is a
warning and the others still run.

This module is a library for the lifecycle, which calls ``run_hooks`` at
the right moments; subprocess is imported only when a hook runs.
"""
from __future__ import annotations

from nsinit import jsontext
from nsinit.errors import NsinitError
from nsinit.record import record

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

# (JSON key in config.json "hooks", Hooks field), in lifecycle order.
HOOK_KINDS: tuple[tuple[str, str], ...] = (
    ("prestart", "prestart"),
    ("createRuntime", "create_runtime"),
    ("createContainer", "create_container"),
    ("startContainer", "start_container"),
    ("poststart", "poststart"),
    ("poststop", "poststop"),
)
# A failure of one of these only warns (runtime-spec config.md).
WARN_ONLY_KINDS = frozenset({"poststart", "poststop"})
# Bytes of a failed hook's output quoted in the error line.
_OUTPUT_QUOTED = 200


@record(frozen=True)
class Hook:
    """One hook entry: a host path, its argv, its whole environment, a timeout."""
    path: str                       # absolute
    args: tuple[str, ...] = ()      # argv including argv[0]; empty: (path,)
    env: tuple[str, ...] = ()       # "K=V"; nothing else is passed
    timeout: int | None = None      # seconds; None: wait as long as it runs


@record(frozen=True)
class Hooks:
    """The hooks of a config.json, by kind, in their order there."""
    prestart: tuple[Hook, ...] = ()
    create_runtime: tuple[Hook, ...] = ()
    create_container: tuple[Hook, ...] = ()
    start_container: tuple[Hook, ...] = ()
    poststart: tuple[Hook, ...] = ()
    poststop: tuple[Hook, ...] = ()

    def of_kind(self, kind: str) -> tuple[Hook, ...]:
        """The hooks of ``kind``, spelled as in config.json ("createRuntime")."""
        hooks: tuple[Hook, ...] = getattr(self, dict(HOOK_KINDS)[kind])
        return hooks


class HookError(NsinitError):
    """A hook of a kind whose failure fails the operation has failed."""

    exit_code = 1


def state_json(state: dict[str, Any]) -> bytes:
    """The state a hook reads on stdin (runtime.md "State")."""
    return jsontext.dumps(state).encode()


def run_hooks(hooks: Hooks, kind: str, state: dict[str, Any]) -> list[str]:
    """Run every hook of ``kind`` in order with ``state`` on stdin.

    For prestart, createRuntime, createContainer and startContainer the
    first failure raises HookError (the later hooks do not run: the
    container is going to be destroyed).  For poststart and poststop each
    failure becomes a warning, returned, and the later hooks still run.
    The hooks run in the caller's namespaces: the lifecycle calls
    createContainer and startContainer from inside the container, the
    others from the runtime.
    """
    warnings: list[str] = []
    stdin = state_json(state)
    for index, hook in enumerate(hooks.of_kind(kind)):
        problem = run_hook(hook, stdin)
        if problem is None:
            continue
        where = f"hooks.{kind}[{index}]"
        if kind in WARN_ONLY_KINDS:
            warnings.append(f"{where}: {hook.path}: {problem}")
        else:
            raise HookError(where, f"{hook.path}: {problem}")
    return warnings


def run_hook(hook: Hook, stdin: bytes) -> str | None:
    """Run one hook; None on success, else what went wrong (one line).

    Its stdout and stderr are captured, not passed on: the runtime's own
    stderr is the container's (conmon, containerd), so a hook's chatter
    would end up there; a failure quotes the start of it instead.
    """
    import subprocess  # only when a config has hooks

    argv = list(hook.args) or [hook.path]
    try:
        done = subprocess.run(
            argv, executable=hook.path, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=_env_dict(hook.env), timeout=hook.timeout, close_fds=True, cwd="/",
        )
    except subprocess.TimeoutExpired:
        # subprocess.run has killed (SIGKILL) and reaped it.
        return f"timed out after {hook.timeout} s"
    except OSError as err:
        return err.strerror or str(err)
    if done.returncode == 0:
        return None
    status = (f"killed by signal {-done.returncode}" if done.returncode < 0
              else f"exited with status {done.returncode}")
    output = _quoted_output(done.stdout)
    return f"{status}: {output}" if output else status


def _env_dict(env: tuple[str, ...]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for entry in env:
        key, _, value = entry.partition("=")
        pairs[key] = value
    return pairs


def _quoted_output(raw: bytes) -> str:
    text = " ".join(raw.decode(errors="replace").split())
    return text if len(text) <= _OUTPUT_QUOTED else text[:_OUTPUT_QUOTED] + "..."

