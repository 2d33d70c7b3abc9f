"""The OCI front door: runc's CLI and an OCI bundle's config.json over nsinit (console script nsinit-runc)."""
