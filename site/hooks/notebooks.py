"""Publish the learners' notebooks as site pages without copying them into site/.

Every ``<release>/weekN/*.ipynb`` becomes the page ``weeks/weekN/notebook.ipynb`` (URL
``weeks/weekN/notebook/``), which mkdocs-jupyter renders. ``<release>`` is ``course/release``
next to mkdocs.yml, or ``$COURSE_RELEASE_DIR`` (the site tests point it at a fixture). A
week with several notebooks publishes the others as ``weeks/weekN/<name>.ipynb``.

A notebook page the nav names but the release lacks gets a placeholder page, so the site
still builds before the notebook is generated; tests/site checks the real ones are there.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

log = logging.getLogger("mkdocs.hooks.notebooks")

NOTEBOOK_URI = re.compile(r"^weeks/(week\d+)/notebook\.ipynb$")
PLACEHOLDER_SUFFIX = "-not-released.ipynb"

# mkdocs-jupyter's template pulls MathJax 2 and mermaid from CDNs (and ipywidgets' manager
# when a notebook saved widget state). The site loads its own vendored MathJax and mermaid.
# An empty src is MathJax 2's, as custom_mathjax_url is unset.
CDN_SCRIPTS = [
    re.compile(r"<script[^>]*\ssrc=\"(?:(?:https?:)?//[^\"]*)?\"[^>]*>\s*</script>", re.S),
    re.compile(r"<script type=\"text/x-mathjax-config\">.*?</script>", re.S),
    re.compile(
        r"<script type=\"module\">(?:(?!</script>).)*cdnjs\.cloudflare\.com.*?</script>", re.S
    ),
]


def release_dir(config: MkDocsConfig) -> Path:
    default = Path(config.config_file_path).parent / "course" / "release"
    return Path(os.environ.get("COURSE_RELEASE_DIR") or default).resolve()


def released_notebooks(release: Path) -> dict[str, Path]:
    """Site URI -> notebook file, for every released notebook."""
    pages = {}
    for week in sorted(p for p in release.glob("week*") if p.is_dir()):
        for i, notebook in enumerate(sorted(week.glob("*.ipynb"))):
            name = "notebook" if i == 0 else notebook.stem
            pages[f"weeks/{week.name}/{name}.ipynb"] = notebook
    return pages


def nav_uris(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [uri for value in nav.values() for uri in nav_uris(value)]
    if isinstance(nav, list):
        return [uri for item in nav for uri in nav_uris(item)]
    return []


def write_placeholder(config: MkDocsConfig, week: str) -> Path:
    text = (
        f"# {week.capitalize()} notebook\n\n"
        f"This week's notebook is not released yet: it will appear here once "
        f"`course/release/{week}/` holds it."
    )
    notebook = {
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": text}],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    cache = Path(config.config_file_path).parent / ".cache" / "site-notebooks"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{week}{PLACEHOLDER_SUFFIX}"
    path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    return path


class NotebookPage(File):
    """A generated .ipynb file that is a page, which mkdocs-jupyter then renders."""

    def is_documentation_page(self) -> bool:
        return True


# After mkdocs-jupyter's on_files: it wraps the .ipynb files it finds in a class that loses
# the source path of generated files, so we add ours as pages ourselves.
@event_priority(-50)
def on_files(files: Files, config: MkDocsConfig) -> Files:
    release = release_dir(config)
    pages = released_notebooks(release)
    log.info("notebooks from %s: %s", release, ", ".join(pages) or "none")
    for uri in nav_uris(config.nav):
        match = NOTEBOOK_URI.match(uri)
        if match and uri not in pages:
            log.info("%s has no notebook yet: publishing a placeholder page", match[1])
            pages[uri] = write_placeholder(config, match[1])
    for uri, notebook in pages.items():
        files.append(NotebookPage.generated(config, uri, abs_src_path=str(notebook)))
    return files


def on_serve(server, config: MkDocsConfig, builder):
    """`mkdocs serve` rebuilds when a released notebook changes."""
    release = release_dir(config)
    if release.is_dir():
        server.watch(str(release))
    return server


def link_site_pages(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Point a notebook's relative links to site/*.md files (right in JupyterLab) at pages."""
    notebook_dir = Path(page.file.abs_src_path).parent
    docs_dir = Path(config.docs_dir).resolve()

    def relink(match: re.Match) -> str:
        path, hash_, anchor = match[1].partition("#")
        if not path.endswith(".md") or re.match(r"^[a-z]+:|/", path):
            return match[0]
        try:
            src_uri = (notebook_dir / path).resolve().relative_to(docs_dir).as_posix()
        except ValueError:
            return match[0]
        target = files.get_file_from_path(src_uri)
        if target is None:
            log.warning("%s links to %s, which is not a page", page.file.src_uri, match[1])
            return match[0]
        return f'href="{target.url_relative_to(page.file)}{hash_}{anchor}"'

    return re.sub(r'href="([^"]+)"', relink, html)


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    for pattern in CDN_SCRIPTS:
        html = pattern.sub("", html)
    html = link_site_pages(html, page, config, files)
    source = Path(page.file.abs_src_path)
    if not source.name.endswith(PLACEHOLDER_SUFFIX):
        # mkdocs-jupyter's include_source copies the notebook next to the page.
        link = (
            f'<p class="notebook-download"><a href="{source.name}" download>'
            f"Download {source.name}</a> and open it in JupyterLab "
            "(<code>make lab</code>).</p>\n"
        )
        end_of_title = html.find("</h1>")
        at = end_of_title + len("</h1>") if end_of_title >= 0 else 0
        html = html[:at] + link + html[at:]
    return html
