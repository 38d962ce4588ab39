"""The docs site builds strictly, publishes the notebooks, and references nothing off-site."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from autograder import registry
from tests.site.conftest import FIXTURE_RELEASE

pytestmark = pytest.mark.site

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO / "site" / "assets" / "vendor"
WEEKS = [w.number for w in registry.WEEKS]
WEEK_PAGES = {"lesson": ".md", "notebook": ".ipynb", "quiz": ".md"}


def test_repo_site_builds_strictly(repo_site):
    # The `sites` fixture fails on a non-zero exit; strict mode turns warnings into one.
    assert "WARNING" not in repo_site.output
    pages = [
        "index.html",
        "getting-started/index.html",
        "instructors/index.html",
        "glossary/index.html",
        "weeks/week7/speed/index.html",
        "search/search_index.json",
    ]
    pages += [f"weeks/week{w}/{kind}/index.html" for w in WEEKS for kind in WEEK_PAGES]
    for page in pages:
        assert (repo_site.path / page).is_file(), page


def test_home_page_links_every_week():
    home = (REPO / "site" / "index.md").read_text(encoding="utf-8")
    for week in WEEKS:
        for kind, suffix in WEEK_PAGES.items():
            link = f"(weeks/week{week}/{kind}{suffix})"
            assert link in home, f"site/index.md does not link {link}"
    assert "(glossary.md)" in home and "(getting-started.md)" in home


def test_released_notebooks_are_pages(repo_site):
    notebooks = sorted((REPO / "course" / "release").glob("week*/*.ipynb"))
    if not notebooks:
        pytest.skip("course/release has no notebooks yet")
    for week in sorted({nb.parent.name for nb in notebooks}):
        first = sorted((REPO / "course" / "release" / week).glob("*.ipynb"))[0]
        page = repo_site.path / "weeks" / week / "notebook"
        assert (page / "index.html").is_file()
        assert (page / first.name).read_bytes() == first.read_bytes(), "download copy"
        assert "not released yet" not in (page / "index.html").read_text()


def test_fixture_notebook_page(fixture_site):
    page = fixture_site.path / "weeks" / "week3" / "notebook"
    html = (page / "index.html").read_text()
    assert "jp-RenderedMarkdown" in html
    assert r"\mathrm{RMS}(x)" in html, "notebook math is left for MathJax to typeset"
    assert 'href="rmsnorm_swiglu.ipynb" download' in html
    assert (page / "rmsnorm_swiglu.ipynb").is_file()
    assert "cdnjs" not in html and 'src=""' not in html and "x-mathjax-config" not in html
    # Links to site/*.md, right in JupyterLab, point at the pages.
    assert 'href="../quiz/"' in html and 'href="../lesson/#where-epsilon-goes"' in html


@pytest.mark.parametrize("name", ["repo", "fixture"])
def test_notebook_links_to_site_sources_are_rewritten(sites, name):
    for page in (sites[name].path / "weeks").glob("week*/*/index.html"):
        assert not re.search(r'href="[^"]*site/[^"]*\.md', page.read_text()), page


def test_missing_notebook_gets_placeholder(fixture_site):
    released = {p.name for p in FIXTURE_RELEASE.iterdir()}
    missing = [w for w in WEEKS if f"week{w}" not in released]
    assert missing, "the fixture release should leave some weeks unreleased"
    for week in missing:
        html = (fixture_site.path / f"weeks/week{week}/notebook/index.html").read_text()
        assert "not released yet" in html, f"week {week}"
        assert "download>" not in html, f"week {week}"


class ResourceLinks(HTMLParser):
    """Collects the URLs a page would load (not the ones it merely links to)."""

    LOADED = {
        ("script", "src"),
        ("img", "src"),
        ("iframe", "src"),
        ("source", "src"),
        ("video", "src"),
        ("audio", "src"),
        ("embed", "src"),
        ("object", "data"),
    }

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "link" and attrs.get("rel") not in {"canonical", "alternate"}:
            self.urls.append(attrs.get("href") or "")
        for loaded_tag, attr in self.LOADED:
            if tag == loaded_tag and attrs.get(attr):
                self.urls.append(attrs[attr])


def off_site(url: str) -> bool:
    return bool(re.match(r"^(https?:)?//", url)) and not re.match(r"^https?://127\.0\.0\.1", url)


@pytest.mark.parametrize("name", ["repo", "fixture"])
def test_pages_load_nothing_off_site(sites, name):
    site = sites[name]
    for path in site.path.rglob("*.html"):
        parser = ResourceLinks()
        parser.feed(path.read_text(encoding="utf-8"))
        assert not [u for u in parser.urls if off_site(u)], path
    for path in site.path.rglob("*.css"):
        urls = re.findall(r"url\(\s*['\"]?([^'\")]+)", path.read_text(encoding="utf-8"))
        urls += re.findall(r"@import\s+['\"]([^'\"]+)", path.read_text(encoding="utf-8"))
        assert not [u for u in urls if off_site(u)], path


def test_vendored_versions():
    assert re.search(r"^mathjax 3\.", (VENDOR / "VERSIONS").read_text(), re.M)
    assert re.search(r"^mermaid 11\.", (VENDOR / "VERSIONS").read_text(), re.M)
    assert 'VERSION="3.' in (VENDOR / "mathjax" / "tex-chtml.js").read_text()
    assert re.search(r'"11\.\d+\.\d+"', (VENDOR / "mermaid" / "mermaid.min.js").read_text())
    assert any((VENDOR / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert (VENDOR / "mathjax" / "input" / "tex" / "extensions" / "boldsymbol.js").is_file()
    assert (VENDOR / "mermaid" / "mermaid.min.js").is_file()
    for license_file in [VENDOR / "mathjax" / "LICENSE", VENDOR / "mermaid" / "LICENSE"]:
        assert license_file.is_file()


def test_vendor_script_is_not_published(repo_site):
    assert not (repo_site.path / "assets" / "vendor" / "update.sh").exists()
    assert not (repo_site.path / "hooks").exists()
    assert Path(VENDOR / "update.sh").stat().st_mode & 0o111, "update.sh is executable"
