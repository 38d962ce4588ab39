"""The built site in chromium: math, diagrams, the quiz and its pass mark, search, offline.

Every test runs with all requests outside 127.0.0.1 refused and recorded, and fails on them
and on console errors (see the `browsing` fixture).
"""

from __future__ import annotations

import math

import pytest

from autograder import registry

pytestmark = [pytest.mark.site, pytest.mark.browser]

PASS_MARK = 70


def wait_for_mathjax(page) -> None:
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    page.evaluate("() => MathJax.startup.promise")


# Visible formulas drawn without glyphs: what a MathJax cache cleared at the wrong time gives.
BLANK_MATH = """scope => [...document.querySelectorAll(scope + " mjx-container")]
  .filter(math => math.checkVisibility())
  .filter(math => {
    const glyph = math.querySelector("mjx-c");
    return math.getBoundingClientRect().width === 0
      || (glyph && getComputedStyle(glyph, "::before").content === "none");
  }).length"""


def assert_math_rendered(page, scope: str) -> None:
    wait_for_mathjax(page)
    assert page.locator(f"{scope} mjx-container").count() > 0, f"no typeset math in {scope}"
    assert page.evaluate(BLANK_MATH, scope) == 0, f"math typeset but invisible in {scope}"
    text = page.locator(scope).first.inner_text()
    for raw in ["$$", "\\(", "\\[", "\\frac", "\\sqrt"]:
        assert raw not in text, f"raw TeX {raw!r} left in {scope}"


def test_lesson_math_and_diagram(browsing, repo_site):
    page = browsing.page
    browsing.goto(repo_site.url + "weeks/week3/lesson/")
    assert_math_rendered(page, "article")
    # Material replaces each <pre class="mermaid"> with a rendered <div class="mermaid">.
    page.wait_for_selector("div.mermaid", timeout=15_000)
    assert page.locator("pre.mermaid").count() == 0
    assert page.locator("div.mermaid").first.bounding_box()["height"] > 100
    browsing.assert_clean()


def test_notebook_math(browsing, fixture_site):
    page = browsing.page
    browsing.goto(fixture_site.url + "weeks/week3/notebook/")
    assert_math_rendered(page, ".jupyter-wrapper")
    cells = page.locator(".jp-RenderedMarkdown mjx-container")
    assert cells.count() >= 2, "the inline and the display formula"
    assert page.locator('.jp-RenderedMarkdown mjx-container[display="true"]').count() == 1
    assert "5 $" in page.locator(".jupyter-wrapper").inner_text(), "an escaped $ stays text"
    assert page.get_by_role("link", name="Download rmsnorm_swiglu.ipynb").count() == 1
    browsing.assert_clean()


def test_instant_navigation_typesets_math(browsing, fixture_site):
    page = browsing.page
    browsing.goto(fixture_site.url)
    wait_for_mathjax(page)
    page.evaluate("() => { window.__samePage = true; }")
    for title in ["Notebook", "Lesson", "Notebook", "Quiz"]:
        week3 = page.locator("nav.md-nav--primary").locator(
            'a.md-nav__link[href*="weeks/week3/"]')
        week3.get_by_text(title, exact=True).click()
        page.wait_for_url(f"**/weeks/week3/{title.lower()}/")
        page.wait_for_load_state("networkidle")
        assert page.evaluate("() => window.__samePage === true"), "instant navigation reloaded"
        page.wait_for_function("() => document.querySelectorAll('article mjx-container').length")
        assert_math_rendered(page, "article")
    # The quiz still works after instant navigation.
    quizzes = page.locator(".quiz")
    answer(page, quizzes.first, correct=True)
    assert page.locator(".quiz-pass-score").inner_text() == f"{js_round(100 / quizzes.count())} %"
    browsing.assert_clean()


def test_search_works_offline(browsing, repo_site):
    page = browsing.page
    browsing.goto(repo_site.url)
    page.locator("input.md-search__input").click()
    page.locator("input.md-search__input").press_sequentially("SwiGLU")
    page.wait_for_selector(".md-search-result__item", timeout=15_000)
    links = page.locator(".md-search-result__item a")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert any("weeks/week3/lesson/" in href for href in hrefs), hrefs
    browsing.assert_clean()


def js_round(x: float) -> int:
    return math.floor(x + 0.5)


def answer(page, quiz, correct: bool) -> None:
    """Answer one mkdocs-quiz question, rightly or wrongly."""
    inputs = quiz.locator("fieldset input")
    right = [i for i in range(inputs.count()) if inputs.nth(i).get_attribute("data-correct")]
    wrong = [i for i in range(inputs.count()) if i not in right]
    for i in right if correct else wrong[:1]:
        page.locator(f"label[for='{inputs.nth(i).get_attribute('id')}']").click()
    submit = quiz.locator("button[type=submit]")
    if submit.count():  # several right answers: checkboxes and a Submit button
        submit.click()
    expected = "correct" if correct else "incorrect"
    quiz.locator(f".quiz-feedback .{expected}").first.wait_for()


