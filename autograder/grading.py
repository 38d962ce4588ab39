"""Grade a submission exercise by exercise: learner code in a worker, verdicts here."""

from __future__ import annotations

import ast
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from autograder.compare import Mismatch, unwrap
from autograder.reference import Spec, given_code
from autograder.registry import Exercise
from autograder.sandbox import DEFAULT_TIMEOUT_S, run_job
from autograder.submission import Submission


@dataclass
class Case:
    """One graded call: what the worker runs, and how its result is judged here."""

    name: str
    call: dict  # plain data for the worker (see worker._run_call)
    check: Callable[[dict], None]  # raises Mismatch with a message for the learner
    points: float = 1.0


@dataclass
class CaseResult:
    name: str
    passed: bool
    points: float
    max_points: float
    message: str = ""


@dataclass
class ExerciseResult:
    exercise: Exercise
    cases: list[CaseResult]
    notes: list[str] = field(default_factory=list)  # about the submission as a whole
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return round(sum(c.points for c in self.cases), 2)

    @property
    def max_score(self) -> float:
        return self.exercise.points

    @property
    def failures(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.passed]


def given_chunks(exercise: Exercise) -> list[dict]:
    """The worker's chunks for ``exercise.given``, marked so errors point past them."""
    return [{"label": f"given code ({spec})", "source": given_code(spec), "given": True}
            for spec in exercise.given]


def given_note(exercise: Exercise) -> str | None:
    """The report's one line about the reference parts a submission was graded with."""
    names = [s for spec in exercise.given for s in Spec.parse(spec).symbols]
    names = [n for n in names if not n.isupper()]  # constants need no mention
    if not names:
        return None
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return (f"graded with the reference {shown} in place of your earlier parts "
            "(those were graded in their own weeks)")


def _forbidden_uses(sub: Submission, forbidden_paths: dict[str, str]) -> list[str]:
    """Where the source reaches a forbidden function: ``F.name``, ``import ... name``,
    ``getattr(F, "name")``, or a bare ``name`` that the submission does not define itself (a
    learner's own ``scaled_dot_product_attention`` is exactly what week 1 asks for)."""
    forbidden = {path.rsplit(".", 1)[-1]: why for path, why in forbidden_paths.items()}
    trees = []
    for chunk in sub.chunks:
        try:
            trees.append((chunk["label"], ast.parse(chunk["source"])))
        except SyntaxError:
            continue
    own = {node.name for _, tree in trees for node in ast.walk(tree)
           if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    found = []
    for label, tree in trees:
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute):
                name = node.attr
            elif isinstance(node, ast.Name) and node.id not in own:
                name = node.id
            elif isinstance(node, ast.alias):
                name = node.name.split(".")[-1]
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and node.value not in own):
                name = node.value  # getattr(F, "scaled_dot_product_attention")
            if name in forbidden:
                found.append(f"{label} uses `{name}`: {forbidden[name]}")
    return sorted(set(found))


def _zero(exercise: Exercise, cases: list[Case], message: str) -> list[CaseResult]:
    scale = exercise.points / sum(c.points for c in cases)
    return [CaseResult(c.name, False, 0.0, c.points * scale, message) for c in cases]


def _text(value, limit: int = 300) -> str:
    """Learner-controlled text on one line, so it cannot fake rows of the report."""
    text = " ".join(str(value).split())
    text = "".join(ch for ch in text if ch.isprintable())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _judge(case: Case, result, outcome, index: int) -> str | None:
    """None if the case passed, else the message for the learner. Never raises: the result
    came from the learner's process and may be forged or malformed."""
    try:
        return _judge_result(case, result, outcome, index)
    except Exception as exc:
        return f"the worker's result could not be read ({type(exc).__name__})"


