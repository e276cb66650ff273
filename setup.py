"""Builds the native rule evaluator (engine/ruleset/_native.c); everything else is in pyproject.toml.

`optional=True`: on a machine without a C compiler the install still succeeds and rulesets decide
with the generated Python instead (engine/ruleset/native.py says how to tell which is in use).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("engine.ruleset._native", ["engine/ruleset/_native.c"],
                             extra_compile_args=["-O2"], optional=True)])