def pass_box(page) -> tuple[str, str]:
    return (
        page.locator(".quiz-pass-score").inner_text(),
        page.locator(".quiz-pass-status").inner_text(),
    )


def test_quiz_pass_mark_reset_reload_and_retry(browsing, repo_site):
    page = browsing.page
    browsing.goto(repo_site.url + "weeks/week3/quiz/")
    assert "Pass mark 70 %" in page.locator(".quiz-pass").inner_text()
    quizzes = page.locator(".quiz")
    total = quizzes.count()
    assert total >= 10
    for i in range(total):
        # Every answer option carries its own explanation.
        options = quizzes.nth(i).locator("fieldset > div")
        assert options.locator(".answer-feedback").count() == options.count()

    # All right: 100 %, passed, and the pass is remembered.
    for i in range(total):
        answer(page, quizzes.nth(i), correct=True)
    assert page.locator(".quiz-results-score-value").inner_text() == "100%"
    assert pass_box(page) == ("100 %", "passed")
    assert "You passed this quiz" in page.locator(".quiz-pass-record").inner_text()

    # Reset everything (mkdocs-quiz asks for confirmation).
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(".quiz-intro-reset").click()
    assert page.locator(".quiz-progress-answered").first.inner_text() == "0"
    assert pass_box(page) == ("0 %", "not passed yet")

    # Just under the pass mark: answer one question fewer than needed correctly.
    needed = math.ceil(total * PASS_MARK / 100)
    for i in range(total):
        answer(page, quizzes.nth(i), correct=i < needed - 1)
    below = js_round(100 * (needed - 1) / total)
    assert below < PASS_MARK
    assert page.locator(".quiz-results-score-value").inner_text() == f"{below}%"
    assert pass_box(page) == (f"{below} %", "not passed yet")
    assert "You passed this quiz" in page.locator(".quiz-pass-record").inner_text()

    # Progress survives a reload.
    page.reload(wait_until="networkidle")
    assert page.locator(".quiz-progress-answered").first.inner_text() == str(total)
    assert page.locator(".quiz-results-score-value").inner_text() == f"{below}%"
    assert pass_box(page) == (f"{below} %", "not passed yet")
    last = quizzes.nth(total - 1)
    assert last.locator("fieldset input:checked").count() >= 1

    # Retry a wrongly answered question: now at the pass mark.
    last.locator(".quiz-reset-button").click()
    answer(page, last, correct=True)
    reached = js_round(100 * needed / total)
    assert reached >= PASS_MARK
    assert page.locator(".quiz-results-score-value").inner_text() == f"{reached}%"
    assert pass_box(page) == (f"{reached} %", "passed")
    browsing.assert_clean()


def test_every_page_offline_without_console_errors(browsing, repo_site):
    pages = repo_site.pages()
    assert len(pages) >= 6
    for url in pages:
        browsing.goto(url)
        if browsing.page.locator(".arithmatex, .jp-RenderedMarkdown").count():
            wait_for_mathjax(browsing.page)
        browsing.assert_clean()


WEEKS = [w.number for w in registry.WEEKS]


@pytest.mark.parametrize("week", WEEKS, ids=[f"week{w}" for w in WEEKS])
def test_every_quiz_passes_and_remembers(browsing, repo_site, week):
    """Each week's quiz: the pass mark, every question answered right, kept on reload."""
    if not (repo_site.path / f"weeks/week{week}/quiz/index.html").is_file():
        pytest.fail(f"the site has no week {week} quiz (site/weeks/week{week}/quiz.md)")
    page = browsing.page
    browsing.goto(repo_site.url + f"weeks/week{week}/quiz/")
    assert "Pass mark 70 %" in page.locator(".quiz-pass").inner_text()
    assert pass_box(page) == ("0 %", "not passed yet")
    quizzes = page.locator(".quiz")
    total = quizzes.count()
    assert total >= 10, f"week {week}: {total} questions"
    for i in range(total):
        options = quizzes.nth(i).locator("fieldset > div")
        assert options.count() >= 2
        assert options.locator(".answer-feedback").count() == options.count(), (
            f"week {week}, question {i + 1}: an option without an explanation")
        answer(page, quizzes.nth(i), correct=True)
    assert page.locator(".quiz-progress-answered").first.inner_text() == str(total)
    assert page.locator(".quiz-results-score-value").inner_text() == "100%"
    assert pass_box(page) == ("100 %", "passed")
    assert "You passed this quiz" in page.locator(".quiz-pass-record").inner_text()

    page.reload(wait_until="networkidle")
    assert page.locator(".quiz-progress-answered").first.inner_text() == str(total)
    assert page.locator(".quiz-results-score-value").inner_text() == "100%"
    assert pass_box(page) == ("100 %", "passed")
    assert "You passed this quiz" in page.locator(".quiz-pass-record").inner_text()
    browsing.assert_clean()
