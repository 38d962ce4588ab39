"""Every lesson's figures load in chromium, in the theme the reader picked."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.site, pytest.mark.browser]

WEEKS = sorted((p.parent.name for p in (Path(__file__).resolve().parents[2] / "site" / "weeks")
                .glob("week*/lesson.md")), key=lambda w: int(w.removeprefix("week")))
IMAGES = """() => [...document.querySelectorAll('article img[src*="assets/figures/"]')]
  .map(img => ({src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0,
                visible: img.checkVisibility()}))"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_lesson_figures_load_and_follow_the_theme(chromium, repo_site, scheme):
    context = chromium.new_context(color_scheme=scheme)
    page = context.new_page()
    try:
        for week in WEEKS:
            # The load event waits for every image of the page, loaded or broken.
            page.goto(repo_site.url + f"weeks/{week}/lesson/", wait_until="load")
            images = page.evaluate(IMAGES)
            assert len(images) >= 6, f"{week}: {len(images)} figure images"
            broken = [i["src"] for i in images if not i["loaded"]]
            assert not broken, f"{week}: figures that did not load: {broken}"
            shown = [i["src"] for i in images if i["visible"]]
            assert len(shown) == len(images) // 2, f"{week}: one version of each figure shows"
            assert all(("-dark.svg" in s) == (scheme == "dark") for s in shown), shown
    finally:
        context.close()
