"""Week 9 (DeepSeek-V3 and Llama 4) is taught in its lesson and checked by its quiz, like weeks
1-8 in test_coverage.py (whose week list follows COURSE.md's table, which names weeks 1-8)."""

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

# the topics of the week-9 issue and of COURSE.md's paragraph on week 9
TOPICS = {
    "multi-head latent attention": r"latent attention|\bMLA\b",
    "low-rank KV compression": r"kv_lora_rank|low[\s-]rank|latent",
    "decoupled RoPE": r"RoPE key|decoupl",
    "weight absorption": r"absor",
    "cache bytes against GQA": r"\bGQA\b",
    "fine-grained experts": r"fine[\s-]grained",
    "shared experts": r"shared expert",
    "sigmoid routing": r"sigmoid",
    "group-limited top-k": r"group",
    "auxiliary-loss-free balancing": r"auxiliary[\s-]loss[\s-]free|bias",
    "Switch-style losses": r"Switch",
    "multi-token prediction": r"multi[\s-]token prediction|\bMTP\b",
    "chunked attention": r"chunk",
    "NoPE layers": r"NoPE",
    "attention temperature": r"temperature",
    "QK-norm": r"QK[\s-]norm",
    "DeepSeek-V3": r"DeepSeek[\s-]?V3",
    "Llama 4 Scout": r"Scout",
    "Llama 4 Maverick": r"Maverick",
    "active parameters": r"active",
}


def test_week9_topics_in_lesson():
    gaps = missing(TOPICS, read_or_fail(page(9, "lesson")))
    assert not gaps, f"topics missing from site/weeks/week9/lesson.md: {gaps}"


def test_week9_topics_in_quiz():
    read_or_fail(page(9, "quiz"))
    gaps = missing(TOPICS, quiz_text(9))
    assert not gaps, f"topics in no question of site/weeks/week9/quiz.md: {gaps}"


def test_week9_quiz_format():
    md = read_or_fail(page(9, "quiz"))
    assert md.startswith("---\nquiz:\n  enabled: true\n---")
    assert '<div class="quiz-pass" data-pass-mark="70"' in md and "Pass mark 70 %" in md
    for marker in ["<!-- mkdocs-quiz intro -->", "<!-- mkdocs-quiz results -->"]:
        assert marker in md
    blocks = questions(md)
    assert len(blocks) >= 12 and md.count("<quiz>") == len(blocks)
    problems = {n + 1: p for n, block in enumerate(blocks) if (p := check_question(block))}
    assert not problems, problems
