"""The one compiled part: classtrace._wire, DESIGN §4 validation read straight from the wire.

Everything else is declared in pyproject.toml; setuptools needs this file only for the C
extension. It builds with the C compiler and Python headers every supported machine has
(`pip install -e .` compiles it in place).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "classtrace._wire",
            sources=["classtrace/_wire.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
