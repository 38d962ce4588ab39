"""The lessons' figures: drawn by site/figures/make.py from solutions/, committed under
site/assets/figures/, each shown in a light and a dark version with alt text."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
FIGURES = REPO / "site" / "assets" / "figures"
LESSONS = sorted((REPO / "site" / "weeks").glob("week*/lesson.md"))
# ![alt](../../assets/figures/week1/name.svg#only-light)
IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]*assets/figures/(?P<name>[\w/-]+?)"
                   r"(?P<dark>-dark)?\.svg)(?:#only-(?P<theme>light|dark))?\)")


def figures_in(path: Path) -> list[re.Match]:
    return list(IMAGE.finditer(path.read_text(encoding="utf-8")))


def load_make():
    spec = importlib.util.spec_from_file_location("figures_make", REPO / "site/figures/make.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.parent.name)
def test_every_lesson_shows_three_figures_in_both_themes(lesson):
    found = figures_in(lesson)
    light = {m["name"]: m for m in found if m["theme"] == "light" and not m["dark"]}
    dark = {m["name"]: m for m in found if m["theme"] == "dark" and m["dark"]}
    assert len(light) >= 3, f"{lesson}: {len(light)} figures; every lesson needs at least 3"
    assert set(light) == set(dark), "each figure needs a -dark.svg#only-dark twin and back"
    assert len(found) == len(light) + len(dark), "figure images must name #only-light/dark"
    for name, m in light.items():
        assert name.startswith(lesson.parent.name + "/"), f"{name} is not this week's figure"
        words = len(m["alt"].split())
        assert words >= 8, f"{name}: alt text should say what the figure shows ({words} words)"
        assert dark[name]["alt"] == m["alt"]


def test_committed_figures_are_the_ones_lessons_show_and_the_script_draws(tmp_path):
    make = load_make()
    shown = {m["name"] for page in REPO.joinpath("site").rglob("*.md") for m in figures_in(page)}
    drawn = set(make.FIGURES)
    assert shown <= drawn, f"pages show figures the script no longer draws: {shown - drawn}"
    committed = {p.relative_to(FIGURES).as_posix().removesuffix(".svg")
                 for p in FIGURES.rglob("*.svg")}
    expected = {n + suffix for n in drawn for suffix in ("", "-dark")}
    assert committed == expected, (
        f"missing: {sorted(expected - committed)}; stale: {sorted(committed - expected)} "
        "(run `make figures`)")
    assert drawn <= shown, f"drawn but shown on no page: {drawn - shown}"


def test_the_script_draws_every_figure(tmp_path):
    """At small sizes, so that it stays quick: every figure function still runs and writes
    both versions as SVG."""
    make = load_make()
    threads = torch.get_num_threads()
    try:
        written = make.main(["--quick", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)  # main() pins torch to one thread: not the session's
    assert written == 0
    for name in make.FIGURES:
        for suffix in ("", "-dark"):
            svg = (tmp_path / f"{name}{suffix}.svg").read_text()
            assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    light = (tmp_path / "week3/activations.svg").read_text()
    dark = (tmp_path / "week3/activations-dark.svg").read_text()
    assert make.THEMES["light"]["fg"] in light and make.THEMES["dark"]["fg"] in dark
