"""Grade a submission exercise by exercise: learner code in a worker, verdicts here."""

from __future__ import annotations

import ast
import fnmatch
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from autograder.compare import Mismatch, unwrap
from autograder.reference import Spec, given_code
from autograder.registry import Exercise
from autograder.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, JobOutcome, run_job
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
    # the grader's own code failed on a well-formed result: a bug to report, not the learner's
    internal_error: bool = False


@dataclass
class ExerciseResult:
    exercise: Exercise
    cases: list[CaseResult]
    notes: list[str] = field(default_factory=list)  # about the submission as a whole
    seconds: float = 0.0
    # what stopped the worker abnormally (an exit, a hang, a crash, running out of memory)
    # or showed it was tampered with, in one line; every case then scores zero
    stopped: str = ""

    @property
    def score(self) -> float:
        return round(sum(c.points for c in self.cases), 2)

    @property
    def max_score(self) -> float:
        return self.exercise.points

    @property
    def failures(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.passed]

    @property
    def internal_errors(self) -> list[CaseResult]:
        return [c for c in self.cases if c.internal_error]


def timeout_of(exercise: Exercise) -> float:
    """Seconds a worker may take for ``exercise``: its own limit, else the sandbox's default
    (``AUTOGRADER_TIMEOUT``)."""
    return exercise.timeout_s or DEFAULT_TIMEOUT_S


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


def _forbidden_uses(chunks: list[dict], forbidden_paths: dict[str, str]) -> list[str]:
    """Where the source reaches a forbidden function: ``F.name``, ``import ... name``,
    ``getattr(F, "name")``, or a bare ``name`` that the submission does not define itself (a
    learner's own ``scaled_dot_product_attention`` is exactly what week 1 asks for). A path
    may end in a pattern (``transformers.*RMSNorm``: ``LlamaRMSNorm``, ``MistralRMSNorm``...);
    ``self.name`` is the learner's own attribute, never a library's."""
    forbidden = {path.rsplit(".", 1)[-1]: why for path, why in forbidden_paths.items()}
    patterns = {name: why for name, why in forbidden.items() if any(c in name for c in "*?[")}

    def why_not(name) -> str | None:
        if not isinstance(name, str) or not name.isidentifier():
            return None
        if name in forbidden:
            return forbidden[name]
        return next((why for pattern, why in patterns.items()
                     if fnmatch.fnmatchcase(name, pattern)), None)

    trees = []
    for chunk in chunks:
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
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    name = node.attr
            elif isinstance(node, ast.Name) and node.id not in own:
                name = node.id
            elif isinstance(node, ast.alias):
                name = node.name.split(".")[-1]
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and node.value not in own):
                name = node.value  # getattr(F, "scaled_dot_product_attention")
            why = why_not(name)
            if why:
                found.append(f"{label} uses `{name}`: {why}")
    return sorted(set(found))


def _zero(exercise: Exercise, cases: list[Case], message: str,
          internal: bool = False) -> list[CaseResult]:
    scale = exercise.points / sum(c.points for c in cases)
    return [CaseResult(c.name, False, 0.0, c.points * scale, message, internal) for c in cases]


INTERNAL = "internal grader error (a bug in the grader, not in your code: tell your instructor)"


class InternalError(Exception):
    """The grader's own check code failed on a well-formed result from the worker."""


def _text(value, limit: int = 300) -> str:
    """Learner-controlled text on one line, so it cannot fake rows of the report."""
    text = " ".join(str(value).split())
    text = "".join(ch for ch in text if ch.isprintable())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Tampered(Exception):
    """A result that the worker could not have written as it is: missing or malformed."""


ZEROED = "the whole exercise scores zero"


def _judge(case: Case, result) -> tuple[str | None, bool]:
    """(None if the case passed, else the message for the learner; whether the grader itself
    failed). Raises ``Tampered`` for a result that is missing or malformed; never anything
    else: the result came from the learner's process and may be forged."""
    try:
        return _judge_result(case, result), False
    except InternalError as exc:
        return f"{INTERNAL}: {_text(exc, 200)}", True
    except Tampered:
        raise
    except Exception as exc:
        raise Tampered(type(exc).__name__) from exc


def _well_formed(call: dict, result: dict) -> bool:
    """Whether ``result`` has every field the worker writes for ``call`` (whatever the
    learner's code returned in them). Only then is a failing check the grader's fault."""
    kind = call.get("kind")
    if kind == "script":
        return isinstance(result.get("output"), dict)
    if kind == "methods":
        steps = result.get("steps")
        return isinstance(steps, list) and len(steps) == len(call.get("steps", []))
    inputs = call.get("inputs") or []
    if kind == "module":
        shapes = result.get("state_shapes")
        if not isinstance(shapes, dict) or not all(
                isinstance(v, list) and all(type(i) is int for i in v) for v in shapes.values()):
            return False
        if not inputs:
            return True
    elif kind != "function":
        return False
    after = result.get("inputs_after")
    if "output" not in result or not isinstance(after, list) or len(after) != len(inputs):
        return False
    if call.get("grad_output") is not None and not result.get("no_graph"):
        grads = result.get("input_grads")
        return isinstance(grads, list) and len(grads) == len(inputs)
    return True


