"""Seccomp filters: compiled by the parent with libseccomp, loaded by the child.

``compile`` (libseccomp, through the cffi module ``_seccomp`` built by
native/build_seccomp.py) turns a SeccompConfig into a classic-BPF program
before clone; the container child hands those bytes to seccomp(2) as its
last step before execve (nsinit._native.seccomp_set_filter), so it needs
neither libseccomp nor any parsing after pivot_root.  A container without a
filter never imports this package's modules.
"""
