"""Every topic of the course outline is taught in a lesson and checked by a quiz question.

The outline is each week's topic line in autograder/registry.py (the weeks of the product
spec's table) plus the facts the spec's outline paragraph lists: the GPT-2 / LLaMA 2 /
Mistral / Mixtral configuration tables, decoder-only vs encoder-decoder, and so on. ``TOPICS``
below names each topic with a regular expression that recognises it in our prose
(case-insensitive, tolerant of spellings such as "Llama-2 7B", "LLaMA 2 7B" and "llama-2-7b").
Every phrase of a week's topic line must be recognised by a topic of its week, so a topic added
to the outline cannot be forgotten here either; every exercise is introduced in its lesson.

A week's topics must appear in that week's lesson and inside a question of that week's quiz;
``COURSE_WIDE`` topics (the published models, the families of transformers) in at least one
lesson and at least one quiz. The quiz format is checked too: at least 10 questions, a right
answer in each, an explanation under every option, and the 70 % pass-mark box.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autograder import registry

pytestmark = pytest.mark.site

REPO = Path(__file__).resolve().parents[2]
WEEKS_DIR = REPO / "site" / "weeks"
WEEKS = [w.number for w in registry.WEEKS]

# Separators inside a spelled model name: "Llama-2 7B", "LLaMA 2 7B", "llama-2-7b".
_ = r"[\s\-_]*"


def model(*parts: str) -> str:
    return _.join(parts) + r"\b"


# week -> {topic: regex}. The regexes are searched case-insensitively in the raw markdown.
TOPICS: dict[int, dict[str, str]] = {
    1: {
        "decoder-only transformer": r"decoder[\s-]only",
        "embeddings": r"embedding",
        "causal self-attention": r"causal",
        "self-attention": r"self[\s-]attention|\battention\b",
        "multi-head attention": r"multi[\s-]?head",
        "residual connections": r"residual",
        "the forward pass": r"forward pass|forward\(",
        "next-token prediction": r"next[\s-]token",
        # outline facts that week 1 teaches (issue 19)
        "why transformers replaced recurrent networks": r"recurren",
        "parallel training": r"parallel",
        "timeline of architectures, 2017 to today": r"\b2017\b",
        "open-weight vs closed models": r"open[\s-]weight",
        "cross-attention in vision-language models": r"cross[\s-]attention",
        "vision-language models": r"vision[\s-]language|image encoder|Flamingo|LLaVA",
    },
    2: {
        "byte-level BPE": r"byte[\s-]level",
        "BPE": r"\bBPE\b|byte[\s-]pair",
        "SentencePiece": r"SentencePiece",
        "WordPiece": r"WordPiece",
        "tokens": r"\btokens?\b",
        "tokens vs words": r"tokens? (per|vs\.?|against) words?|words? (per|vs\.?|against) tokens?",
        "tokenization": r"tokeni[sz]",
    },
    3: {
        "normalization": r"normali[sz]ation",
        "activations": r"activation",
        "LayerNorm": r"LayerNorm|layer norm",
        "RMSNorm": r"RMSNorm",
        "pre-norm": r"pre[\s-]norm",
        "ReLU": r"\bReLU\b",
        "GELU": r"\bGELU\b",
        "SiLU": r"\bSiLU\b|swish",
        "SwiGLU": r"SwiGLU",
    },
    4: {
        "positions": r"position",
        "sinusoidal positions": r"sinusoid",
        "learned positions": r"\blearn(ed|s)\b",
        "RoPE": r"\bRoPE\b|rotary",
        "ALiBi": r"ALiBi",
        "length extrapolation": r"extrapolat",
    },
    5: {
        "attention for inference": r"inference|decoding",
        "MHA": r"\bMHA\b|multi[\s-]head attention",
        "MQA": r"\bMQA\b|multi[\s-]query",
        "GQA": r"\bGQA\b|grouped[\s-]query",
        "KV cache": r"\bKV[\s-]cache",
        "KV cache memory": r"bytes|\bmemory|[GM]iB",
        "sliding-window attention": r"sliding[\s-]window",
        "receptive field": r"receptive field",
        "FlashAttention": r"FlashAttention|Flash Attention",
        "tiling": r"\btil(e|es|ed|ing)\b",
        "online softmax": r"online softmax",
    },
    6: {
        "mixture of experts": r"mixture[\s-]of[\s-]experts|\bMoE\b",
        "router": r"router|routing",
        "top-k routing": r"top[\s-]?k|top-\$k\$",
        "renormalisation": r"renormali[sz]",
        "load balancing": r"load[\s-]balanc",
        "active parameters": r"active param",
        "total parameters": r"\btotal\b",
        "Mixtral": r"Mixtral",
        "DeepSeek-V3": r"DeepSeek[\s-]?V3",
        "Llama 4": model("Llama", "4"),
    },
    7: {
        "mini-GPT": r"mini[\s-]?GPT",
        "assemble your parts": r"assembl|your (own )?parts",
        "train on a GPU": r"\bGPU\b",
        "train on a CPU": r"\bCPU\b",
        "training": r"train",
        "sampling": r"sampl",
        "temperature": r"temperature",
        "top-k sampling": r"top[\s-]?k|top-\$k\$",
        "top-p (nucleus) sampling": r"top[\s-]?p\b|top-\$p\$|nucleus",
        "generate": r"generat",
        "KV cache": r"\bKV[\s-]cache",
    },
    8: {
        "scale": r"scal(e|ing)",
        "parameter counting": r"parameter count|count(ing)? (the )?param|count_parameters",
        "training FLOPs": r"FLOP",
        "6·N·D": r"6\s*(·|\\cdot|\\times|×|\*)?\s*N\s*(·|\\cdot|\\times|×|\*)?\s*D\b|6ND",
        "Chinchilla scaling law": r"Chinchilla",
        "compute-optimal N and D": r"compute[\s-]optimal",
        "context windows": r"context (window|length)",
        "the cost of context": r"quadratic|\bcost",
        "training stages": r"training stages?|stages of training",
        "pretraining": r"pre-?train",
        "SFT": r"\bSFT\b|supervised fine[\s-]tuning",
        "RLHF": r"\bRLHF\b|reinforcement learning from human feedback",
        "DPO": r"\bDPO\b|direct preference optimi[sz]ation",
        "beyond attention": r"beyond attention|without attention|attention[\s-]free|recurren",
        "state-space models (Mamba)": r"Mamba|state[\s-]space",
        # outline facts that week 8 teaches (issue 19)
        "linear attention": r"linear attention",
        "Llama 4 Scout's 10M-token context": model("Llama", "4", "Scout"),
        "advertised vs effective context length": r"effective context",
    },
    9: {
        "DeepSeek-V3": r"DeepSeek[\s-]?V3",
        "Llama 4": model("Llama", "4"),
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
        "Llama 4 Scout": r"Scout",
        "Llama 4 Maverick": r"Maverick",
        "active parameters": r"active",
    },
    10: {
        "after pretraining": r"pretrain",
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
        "preference optimisation": r"preference",
        "RLHF": r"\bRLHF\b",
        "reward model": r"reward model",
        "PPO": r"\bPPO\b",
        "DPO": r"\bDPO\b",
        "reference model": r"reference",
        "beta": r"\bbeta\b|β|\\beta",
        "Bradley-Terry preferences": r"Bradley",
        "Constitutional AI": r"Constitutional AI",
    },
}

# Facts the outline paragraph of the spec names: taught somewhere, quizzed somewhere.
COURSE_WIDE: dict[str, str] = {
    "decoder-only": r"decoder[\s-]only",
    "encoder-decoder": r"encoder[\s-]decoder",
    "GPT-2 small": model("GPT", "2", r"(small|\(?124\s*M)"),
    "GPT-2 medium": model("GPT", "2", "medium"),
    "GPT-2 large": model("GPT", "2", "large"),
    "GPT-2 XL": model("GPT", "2", "XL"),
    "Llama 2 7B": model("LLaMA", "2", "7", "B"),
    "Llama 2 13B": model("LLaMA", "2", "13", "B"),
    "Llama 2 70B": model("LLaMA", "2", "70", "B"),
    "Mistral 7B": model("Mistral", "7", "B"),
    "Mistral 7B beats the larger Llama 2 13B":
        r"Mistral 7B[^\n]*Llama 2 13B|Llama 2 13B[^\n]*Mistral 7B",
    "Llama 4 Scout's 10M context": r"10[\s-]?(M\b|million)",
    "Mixtral 8x7B": model("Mixtral", r"8\s*(x|×|\\times)\s*7", "B"),
    "MHA/MQA/GQA": r"\bGQA\b",
    "RoPE": r"\bRoPE\b",
    "ALiBi": r"ALiBi",
    "MoE numbers": r"active param",
    "scaling laws": r"scaling law",
    "context windows": r"context window",
    "training stages": r"\bSFT\b|RLHF|DPO",
    "FlashAttention": r"FlashAttention",
    "Mamba": r"Mamba",
}

# Words of the outline's topic lines that name no topic on their own.
FILLER = {"", "compared", "and", "the", "its", "your", "a", "an", "or", "their", "about",
          "frontier"}


def pattern(regex: str) -> re.Pattern:
    """A space in a topic's regex matches any run of whitespace (prose wraps lines)."""
    return re.compile(regex.replace(" ", r"\s+"), re.IGNORECASE)


