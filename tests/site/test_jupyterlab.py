"""The course opens in JupyterLab as the README says, with nbgrader's assignment list.

One JupyterLab server, started like ``make lab`` (root folder the repository, default page
``course/release``, the learners' settings of ``course/learner/`` on Jupyter's config path)
from this interpreter's environment, on a free port of 127.0.0.1 with a known token.
Chromium opens the week-1 learner notebook, runs its first code cell (the imports) and a new
cell in its kernel, and opens nbgrader's "Assignment List" panel from the "Nbgrader" menu,
which offers learners' tools only: no formgrader, no course list, no "Create Assignment".
Every request leaving 127.0.0.1 is refused and fails the test, as on the docs site.

Nothing of the user's or the repository's changes: Jupyter's config, data and runtime
folders, the lab settings and workspaces, nbgrader's exchange and the notebook checkpoints
all live in a temporary folder, autosave is off, and the notebook's bytes are checked at the
end.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.site.conftest import REPO

pytestmark = pytest.mark.browser

BIN = Path(sys.executable).parent
TOKEN = "course-test-token"
NOTEBOOK = "course/release/week1/attention.ipynb"
START_TIMEOUT = 60
INSTRUCTOR_COMMANDS = ("nbgrader:open-formgrader", "nbgrader:open-formgrader-local",
                       "nbgrader:open-create-assignment", "nbgrader:open-course-list")
KERNEL_READY = """() => {
  const context = window.jupyterapp?.shell.currentWidget?.sessionContext;
  const kernel = context?.session?.kernel;
  return context?.isReady && kernel?.connectionStatus === "connected" && kernel?.status === "idle";
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(home: Path) -> dict[str, str]:
    """Jupyter folders of our own, with the settings the test needs; returns the env vars."""
    config, settings = home / "config", home / "settings"
    config.mkdir()
    exchange = home / "exchange"
    exchange.mkdir()
    # Checkpoints (written when a notebook opens) go to the temporary folder, not the repo.
    (config / "jupyter_server_config.py").write_text(
        f"c.FileContentsManager.checkpoints_kwargs = {{'root_dir': {str(home / 'ckpt')!r}}}\n"
    )
    # Autosave off: the test's cell must never be written into the learner notebook.
    docmanager = settings / "@jupyterlab" / "docmanager-extension"
    docmanager.mkdir(parents=True)
    (docmanager / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
    return {
        # as `make lab` does: the learners' settings (their exchange, only learners' tools);
        # the exchange itself is a temporary one, so the assignment list lists nothing
        "JUPYTER_CONFIG_PATH": str(REPO / "course" / "learner"),
        "NBGRADER_EXCHANGE": str(exchange),
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    }


@pytest.fixture
def lab(tmp_path):
    """A running ``jupyter lab``; yields its base URL, and stops it whatever happens."""
    jupyter = BIN / "jupyter"
    if not jupyter.exists():
        pytest.skip(f"no jupyter next to {sys.executable}")
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        **write_config(tmp_path),
    }
    command = [
        str(jupyter), "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={REPO}",
        "--LabApp.default_url=/lab/tree/course/release",
        # offline: no PyPI look-ups from the extension manager, no news or update checks
        "--LabApp.extension_manager=readonly",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        # lets the test ask the app which commands exist
        "--LabApp.expose_app_in_browser=True",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # as `make lab` does
    log = tmp_path / "jupyter.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited with {server.returncode}:\n{log.read_text()}")
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer in {START_TIMEOUT} s:\n"
                                f"{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_week1_notebook_runs_in_jupyterlab_with_nbgrader(lab, browsing):
    notebook = REPO / NOTEBOOK
    if not notebook.is_file():
        pytest.skip(f"{NOTEBOOK} is not built (python course/build.py)")
    before = notebook.read_bytes()
    page = browsing.page
    page.set_default_timeout(30_000)

    # The default page of `make lab` is the release folder, with one folder per week.
    page.goto(f"{lab}/?token={TOKEN}")
    page.wait_for_url("**/lab/tree/course/release")
    page.locator(".jp-DirListing-item", has_text="week1").first.wait_for()

    page.goto(f"{lab}/lab/tree/{NOTEBOOK}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    # The kernel is started and its websocket connected (before that a run is dropped).
    page.wait_for_function(KERNEL_READY, timeout=60_000)

    # The notebook's own first code cell (its imports: torch, matplotlib), then a new cell.
    first_code = page.locator(".jp-Notebook .jp-CodeCell").first
    first_code.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Shift+Enter")
    imports = first_code.locator(".jp-OutputArea-output")
    imports.wait_for(timeout=60_000)
    assert re.fullmatch(r"torch \d+\.\d+\S*", imports.inner_text().strip()), imports.inner_text()

    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    page.keyboard.type("print(6 * 7)")
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-OutputArea-output")
    output.wait_for()
    assert output.inner_text().strip() == "42"

    # nbgrader's lab extension: its menu and commands, and the assignment list panel, whose
    # server side answers (an empty exchange lists no assignments, with no error).
    assert "Nbgrader" in page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
    page.wait_for_function(
        "() => window.jupyterapp.commands.hasCommand('nbgrader:open-assignment-list')"
    )
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    page.locator(".lm-Menu-itemLabel", has_text="Assignment List").click()
    panel = page.locator(".lm-TabBar-tab", has_text="Assignments")
    panel.wait_for()
    assert panel.get_attribute("aria-selected") == "true"
    page.locator("#released_assignments_list_placeholder").wait_for(state="visible")
    assert "no assignments to fetch" in page.locator("#released_assignments_list").inner_text()
    assert page.locator("#released_assignments_list_error").is_hidden()
    assert page.locator("#released_assignments_list_loading").is_hidden()

    # Learners' tools only: the instructors' panels are neither in the app nor on the server.
    commands = page.evaluate("() => window.jupyterapp.commands.listCommands()")
    assert "nbgrader:open-assignment-list" in commands
    for instructor_only in INSTRUCTOR_COMMANDS:
        assert instructor_only not in commands, instructor_only
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    items = page.locator(".lm-Menu-content .lm-Menu-item:visible .lm-Menu-itemLabel")
    assert [t.strip() for t in items.all_inner_texts() if t.strip()] == ["Assignment List"]
    page.keyboard.press("Escape")
    for path in ("formgrader", "formgrader/api/assignments"):
        response = page.request.get(f"{lab}/{path}?token={TOKEN}")
        assert response.status == 404, f"/{path} answered {response.status}"

    browsing.assert_clean()
    assert notebook.read_bytes() == before, "the test changed the learner notebook"
