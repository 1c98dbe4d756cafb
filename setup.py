"""Shim for tools that still call setup.py; all metadata is in setup.cfg except the package
list: ``bestchat`` and its subpackages, plus ``bestchat.admin`` mapped from ``admin/``."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["bestchat", "bestchat.*"]) + ["bestchat.admin"])
