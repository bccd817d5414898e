"""Build the one compiled extension, ``recforge._core``, with pybind11.

Portable flags only (no -march=native): wheels must run on any CPU of their platform.
``RECFORGE_SANITIZE=1`` builds it with AddressSanitizer and UndefinedBehaviorSanitizer instead
(for ``tools/sanitize.sh``; GCC/Clang only, never for a wheel).
"""

import os
import sys
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

ParallelCompile("RECFORGE_BUILD_JOBS", default=2).install()

extra_compile_args = ["/O2"] if sys.platform == "win32" else ["-O3", "-fvisibility=hidden"]
extra_link_args = [] if sys.platform == "win32" else ["-pthread"]
if os.environ.get("RECFORGE_SANITIZE") == "1":
    extra_compile_args = [
        "-fsanitize=address,undefined",
        "-fno-omit-frame-pointer",
        "-O1",
        "-g",
        "-fvisibility=hidden",
    ]
    extra_link_args += ["-fsanitize=address,undefined"]

ext_modules = [
    Pybind11Extension(
        "recforge._core",
        sorted(glob("csrc/bindings/*.cpp")),
        include_dirs=["csrc/include"],
        depends=sorted(glob("csrc/include/recforge/*.hpp")),  # rebuild when a kernel header changes
        cxx_std=17,
        extra_compile_args=extra_compile_args,
        extra_link_args=extra_link_args,
    )
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext})
