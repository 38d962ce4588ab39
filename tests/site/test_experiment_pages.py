"""The experiments of weeks 3 and 4 on their lessons: the tables are the runner's own, from
the committed full runs (site/assets/ablations/), with the command that made them."""

from pathlib import Path

import pytest

from solutions.ablate import load_results, markdown_table

pytestmark = pytest.mark.site

REPO = Path(__file__).resolve().parents[2]
PAGES = {"activations": "week3", "positions": "week4"}


@pytest.mark.parametrize("experiment", PAGES)
def test_lesson_shows_the_committed_runs_table_and_command(experiment):
    results = load_results(experiment)
    lesson = (REPO / "site" / "weeks" / PAGES[experiment] / "lesson.md").read_text()
    assert f"```bash\n{results['command']}\n```" in lesson
    for row in markdown_table(results).splitlines():
        assert row in lesson, f"{PAGES[experiment]}'s lesson lacks the row {row!r}"
