"""Build the optional C extensions; all metadata lives in pyproject.toml.

All extensions are optional: without a C compiler the install still succeeds and pointseg falls
back to its pure numpy / pandas code paths (slower; `pointseg info` says which are active).
"""

from setuptools import Extension, setup

_FLAGS = ["-O3", "-std=c11", "-fno-strict-aliasing"]
# Python builds extensions with -fwrapv (defined signed overflow); the selection kernel does not
# rely on it, and without it gcc optimises its int-indexed loops better: 1.07x on the old kernel
# (docs/knn.md "Selection kernel").
_SELECT_FLAGS = _FLAGS + ["-fno-wrapv"]

setup(
    ext_modules=[
        Extension(
            "pointseg._native._parse",
            ["pointseg/_native/parse.c"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "pointseg._native._edge",
            ["pointseg/_native/edge.c"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "pointseg._native._select",
            ["pointseg/_native/select.c"],
            depends=["pointseg/_native/select_core.h", "pointseg/_native/select_rerank.h"],
            extra_compile_args=_SELECT_FLAGS,
            optional=True,
        ),
    ],
)
