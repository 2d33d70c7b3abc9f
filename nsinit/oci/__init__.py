"""The OCI front door: runc's CLI and an OCI bundle's config.json over nsinit (console script nsinit-runc)."""

# The newest runtime-spec nsinit-runc reads; here, not in spec.py, so that
# --version and a record's ociVersion do not load the bundle's loader.
SPEC_VERSION = "1.1.0"
