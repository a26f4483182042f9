"""Every module imports on its own, first, in a fresh interpreter: no import cycles that
only work in a lucky order."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import tactful

MODULES = sorted(m.name for m in pkgutil.walk_packages(tactful.__path__, prefix="tactful."))


def test_each_module_imports_first():
    assert len(MODULES) > 20
    failed = {}
    for name in MODULES:
        r = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True)
        if r.returncode:
            failed[name] = r.stderr[-400:]
    assert failed == {}
