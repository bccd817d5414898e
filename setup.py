"""Build the compiled extensions: ``recforge._core`` (pybind11) and the serving fast path
``recforge.serving._fastpath`` (Cython, calling the same C++ headers).

Portable flags only (no -march=native): wheels must run on any CPU of their platform.
``RECFORGE_SANITIZE=1`` builds them with AddressSanitizer and UndefinedBehaviorSanitizer instead
(for ``tools/sanitize.sh``; GCC/Clang only, never for a wheel).
"""

import os
import sys
from glob import glob

from Cython.Build import cythonize
from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import Extension, setup

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
cxx17 = ["/std:c++17"] if sys.platform == "win32" else ["-std=c++17"]

ext_modules = [
    Pybind11Extension(
        "recforge._core",
        sorted(glob("csrc/bindings/*.cpp")),
        include_dirs=["csrc/include"],
        # rebuild when a kernel header or the bindings' shared header changes
        depends=sorted(glob("csrc/include/recforge/*.hpp") + glob("csrc/bindings/*.hpp")),
        cxx_std=17,
        extra_compile_args=extra_compile_args,
        extra_link_args=extra_link_args,
    ),
    *cythonize(
        [
            Extension(
                "recforge.serving._fastpath",
                ["src/recforge/serving/_fastpath.pyx"],
                include_dirs=["csrc/include"],
                depends=sorted(glob("csrc/include/recforge/*.hpp")),
                language="c++",
                extra_compile_args=extra_compile_args + cxx17,
                extra_link_args=extra_link_args,
            )
        ],
        compiler_directives={"language_level": 3},
        quiet=True,
    ),
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext})