def page(week: int, name: str) -> Path:
    return WEEKS_DIR / f"week{week}" / f"{name}.md"


def questions(quiz_md: str) -> list[str]:
    """The text of each ``<quiz>...</quiz>`` block (mkdocs-quiz's markdown format)."""
    return re.findall(r"^<quiz>\s*\n(.*?)^</quiz>", quiz_md, re.S | re.M)


def quiz_text(week: int) -> str:
    return "\n".join(questions(page(week, "quiz").read_text(encoding="utf-8")))


def missing(topics: dict[str, str], text: str) -> list[str]:
    return [name for name, regex in topics.items() if not pattern(regex).search(text)]


def read_or_fail(path: Path) -> str:
    if not path.is_file():
        pytest.fail(f"{path.relative_to(REPO)} does not exist")
    return path.read_text(encoding="utf-8")


# --- the topics -------------------------------------------------------------------------------


def phrases(topic_cell: str) -> list[str]:
    """Split a topic line like "Positions: sinusoidal, learned, RoPE, ALiBi" into phrases
    (math such as ``$6ND$`` counts as its text)."""
    atoms = re.split(r"[:,;/()]|\band\b|\bvs\b|\bwith\b|\bon\b|\bin\b",
                     topic_cell.replace("$", ""))
    words = [" ".join(w for w in a.split() if w.lower() not in FILLER) for a in atoms]
    return [w for w in words if len(w) > 1]  # "N and D" leaves a lone "D"


