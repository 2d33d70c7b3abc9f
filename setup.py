# Metadata lives in setup.cfg; this file only exists because cffi_modules
# (which builds native/clone.c into nsinit._clone, and libseccomp's binding
# into nsinit.seccomp._seccomp) is a setup() keyword,
# and because a wheel must carry nsinit/_trampoline too (exec runs it).
import importlib.util
import pathlib

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithTrampoline(build_py):
    """build_py, then native/trampoline.c -> nsinit/_trampoline in the build:
    without it a `pip install .` (a plain user's, say) could start no container."""

    def run(self) -> None:
        super().run()
        here = pathlib.Path(__file__).resolve().parent
        spec = importlib.util.spec_from_file_location("build_clone", here / "native" / "build_clone.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        target = pathlib.Path(self.build_lib) / "nsinit" / "_trampoline"
        target.parent.mkdir(parents=True, exist_ok=True)
        module.build_trampoline(target)


setup(cffi_modules=["native/build_clone.py:ffibuilder", "native/build_seccomp.py:ffibuilder"],
      cmdclass={"build_py": BuildPyWithTrampoline})
