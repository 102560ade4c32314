"""The parts of sq in C: the sweep's comparison of a folder with its index
records (squirrel/plumbing/_folderstat.c), the copy of a group of small
files into temporary files (squirrel/plumbing/_copygroup.c) and the rename
of each into place (squirrel/plumbing/_place.c). All are optional: where
no C compiler is found, the build goes on without them and sq does the same
work in Python (squirrel/plumbing/sweep.py, fetch.py, place.py), with the
same results, more slowly."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("squirrel.plumbing._folderstat", ["squirrel/plumbing/_folderstat.c"], optional=True),
        Extension("squirrel.plumbing._copygroup", ["squirrel/plumbing/_copygroup.c"], optional=True),
        Extension("squirrel.plumbing._place", ["squirrel/plumbing/_place.c"], optional=True),
    ]
)
