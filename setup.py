"Thin setuptools shim: all metadata lives in pyproject.toml (nbdev 3's config)."
from setuptools import setup

setup()