def _judge_result(case: Case, result) -> str | None:
    if not isinstance(result, dict) or type(result.get("ok")) is not bool:
        raise Tampered("no result" if result is None else "unreadable")
    if not result["ok"]:
        if "missing" in result:
            return f"no definition of `{_text(result['missing'], 80)}` found in your submission"
        err = result.get("error")
        if not isinstance(err, dict):
            raise Tampered("an error that is not a dict")
        if err.get("type") == "NotImplementedError":
            return "not implemented yet (your code raises NotImplementedError)"
        at = f" (at {err['at']})" if isinstance(err.get("at"), str) else ""
        return _text(f"raised {err.get('type', 'an error')}{at}: {err.get('message', '')}")
    data = {k: unwrap(v) for k, v in result.items()}
    try:
        case.check(data)
    except Mismatch as exc:
        return str(exc)
    except Exception as exc:
        if _well_formed(case.call, data):
            raise InternalError(f"{type(exc).__name__}: {exc}") from exc
        # malformed data from a tampered worker zeroes the exercise; it is not a grader bug
        raise Tampered(f"{type(exc).__name__}: {exc}") from exc
    return None


def _caught_stop(error: dict) -> str:
    """What an exit, out-of-memory error or oversized result that the worker caught
    (``error["stop"]``) did, after "your code"."""
    kind = error.get("stop")
    what = _text(error.get("type"), 60)
    message = _text(error.get("message", ""), 120)
    if kind == "exit":
        text = f"exited early with sys.exit({message})"
    elif kind == "too_large":
        text = message or "returned a result too large to check"
    elif kind == "memory":
        asked = re.search(r"tried to allocate (\d+) bytes", str(error.get("message")))
        text = f"ran out of memory (the limit is {DEFAULT_MEMORY_MB} MB"
        text += f"; it asked for {int(asked[1]) / 2**20:,.0f} MB more)" if asked else f"; {what})"
    else:
        text = f"stopped the program with {what}" + (f": {message}" if message else "")
    if isinstance(error.get("at"), str):
        text += f" (at {_text(error['at'], 120)})"
    return text


def stop_reason(outcome: JobOutcome, cases: list[Case]) -> str | None:
    """Why the worker stopped abnormally, in one line, or None: an exit or out-of-memory error
    it caught while loading or in a case, else a timeout, a kill or an early exit."""
    for error in outcome.load_errors:
        if isinstance(error, dict) and error.get("stop"):
            return f"your code {_caught_stop(error)} while loading"
    for case, result in zip(cases, outcome.results, strict=True):
        error = result.get("error") if isinstance(result, dict) else None
        if isinstance(error, dict) and error.get("stop"):
            return f"your code {_caught_stop(error)} while running case '{case.name}'"
    if not outcome.stopped:
        return None
    at = outcome.stopped_at
    if isinstance(at, int) and 0 <= at < len(cases):
        where = f"while running case '{cases[at].name}'"
    else:
        where = "while loading" if not any(outcome.results) else "while running the cases"
    return _text(f"your code {outcome.stopped} {where}")


def needed_names(exercise: Exercise, cases: list[Case]) -> set[str]:
    """The names the worker must find for ``exercise``: its symbol, what its calls build, and
    every name its grader scripts mention."""
    names = {exercise.symbol}
    for case in cases:
        if case.call.get("symbol"):
            names.add(case.call["symbol"])
        if case.call.get("kind") == "script":
            names |= {n.id for n in ast.walk(ast.parse(case.call["source"]))
                      if isinstance(n, ast.Name)}
    return names


def grade_exercise(exercise: Exercise, sub: Submission, seed: int | None = None) -> ExerciseResult:
    start = time.monotonic()
    gen = torch.Generator().manual_seed(seed if seed is not None else secrets.randbits(62))
    cases = exercise.build(gen)
    scale = exercise.points / sum(c.points for c in cases)

    if exercise.symbol not in sub.defined:
        message = f"no definition of `{exercise.symbol}` found in your submission"
        broken = sub.broken_cells(exercise.name)
        if broken:
            message += f" ({_text(broken[0], 200)})"
        return ExerciseResult(exercise, _zero(exercise, cases, message), notes=broken)
    chunks = sub.chunks_for(exercise.name, needed_names(exercise, cases))
    banned = _forbidden_uses(chunks, exercise.forbidden)
    if banned:
        return ExerciseResult(exercise, _zero(exercise, cases, banned[0]), notes=banned)

    outcome = run_job(given_chunks(exercise) + chunks, [c.call for c in cases],
                      timeout_s=timeout_of(exercise), forbidden=list(exercise.forbidden))
    stopped = stop_reason(outcome, cases)
    results = []
    for case, result in zip(cases, outcome.results, strict=True):
        if stopped:
            break
        try:
            message, internal = _judge(case, result)
        except Tampered:
            stopped = (f"the result of case '{case.name}' was missing or malformed (were the "
                       "worker's files tampered with?)")
            break
        points = case.points * scale
        results.append(CaseResult(case.name, message is None, points if message is None else 0.0,
                                  points, message or "", internal))
    if stopped:  # a crash, hang, exit, memory blow-up or tampering: nothing counts
        results = _zero(exercise, cases, f"{stopped}: {ZEROED}")
    notes = [_text(f"{e.get('where')} raised {e.get('type')}: {e.get('message')}")
             for e in outcome.load_errors if isinstance(e, dict) and not e.get("stop")]
    if note := given_note(exercise):
        notes.append(note)
    return ExerciseResult(exercise, results, notes=notes, seconds=time.monotonic() - start,
                          stopped=stopped or "")


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
    except Exception as exc:  # the learner's code never runs here: this is the grader's fault
        message = f"{INTERNAL}: could not be graded ({type(exc).__name__}: {_text(exc, 200)})"
        return zero_result(exercise, message, internal=True)


def zero_result(exercise: Exercise, message: str, internal: bool = False) -> ExerciseResult:
    """Every case of ``exercise`` at zero points, with ``message``."""
    cases = exercise.build(torch.Generator().manual_seed(0))
    return ExerciseResult(exercise, _zero(exercise, cases, message, internal), notes=[message])
