"""Repository tooling: generators and micro-benchmarks. Not part of the installed package.

Each module runs as a script from the repository root (``python tools/asyncapi.py``);
tests import them as ``tools.<name>`` (pytest's ``pythonpath`` includes the root).
"""
