"""The pinned JupyterLab really loads nbgrader's extensions (a version clash once left the lab
extension flagged incompatible, so this is checked, not assumed)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def jupyter(*args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "jupyter"), *args], capture_output=True, text=True,
                          env=env, timeout=120)
    return ANSI.sub("", proc.stdout + proc.stderr)


def test_nbgrader_lab_extension_is_enabled_and_ok():
    line = next((row for row in jupyter("labextension", "list").splitlines()
                 if "@jupyter/nbgrader" in row), "")
    assert "enabled" in line and "OK" in line, line or "nbgrader's lab extension is missing"


@pytest.mark.parametrize("extension", ["formgrader", "assignment_list", "course_list",
                                       "validate_assignment"])
def test_nbgrader_server_extensions_are_enabled_and_valid(extension):
    out = jupyter("server", "extension", "list")
    name = f"nbgrader.server_extensions.{extension}"
    assert re.search(rf"{re.escape(name)}\s+enabled", out), out[-2000:]
    assert re.search(rf"{re.escape(name)}\s+OK", out), out[-2000:]
