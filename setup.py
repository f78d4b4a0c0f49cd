"""The compiled parts, both reading events straight from the wire (classtrace/wire_core.h):
classtrace._wire, DESIGN §4 validation for every entry point, and stream_processors._fold, the
worker's per-event loop.

Everything else is declared in pyproject.toml; setuptools needs this file only for the C
extensions. They build with the C compiler and Python headers every supported machine has
(`pip install -e .` compiles it in place).
"""

from setuptools import Extension, setup

_FLAGS = [
    "-O2",
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Wno-unused-function",
    "-Werror=implicit-function-declaration",
]

setup(
    ext_modules=[
        Extension(
            name,
            sources=[source],
            include_dirs=["classtrace"],
            depends=["classtrace/wire_core.h"],
            extra_compile_args=_FLAGS,
        )
        for name, source in (
            ("classtrace._wire", "classtrace/_wire.c"),
        )
    ]
)