def known(phrase: str, topics: dict[str, str]) -> bool:
    """A topic's regex finds the phrase, or the phrase's words are all in a topic's name."""
    words = set(phrase.lower().split())
    return any(
        pattern(regex).search(phrase) or words <= set(name.lower().split())
        for name, regex in topics.items()
    )


def test_every_week_has_its_topics_and_pages():
    """The registry's weeks, the site's week folders and ``TOPICS`` name the same weeks."""
    folders = sorted(int(p.name.removeprefix("week")) for p in WEEKS_DIR.glob("week*")
                     if p.is_dir())
    assert folders == WEEKS, f"site/weeks/ has weeks {folders}, the registry {WEEKS}"
    assert sorted(TOPICS) == WEEKS, (
        f"TOPICS has weeks {sorted(TOPICS)}, the registry {WEEKS}: add the new week's topics "
        "to TOPICS in tests/site/test_coverage.py")


def test_outline_is_known():
    """Every phrase of each week's topic line is recognised by a topic of its week."""
    unknown = {
        w.number: [p for p in phrases(w.topics) if not known(p, TOPICS.get(w.number, {}))]
        for w in registry.WEEKS
    }
    unknown = {week: found for week, found in unknown.items() if found}
    assert not unknown, (
        f"phrases of the registry's week topics that no entry of TOPICS recognises: {unknown}; "
        "add them to TOPICS in tests/site/test_coverage.py"
    )


@pytest.mark.parametrize("exercise", registry.EXERCISES, ids=lambda e: e.name)
def test_every_exercise_is_introduced_in_its_lesson(exercise):
    lesson = read_or_fail(page(exercise.week, "lesson"))
    assert f"`{exercise.symbol}" in lesson, (
        f"site/weeks/week{exercise.week}/lesson.md never names `{exercise.symbol}` "
        f"(exercise {exercise.name})")


