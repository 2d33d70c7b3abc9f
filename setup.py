# Metadata lives in setup.cfg; this file only exists because cffi_modules
# (which builds native/clone.c into nsinit._clone, and libseccomp's binding
# into nsinit.seccomp._seccomp) is a setup() keyword.
from setuptools import setup

setup(cffi_modules=["native/build_clone.py:ffibuilder", "native/build_seccomp.py:ffibuilder"])
