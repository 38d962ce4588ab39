"""The built site in chromium: math, diagrams, the quiz and its pass mark, search, offline.

Every test runs with all requests outside 127.0.0.1 refused and recorded, and fails on them
and on console errors (see the `browsing` fixture).
"""

from __future__ import annotations

import math

import pytest

from autograder import registry
from tests.site.conftest import watched_page

pytestmark = [pytest.mark.site, pytest.mark.browser]

PASS_MARK = 70


def test_requests_off_this_machine_fail_and_are_recorded(chromium, server):
    state = watched_page(chromium)
    try:
        state.page.goto(server)
        url = "https://cdn.example.com/library.js"
        outcome = state.page.evaluate(
            "url => fetch(url, {mode: 'no-cors'}).then(() => 'loaded', () => 'failed')", url)
        assert outcome == "failed", "chromium reached a host other than 127.0.0.1"
        assert state.external == [url]
        # The same server by another name is refused too: the browser resolves no names.
        alias = server.replace("127.0.0.1", "localhost")
        outcome = state.page.evaluate(
            "url => fetch(url, {mode: 'no-cors'}).then(() => 'loaded', () => 'failed')", alias)
        assert outcome == "failed", "chromium resolved localhost"
        assert state.external == [url, alias]
    finally:
        state.page.context.close()


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
    assert pass_box(page)[0] == f"{js_round(100 / quizzes.count())} %"
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


# mkdocs-quiz shuffles with Math.random; a seeded generator makes a test's option order fixed.
SEEDED_RANDOM = """(() => {
  let state = %d >>> 0;
  Math.random = function () {
    state = (state + 0x6D2B79F5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
})();"""
TODAY = """() => { const d = new Date(), pad = n => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`; }"""


def options(quiz) -> list:
    """The quiz's option inputs, in the order the page shows them."""
    inputs = quiz.locator("fieldset input")
    return [inputs.nth(i) for i in range(inputs.count())]


def submit(page, quiz, chosen: list) -> bool:
    """Tick ``chosen`` (inputs), submit if there is a Submit button, return whether it was right."""
    for option in chosen:
        page.locator(f"label[for='{option.get_attribute('id')}']").click()
    button = quiz.locator("button[type=submit]")
    if button.count():  # several right answers: checkboxes and a Submit button
        button.click()
    feedback = quiz.locator(".quiz-feedback:not(.hidden) .quiz-feedback-item").first
    feedback.wait_for()
    return "incorrect" not in feedback.get_attribute("class").split()


def try_again(quiz) -> None:
    quiz.locator(".quiz-reset-button").click()
    quiz.locator(".quiz-feedback.hidden").wait_for(state="attached")


def answer(page, quiz, correct: bool) -> None:
    """Answer one mkdocs-quiz question from the key, rightly or wrongly."""
    key = quiz.locator("fieldset input").evaluate_all(
        "inputs => inputs.map(i => [i.id, Boolean(i.getAttribute('data-correct'))])")
    inputs = options(quiz)
    right = [option for option, (_, ok) in zip(inputs, key, strict=True) if ok]
    wrong = [option for option, (_, ok) in zip(inputs, key, strict=True) if not ok]
    assert submit(page, quiz, right if correct else wrong[:1]) == correct