@pytest.mark.parametrize("week", WEEKS, ids=[f"week{w}" for w in WEEKS])
def test_week_topics_in_lesson(week):
    lesson = read_or_fail(page(week, "lesson"))
    gaps = missing(TOPICS[week], lesson)
    assert not gaps, f"topics missing from site/weeks/week{week}/lesson.md: {gaps}"


@pytest.mark.parametrize("week", WEEKS, ids=[f"week{w}" for w in WEEKS])
def test_week_topics_in_quiz(week):
    read_or_fail(page(week, "quiz"))
    gaps = missing(TOPICS[week], quiz_text(week))
    assert not gaps, (
        f"topics in no question of site/weeks/week{week}/quiz.md: {gaps} "
        "(only the text inside <quiz> blocks counts)"
    )


@pytest.mark.parametrize("kind", ["lesson", "quiz"])
def test_course_wide_topics(kind):
    texts = {}
    for week in WEEKS:
        if page(week, kind).is_file():
            md = page(week, kind).read_text(encoding="utf-8")
            texts[week] = md if kind == "lesson" else "\n".join(questions(md))
    gaps = [name for name, regex in COURSE_WIDE.items()
            if not any(pattern(regex).search(text) for text in texts.values())]
    assert not gaps, (
        f"course-wide topics in no {kind} (looked in weeks {sorted(texts)}): {gaps}"
    )


def test_topic_regexes_recognise_spellings():
    """The matcher itself: spellings the prose uses are found, other models are not."""
    llama7 = pattern(COURSE_WIDE["Llama 2 7B"])
    for text in ["Llama 2 7B", "Llama-2 7B", "LLaMA-2-7B", "llama2-7b", "LLaMA 2 7 B"]:
        assert llama7.search(text), text
    for text in ["Llama 2 70B", "Llama 3 7B", "Llama 2 13B"]:
        assert not llama7.search(text), text
    assert pattern(COURSE_WIDE["Mixtral 8x7B"]).search("Mixtral 8×7B")
    assert pattern(COURSE_WIDE["Mixtral 8x7B"]).search("Mixtral-8x7B")
    assert not pattern(COURSE_WIDE["Mixtral 8x7B"]).search("Mixtral 8x22B")
    assert pattern(COURSE_WIDE["GPT-2 XL"]).search("GPT2-XL")
    assert pattern(TOPICS[8]["6·N·D"]).search(r"$C \approx 6 \cdot N \cdot D$")
    assert pattern(TOPICS[8]["6·N·D"]).search("C = 6ND")
    assert not pattern(TOPICS[8]["6·N·D"]).search("6 N Dims")
    text = "<quiz>\nQ?\n- [x] a\n> why\n</quiz>\nnot a question\n<quiz>\nR?\n</quiz>\n"
    assert questions(text) == ["Q?\n- [x] a\n> why\n", "R?\n"]
    assert phrases("Positions: sinusoidal, learned, RoPE, ALiBi; length extrapolation") == [
        "Positions", "sinusoidal", "learned", "RoPE", "ALiBi", "length extrapolation"]
    assert phrases("about $6ND$, compute-optimal $N$ and $D$") == ["6ND", "compute-optimal N"]


# --- the quiz format --------------------------------------------------------------------------

PASS_BOX = re.compile(r'<div class="quiz-pass" data-pass-mark="70"')
OPTION = re.compile(r"^- \[( |x)\] ")


def check_question(block: str) -> list[str]:
    """Problems of one question: no right answer, or an option without its explanation."""
    lines = [line for line in block.splitlines() if line.strip()]
    problems = []
    options = [i for i, line in enumerate(lines) if OPTION.match(line)]
    if len(options) < 2:
        problems.append("fewer than two options")
    if not any(lines[i].startswith("- [x]") for i in options):
        problems.append("no right answer")
    for i in options:
        if i + 1 >= len(lines) or not lines[i + 1].startswith(">"):
            problems.append(f"option without an explanation: {lines[i][:60]!r}")
    if options and options[0] == 0:
        problems.append("no question text")
    return problems


# 10 questions a week; more where the week's issue asked for more
FEWEST_QUESTIONS = {9: 12, 10: 12}


