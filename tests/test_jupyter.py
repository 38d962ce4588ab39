"""The pinned JupyterLab really loads nbgrader's extensions (a version clash once left the lab
extension flagged incompatible, so this is checked, not assumed), and the learners' settings
(``course/learner/``, on Jupyter's config path under ``make lab``) leave learners' tools only."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LEARNER_CONFIG = Path(__file__).resolve().parents[1] / "course" / "learner"
INSTRUCTOR_PLUGINS = ["course-list", "create-assignment", "formgrader"]
LEARNER_PLUGINS = ["assignment-list", "menu", "validate-assignment"]


def jupyter(*args: str, **env_vars: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **env_vars}
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


def test_learners_lab_disables_the_instructors_panels():
    out = jupyter("labextension", "list", JUPYTER_CONFIG_PATH=str(LEARNER_CONFIG))
    disabled = out.split("Disabled extensions:")[-1] if "Disabled extensions:" in out else ""
    for plugin in INSTRUCTOR_PLUGINS:
        assert f"@jupyter/nbgrader:{plugin}" in disabled, out[-2000:]
    for plugin in LEARNER_PLUGINS:
        assert f"@jupyter/nbgrader:{plugin}" not in disabled, out[-2000:]


def test_learners_server_loads_no_instructor_extension():
    """What ``jupyter lab`` itself computes (``ServerApp.init_server_extension_config``:
    every config folder of Jupyter's path, the first one winning). The browser test
    (tests/site/test_jupyterlab.py) checks the running server too."""
    code = (
        "import json\n"
        "from jupyter_core.paths import jupyter_config_path\n"
        "from jupyter_server.extension.config import ExtensionConfigManager\n"
        "manager = ExtensionConfigManager(read_config_path=jupyter_config_path())\n"
        "print(json.dumps(manager.get_jpserver_extensions()))\n"
    )
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(LEARNER_CONFIG)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60)
    extensions = json.loads(proc.stdout)
    assert extensions["nbgrader.server_extensions.formgrader"] is False
    assert extensions["nbgrader.server_extensions.course_list"] is False
    assert extensions["nbgrader.server_extensions.assignment_list"] is True
    assert extensions["nbgrader.server_extensions.validate_assignment"] is True
