"""python -m nsinit.oci: the nsinit-runc console script."""
from nsinit.oci.cli import run

run()
