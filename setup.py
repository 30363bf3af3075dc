# The C kernels are compiled by cffi at install time; everything else is in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["hwsim/_native/build.py:ffibuilder"])
