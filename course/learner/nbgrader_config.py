"""nbgrader settings for learners' JupyterLab (`make lab` puts this folder on Jupyter's config
path): the Assignments tab lists the course's exchange instead of a system folder that does
not exist. Instructors' settings are in ../nbgrader_config.py.

Next to this file, `labconfig/page_config.json` (JupyterLab's plugins) and
`jupyter_server_config.json` (the server's extensions) switch off nbgrader's instructor tools,
the formgrader, the course list and "Create Assignment": learners see the Assignments tab and
the Validate button only."""

import os

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)
c.CourseDirectory.course_id = "llm-architecture"
c.Exchange.root = os.environ.get(
    "NBGRADER_EXCHANGE", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "exchange")
)