@pytest.mark.parametrize("week", WEEKS, ids=[f"week{w}" for w in WEEKS])
def test_quiz_format(week):
    md = read_or_fail(page(week, "quiz"))
    assert re.match(r"---\s*\nquiz:\s*\n\s+enabled:\s*true\s*\n---", md), (
        f"week{week}/quiz.md must start with the front matter `quiz: {{enabled: true}}`"
    )
    assert PASS_BOX.search(md), f"week{week}/quiz.md has no 70 % pass-mark box"
    assert "Pass mark 70 %" in md
    # mkdocs-quiz's progress bar and reset button, and its score panel ("100%").
    for marker in ["<!-- mkdocs-quiz intro -->", "<!-- mkdocs-quiz results -->"]:
        assert marker in md, f"week{week}/quiz.md lacks {marker}"
    blocks = questions(md)
    fewest = FEWEST_QUESTIONS.get(week, 10)
    assert len(blocks) >= fewest, (
        f"week{week}/quiz.md has {len(blocks)} questions, fewer than {fewest}")
    assert md.count("<quiz>") == len(blocks), f"week{week}/quiz.md has an unclosed <quiz>"
    problems = {n + 1: p for n, block in enumerate(blocks) if (p := check_question(block))}
    assert not problems, f"week{week}/quiz.md, question number -> problems: {problems}"


def test_quiz_format_check_finds_mistakes():
    good = "Q?\n- [x] a\n> yes\n- [ ] b\n> no\n"
    assert check_question(good) == []
    assert check_question("Q?\n- [ ] a\n> no\n- [ ] b\n> no\n") == ["no right answer"]
    assert check_question("Q?\n- [x] a\n- [ ] b\n> no\n") == [
        "option without an explanation: '- [x] a'"]


def test_pass_mark_script_is_loaded():
    """quiz-pass.js, which fills the pass-mark box, is on every page (so every quiz page)."""
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s+- assets/javascripts/quiz-pass\.js$", config, re.M)
    script = (REPO / "site" / "assets" / "javascripts" / "quiz-pass.js").read_text()
    assert "quizProgressUpdate" in script and ".quiz-pass" in script


@pytest.mark.parametrize("week", WEEKS, ids=[f"week{w}" for w in WEEKS])
def test_week_is_in_the_nav(week):
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    for name in ["lesson.md", "notebook.ipynb", "quiz.md"]:
        assert f"weeks/week{week}/{name}" in config, f"mkdocs.yml's nav lacks week{week}/{name}"


# --- the glossary -----------------------------------------------------------------------------

GLOSSARY_MUST_HAVE = [
    "attention", "ALiBi", "autoregressive", "BPE", "bf16", "causal mask", "Chinchilla",
    "compute-optimal", "context window", "DDP", "DPO", "embedding", "encoder-decoder",
    "FlashAttention", "GELU", "GQA", "greedy decoding", "KV cache", "LayerNorm",
    "load-balancing loss", "logits", "Mamba", "MFU", "MHA", "MoE", "MQA", "nucleus sampling",
    "perplexity", "pre-norm", "RLHF", "RMSNorm", "RoPE", "router", "SFT", "sliding window",
    "SwiGLU", "temperature", "tied embeddings", "top-k", "TF32", "torch.compile", "warm-up",
]


def glossary_entries() -> dict[str, str]:
    """Term -> definition, from the definition list of site/glossary.md."""
    md = (REPO / "site" / "glossary.md").read_text(encoding="utf-8")
    entries = re.findall(r"^(\S[^\n]*)\n:   (.*?)(?=\n\n|\Z)", md, re.S | re.M)
    return {term.strip(): " ".join(text.split()) for term, text in entries}


def test_glossary():
    entries = glossary_entries()
    assert len(entries) >= 60, f"the glossary has {len(entries)} terms"
    terms = list(entries)
    assert terms == sorted(terms, key=str.lower), "glossary terms are not in alphabetical order"
    unlinked = [t for t, text in entries.items()
                if not re.search(r"\]\(weeks/week\d+/lesson\.md(#[\w-]+)?\)", text)]
    assert not unlinked, f"glossary terms without a link to the week that teaches them: {unlinked}"
    lowered = " | ".join(terms).lower()
    absent = [t for t in GLOSSARY_MUST_HAVE if t.lower() not in lowered]
    assert not absent, f"terms missing from the glossary: {absent}"