def _judge_result(case: Case, result, outcome, index: int) -> str | None:
    if result is None:
        if outcome.stopped_at == index:
            return f"your code {outcome.stopped} while running this case"
        return f"not run: the worker {outcome.stopped or 'stopped'} before this case"
    if not isinstance(result, dict) or type(result.get("ok")) is not bool:
        return "the worker returned something unreadable"
    if not result["ok"]:
        if "missing" in result:
            return f"no definition of `{_text(result['missing'], 80)}` found in your submission"
        err = result.get("error")
        err = err if isinstance(err, dict) else {}
        if err.get("type") == "NotImplementedError":
            return "not implemented yet (your code raises NotImplementedError)"
        at = f" (at {err['at']})" if isinstance(err.get("at"), str) else ""
        return _text(f"raised {err.get('type', 'an error')}{at}: {err.get('message', '')}")
    try:
        case.check({k: unwrap(v) for k, v in result.items()})
    except Mismatch as exc:
        return str(exc)
    except Exception as exc:  # malformed data from a tampered worker is a failure, not a crash
        return f"the result could not be checked ({type(exc).__name__}: {exc})"
    return None


def grade_exercise(exercise: Exercise, sub: Submission, seed: int | None = None) -> ExerciseResult:
    start = time.monotonic()
    gen = torch.Generator().manual_seed(seed if seed is not None else secrets.randbits(62))
    cases = exercise.build(gen)
    scale = exercise.points / sum(c.points for c in cases)

    if exercise.symbol not in sub.defined:
        message = f"no definition of `{exercise.symbol}` found in your submission"
        return ExerciseResult(exercise, _zero(exercise, cases, message), seconds=0.0)
    banned = _forbidden_uses(sub, exercise.forbidden)
    if banned:
        return ExerciseResult(exercise, _zero(exercise, cases, banned[0]), notes=banned)

    outcome = run_job(given_chunks(exercise) + sub.chunks, [c.call for c in cases],
                      timeout_s=exercise.timeout_s or DEFAULT_TIMEOUT_S,
                      forbidden=list(exercise.forbidden))
    results = []
    for i, (case, result) in enumerate(zip(cases, outcome.results, strict=True)):
        message = _judge(case, result, outcome, i)
        points = case.points * scale
        results.append(CaseResult(case.name, message is None, points if message is None else 0.0,
                                  points, message or ""))
    notes = [_text(f"{e.get('where')} raised {e.get('type')}: {e.get('message')}")
             for e in outcome.load_errors if isinstance(e, dict)]
    if outcome.stopped and outcome.stopped_at is None:
        notes.append(f"your code {outcome.stopped} while loading")
    if note := given_note(exercise):
        notes.append(note)
    return ExerciseResult(exercise, results, notes=notes, seconds=time.monotonic() - start)


def owner(subs: list[Submission], exercise: Exercise) -> Submission:
    """The file of a submission that holds ``exercise``: the notebook of its week, else the
    file defining its symbol (a week-6 notebook also defines week 3's SwiGLU, given)."""
    tests = (
        lambda s: exercise.week in s.weeks and exercise.symbol in s.defined,
        lambda s: exercise.week in s.weeks,
        lambda s: not s.weeks and exercise.symbol in s.defined,
        lambda s: exercise.symbol in s.defined,
    )
    for test in tests:
        found = next((s for s in subs if test(s)), None)
        if found:
            return found
    return subs[0] if subs else Submission(path=None)  # type: ignore[arg-type]


def grade_submission(
    subs: list[Submission],
    exercises: list[Exercise],
    seed: int | None = None,
    parallel: int = 2,
) -> list[ExerciseResult]:
    """Grade each exercise against the file of the submission that defines it."""
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        return list(pool.map(lambda e: safe_grade(e, owner(subs, e), seed), exercises))


def safe_grade(exercise: Exercise, sub: Submission, seed: int | None = None) -> ExerciseResult:
    """``grade_exercise``, but a failure of the grading itself zeroes this exercise only."""
    try:
        return grade_exercise(exercise, sub, seed)
    except Exception as exc:
        gen = torch.Generator().manual_seed(0)
        cases = exercise.build(gen)
        message = f"could not be graded ({type(exc).__name__}: {_text(exc, 200)})"
        return ExerciseResult(exercise, _zero(exercise, cases, message), notes=[message])
