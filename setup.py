"""The one part of sq in C: the sweep's comparison of a folder with its
index records (squirrel/plumbing/_folderstat.c). It is optional: where no
C compiler is found, the build goes on without it and sq compares in
Python (squirrel/plumbing/sweep.py), with the same results, more slowly."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "squirrel.plumbing._folderstat",
            ["squirrel/plumbing/_folderstat.c"],
            optional=True,
        )
    ]
)