# The robots of test_quiz_robots, run inside the page: one call answers every question of the
# quiz, with the clicks a reader makes (the option's label, then Submit where there is one; Try
# Again after a wrong answer), each on a visible, enabled control, reading mkdocs-quiz's
# feedback after each answer. Returns, per question, whether the robot's first answer was right.
#   first: always the first option shown (alone, for a checkbox question);
#   retry: the options in the order shown (sets of them, smallest first, for checkboxes),
#          pressing Try Again after each wrong answer until one is right;
#   key:   exactly the options marked right.
ROBOT = """robot => {
  const clickable = (element, what) => {
    if (!element || !element.checkVisibility() || element.disabled) {
      throw new Error(`${what} is not there to click`);
    }
    return element;
  };
  const options = quiz => [...quiz.querySelectorAll("fieldset input")];
  function submit(quiz, chosen) {
    for (const option of chosen) {
      clickable(document.querySelector(`label[for="${CSS.escape(option.id)}"]`),
                `the label of ${option.id}`).click();
    }
    const button = quiz.querySelector("button[type=submit]");
    if (button) clickable(button, `the Submit button of ${quiz.id}`).click();
    const feedback = quiz.querySelector(".quiz-feedback:not(.hidden) .quiz-feedback-item");
    if (!feedback) throw new Error(`${quiz.id}: no feedback after an answer`);
    return !feedback.classList.contains("incorrect");
  }
  function tryAgain(quiz) {
    clickable(quiz.querySelector(".quiz-reset-button"), `Try Again of ${quiz.id}`).click();
    if (!quiz.querySelector(".quiz-feedback.hidden")) {
      throw new Error(`${quiz.id}: feedback still shown after Try Again`);
    }
  }
  function* combinations(items, size, from = 0, chosen = []) {
    if (chosen.length === size) { yield chosen; return; }
    for (let i = from; i < items.length; i++) {
      yield* combinations(items, size, i + 1, [...chosen, items[i]]);
    }
  }
  function* tries(quiz) {
    const shown = options(quiz);
    const multiple = quiz.querySelector("button[type=submit]") !== null;
    for (let size = 1; size <= (multiple ? shown.length : 1); size++) {
      yield* combinations(shown, size);
    }
  }
  const robots = {
    first: quiz => submit(quiz, options(quiz).slice(0, 1)),
    key: quiz => submit(quiz, options(quiz).filter(o => o.getAttribute("data-correct"))),
    retry: quiz => {
      const results = [];
      for (const chosen of tries(quiz)) {
        results.push(submit(quiz, chosen));
        if (results.at(-1)) return results[0];
        tryAgain(quiz);
      }
      throw new Error(`${quiz.id}: no combination of options was right`);
    },
  };
  return [...document.querySelectorAll(".quiz")].map(robots[robot]);
}"""

# Per question: options shown, explanations among them, and the options' source positions.
QUESTIONS = """() => [...document.querySelectorAll(".quiz")].map(quiz => {
  const shown = quiz.querySelectorAll("fieldset > div");
  return {options: shown.length,
          explained: [...shown].map(o => o.querySelectorAll(".answer-feedback").length)
            .reduce((a, b) => a + b, 0),
          values: [...quiz.querySelectorAll("fieldset input")].map(i => Number(i.value))};
})"""


def pass_box(page) -> tuple[str, str]:
    """Score and status of the pass-mark box (the page has one above and one below the quiz)."""
    boxes = page.locator(".quiz-pass")
    first = (boxes.first.locator(".quiz-pass-score").inner_text(),
             boxes.first.locator(".quiz-pass-status").inner_text())
    last = (boxes.last.locator(".quiz-pass-score").inner_text(),
            boxes.last.locator(".quiz-pass-status").inner_text())
    assert first == last, f"the two pass-mark boxes disagree: {first} and {last}"
    return first


def best_record(page) -> str:
    return page.locator(".quiz-pass-record").first.inner_text()


def reset_quiz(page) -> None:
    """mkdocs-quiz's Reset button, confirming its dialog: a fresh attempt at the whole quiz."""
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(".quiz-intro-reset").click()
    assert page.locator(".quiz-feedback:not(.hidden)").count() == 0


def test_quiz_first_answer_counts_reset_reload_and_best(browsing, repo_site):
    page = browsing.page
    page.add_init_script(SEEDED_RANDOM % 3)
    browsing.goto(repo_site.url + "weeks/week3/quiz/")
    assert "Pass mark 70 %" in page.locator(".quiz-pass").first.inner_text()
    quizzes = page.locator(".quiz")
    total = quizzes.count()
    assert total >= 10
    for i in range(total):
        # Every answer option carries its own explanation.
        shown = quizzes.nth(i).locator("fieldset > div")
        assert shown.locator(".answer-feedback").count() == shown.count()
    assert pass_box(page) == ("0 %", "not passed yet")
    assert best_record(page) == ""

    # Just under the pass mark: answer one question fewer than needed correctly.
    needed = math.ceil(total * PASS_MARK / 100)
    for i in range(total):
        answer(page, quizzes.nth(i), correct=i < needed - 1)
    below = js_round(100 * (needed - 1) / total)
    assert below < PASS_MARK
    assert pass_box(page) == (f"{below} %", "not passed yet")
    today = page.evaluate(TODAY)
    assert best_record(page) == f"Your best: {below} % on {today} (not passed)."
    answered = page.locator(".quiz-pass-answered").first.inner_text()
    assert answered == f"{total} of {total}"

    # The attempt survives a reload.
    page.reload(wait_until="networkidle")
    assert pass_box(page) == (f"{below} %", "not passed yet")
    last = quizzes.nth(total - 1)
    assert last.locator("fieldset input:checked").count() >= 1

    # Retrying a wrong answer until it is right teaches, but does not change the score.
    try_again(last)
    answer(page, last, correct=True)
    assert pass_box(page) == (f"{below} %", "not passed yet")

    # Reset is a retake: a fresh attempt, scored from zero; the best score stays.
    reset_quiz(page)
    assert pass_box(page) == ("0 %", "not passed yet")
    assert best_record(page) == f"Your best: {below} % on {today} (not passed)."
    for i in range(total):
        answer(page, quizzes.nth(i), correct=True)
    assert pass_box(page) == ("100 %", "passed")
    assert best_record(page) == f"Your best: 100 % on {today} (passed)."

    # A worse retake leaves the best score alone, also after a reload.
    reset_quiz(page)
    answer(page, quizzes.nth(0), correct=False)
    assert pass_box(page) == ("0 %", "not passed yet")
    page.reload(wait_until="networkidle")
    assert pass_box(page) == ("0 %", "not passed yet")
    assert best_record(page) == f"Your best: 100 % on {today} (passed)."
    browsing.assert_clean()


