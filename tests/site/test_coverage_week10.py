"""Week 10 (SFT, LoRA and DPO) is taught in its lesson and checked by its quiz, like weeks 1-8
in test_coverage.py (whose week list follows COURSE.md's table, which names weeks 1-8)."""

import pytest

from tests.site.test_coverage import (
    check_question,
    missing,
    page,
    questions,
    quiz_text,
    read_or_fail,
)

pytestmark = pytest.mark.site

# the topics of the week-10 issue and of COURSE.md's paragraph on week 10
TOPICS = {
    "supervised fine-tuning": r"supervised fine[\s-]tuning|\bSFT\b",
    "chat format": r"chat (format|template)",
    "special tokens": r"special token",
    "prompt masking": r"prompt[\s\S]{0,40}mask|mask[\s\S]{0,40}prompt",
    "mean over the response tokens of the batch":
        r"per[\s-]sequence|every (response |counted )?token",
    "LoRA": r"\bLoRA\b",
    "low-rank update": r"low[\s-]rank",
    "alpha / r scaling": r"alpha\s*/\s*r|\\alpha\s*/\s*r|\\frac\{\\alpha\}\{r\}",
    "B starts at zero": r"zero",
    "merging the adapters": r"merg",
    "trainable parameters and optimizer state": r"optimi[sz]er[\s-]state|AdamW",
    "RLHF": r"\bRLHF\b",
    "reward model": r"reward model",
    "PPO": r"\bPPO\b",
    "DPO": r"\bDPO\b",
    "reference model": r"reference",
    "beta": r"\bbeta\b|β|\\beta",
    "Bradley-Terry preferences": r"Bradley",
    "Constitutional AI": r"Constitutional AI",
}


def test_week10_topics_in_lesson():
    gaps = missing(TOPICS, read_or_fail(page(10, "lesson")))
    assert not gaps, f"topics missing from site/weeks/week10/lesson.md: {gaps}"


def test_week10_topics_in_quiz():
    read_or_fail(page(10, "quiz"))
    gaps = missing(TOPICS, quiz_text(10))
    assert not gaps, f"topics in no question of site/weeks/week10/quiz.md: {gaps}"


def test_week10_quiz_format():
    md = read_or_fail(page(10, "quiz"))
    assert md.startswith("---\nquiz:\n  enabled: true\n---")
    assert '<div class="quiz-pass" data-pass-mark="70"' in md and "Pass mark 70 %" in md
    for marker in ["<!-- mkdocs-quiz intro -->", "<!-- mkdocs-quiz results -->"]:
        assert marker in md
    blocks = questions(md)
    assert len(blocks) >= 12 and md.count("<quiz>") == len(blocks)
    problems = {n + 1: p for n, block in enumerate(blocks) if (p := check_question(block))}
    assert not problems, problems
