"""The position of an option tells nothing about whether it is right.

Two layers: mkdocs-quiz shuffles the options in the browser on every visit
(``shuffle_answers`` in mkdocs.yml), and the sources themselves vary where the right answer
sits, so the page's HTML, a reader without JavaScript and a first-option guesser learn nothing
from the order. The browser tests (test_browser.py) check the shuffling and the scoring.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from autograder import registry

pytestmark = pytest.mark.site

REPO = Path(__file__).resolve().parents[2]
WEEKS = [w.number for w in registry.WEEKS]
OPTION = re.compile(r"^- \[( |x)\] ", re.M)


def right_flags(week: int) -> list[list[bool]]:
    """For each question of the week's quiz, which options (in source order) are right."""
    md = (REPO / "site" / "weeks" / f"week{week}" / "quiz.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^<quiz>\s*\n(.*?)^</quiz>", md, re.S | re.M)
    return [[mark == "x" for mark in OPTION.findall(block)] for block in blocks]


def order_problems(questions: list[list[bool]]) -> list[str]:
    """What the source order gives away: a favourite position, or right answers listed first."""
    problems = []
    singles = [flags.index(True) for flags in questions if sum(flags) == 1]
    if singles:
        position, count = Counter(singles).most_common(1)[0]
        if count > 0.4 * len(singles):
            problems.append(f"{count} of {len(singles)} single-answer questions have the right "
                            f"answer at position {position + 1}")
    multiples = [flags for flags in questions if sum(flags) > 1]
    leading = [flags for flags in multiples if flags == sorted(flags, reverse=True)]
    if multiples and len(leading) > len(multiples) / 3:
        problems.append(f"{len(leading)} of {len(multiples)} multiple-answer questions list "
                        "all their right answers first")
    return problems


@pytest.mark.parametrize("week", WEEKS, ids=[f"week{w}" for w in WEEKS])
def test_right_answers_do_not_sit_in_one_place(week):
    problems = order_problems(right_flags(week))
    assert not problems, f"site/weeks/week{week}/quiz.md: {problems}"


def test_order_check_finds_a_pattern():
    first = [[True, False, False, False]] * 10
    assert order_problems(first) == [
        "10 of 10 single-answer questions have the right answer at position 1"]
    spread = [[i == j for j in range(4)] for i in range(4)] * 3
    assert order_problems(spread) == []
    all_but_last = [[True, True, True, False]] * 3
    assert order_problems(all_but_last) == [
        "3 of 3 multiple-answer questions list all their right answers first"]


def test_mkdocs_quiz_shuffles_the_options():
    text = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    text = re.sub(r"!!python/name:\S+|!ENV \[[^\]]*\]", "null", text)  # YAML tags mkdocs adds
    plugins = yaml.safe_load(text)["plugins"]
    quiz = next(p["mkdocs_quiz"] for p in plugins if isinstance(p, dict) and "mkdocs_quiz" in p)
    assert quiz["shuffle_answers"] is True
    assert quiz["disable_after_submit"] is False, "Try Again must stay possible"
