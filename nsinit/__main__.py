import gc

# Start-up makes thousands of objects that live as long as the process
# (modules, classes, the config); collections meanwhile only scan them again
# and again: ~1.5 ms of every container start, measured.  The supervisor
# turns the collector back on for its wait (lifecycle.supervise.collecting_while_waiting).
gc.disable()

from nsinit.cli import run  # noqa: E402

run()