# Pages load this many at a time, in tabs of one context: most of a page's time is the wait
# for the network to go quiet, which the tabs spend together.
TABS = 4


def test_every_page_offline_without_console_errors(browsing, repo_site):
    pages = repo_site.pages()
    assert len(pages) >= 6
    tabs = [browsing.page] + [browsing.new_page() for _ in range(TABS - 1)]
    for start in range(0, len(pages), TABS):
        loading = list(zip(tabs, pages[start:start + TABS], strict=False))
        for tab, url in loading:
            tab.goto(url, wait_until="commit")
        for tab, url in loading:
            tab.wait_for_load_state("networkidle")
            assert tab.url == url, f"{url} went to {tab.url}"
            if tab.locator(".arithmatex, .jp-RenderedMarkdown").count():
                wait_for_mathjax(tab)
        browsing.assert_clean()


WEEKS = [w.number for w in registry.WEEKS]


@pytest.mark.parametrize("week", WEEKS, ids=[f"week{w}" for w in WEEKS])
def test_quiz_robots(browsing, repo_site, week):
    """Each week's quiz against three robots. Always the first option shown: below the pass
    mark. Retrying each question until right: right everywhere in the end, yet the same score,
    below the pass mark. Answering from the key: 100 %, passed, remembered."""
    if not (repo_site.path / f"weeks/week{week}/quiz/index.html").is_file():
        pytest.fail(f"the site has no week {week} quiz (site/weeks/week{week}/quiz.md)")
    page = browsing.page
    page.add_init_script(SEEDED_RANDOM % week)
    browsing.goto(repo_site.url + f"weeks/week{week}/quiz/")
    assert "Pass mark 70 %" in page.locator(".quiz-pass").first.inner_text()
    assert pass_box(page) == ("0 %", "not passed yet")
    questions = page.evaluate(QUESTIONS)
    total = len(questions)
    assert total >= 10, f"week {week}: {total} questions"
    for i, question in enumerate(questions):
        assert question["options"] >= 2
        assert question["explained"] == question["options"], (
            f"week {week}, question {i + 1}: an option without an explanation")
    shuffled = sum(q["values"] != sorted(q["values"]) for q in questions)
    assert shuffled >= total // 2, f"only {shuffled} of {total} questions shown shuffled"
    today = page.evaluate(TODAY)

    firsts = page.evaluate(ROBOT, "first")
    assert len(firsts) == total
    first_score = js_round(100 * sum(firsts) / total)
    assert first_score < PASS_MARK
    assert pass_box(page) == (f"{first_score} %", "not passed yet")
    assert best_record(page) == f"Your best: {first_score} % on {today} (not passed)."

    reset_quiz(page)
    assert pass_box(page) == ("0 %", "not passed yet")
    retried = page.evaluate(ROBOT, "retry")
    assert retried == firsts, "same shuffle: the retry robot's first tries are the first options"
    # mkdocs-quiz shows every question answered right now; the score kept the first answers.
    shown = page.locator(".quiz-feedback:not(.hidden) .quiz-feedback-item")
    assert shown.count() >= total
    assert page.locator(".quiz-feedback:not(.hidden) .quiz-feedback-item.incorrect").count() == 0
    assert pass_box(page) == (f"{first_score} %", "not passed yet")

    reset_quiz(page)
    assert page.evaluate(ROBOT, "key") == [True] * total
    assert pass_box(page) == ("100 %", "passed")
    assert best_record(page) == f"Your best: 100 % on {today} (passed)."

    page.reload(wait_until="networkidle")
    assert pass_box(page) == ("100 %", "passed")
    assert page.locator(".quiz-pass-answered").first.inner_text() == f"{total} of {total}"
    assert best_record(page) == f"Your best: 100 % on {today} (passed)."
    browsing.assert_clean()
