"""Submissions that try to cheat the grader earn nothing they did not deserve.

Every attack in ``catalogue_attacks.ATTACKS`` is wrong code plus a trick. Each test grades it
in the usual isolated worker and asserts (1) it scores no more than its baseline (the same
wrong code without the trick, a stub, or zero), and its feedback says what happened where
``PHRASES`` says so, (2) a correct companion exercise in the same file still gets full marks,
(3) for attacks that could leave something behind, a correct learner graded right afterwards
in this process still gets full marks. ``CORRECT_BUT_STOPPED`` is correct code that exits,
hangs, crashes, runs out of memory or tampers with a result: it scores zero, and the one line
that says why reaches the table, the feedback, the JSON, Gradescope and the gradebook.

A test marked ``xfail(strict=True)`` is an attack that currently SUCCEEDS: a hole in the
grader, described in its reason.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder.classroom import Learner, problems
from autograder.grading import ExerciseResult, grade_submission
from autograder.registry import BY_NAME
from autograder.report import as_gradescope, as_json, feedback, stop_line, table
from autograder.sandbox import active_level
from autograder.submission import read_submission
from solutions import feedforward, normalization
from tests.grader.catalogue_attacks import (
    ATTACKS,
    BASELINES,
    CORRECT_BUT_STOPPED,
    CORRECT_WITH_TRICKS,
    NEEDS_STRICT,
    PHRASES,
    SKIPPED,
)
from tests.grader.catalogue_week3 import HEADER

ROOT = Path(__file__).resolve().parents[2]
SEED = 1234  # the `grade` fixture's seed too: baselines and attacks see the same inputs
REFERENCE = {"rmsnorm": HEADER + inspect.getsource(normalization),
             "swiglu": HEADER + inspect.getsource(feedforward)}

# hangs get a short wall-clock limit
TIMEOUTS = {"infinite_loop_at_import": 5, "infinite_loop_in_forward": 5,
            "correct_then_hangs_at_import": 5, "correct_twice_then_hangs": 5}

# attacks that could leave something behind: grade a correct learner right after them
VICTIM_AFTER = {
    "patch_torch_comparisons_at_import", "global_state_makes_wrong_look_right",
    "forged_results_then_exit", "forged_results_atexit_and_del", "deletes_and_corrupts_workdir",
    "floods_stdout_and_stderr", "allocate_50_gb", "forged_load_errors_malformed",
}

# graded by their own tests (placeholders to fill, processes to watch, or the CLI), below
# and in test_isolation.py
SPECIAL = {"probe_what_the_worker_can_see", "sleeping_children_left_behind",
           "setsid_daemon_outlives_the_job", "prints_passed", "error_message_forges_report",
           "probe_the_machine", "fork_bomb", "kills_the_grader_and_server",
           "tampers_with_other_jobs"}

# attacks that currently succeed: name -> the hole
# attacks that once succeeded; each is fixed and kept here as a regression test
HOLES: dict[str, str] = {}


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie is dead


def _kill(pids: list[int]) -> None:
    for pid in pids:  # only processes this test's attack started (their pids were recorded)
        if _pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def grade_all(tmp_path: Path, code: str, exercises: list[str],
              timeout_s: float | None = None) -> dict[str, ExerciseResult]:
    """Grade one .py file for several exercises at once, as the CLI does."""
    path = tmp_path / "attack_submission.py"
    path.write_text(code, encoding="utf-8")
    chosen = [BY_NAME[e] if timeout_s is None else dataclasses.replace(BY_NAME[e],
              timeout_s=timeout_s) for e in exercises]
    results = grade_submission([read_submission(path)], chosen, seed=SEED, parallel=2)
    return {r.exercise.name: r for r in results}


def failures(result: ExerciseResult) -> list[tuple[str, str]]:
    return [(c.name, c.message) for c in result.failures]


@pytest.fixture(scope="module")
def baseline_scores(tmp_path_factory) -> dict[str, float]:
    """What each baseline earns, graded once with the attacks' seed."""
    graded = {k: v for k, v in BASELINES.items() if v[1] is not None}

    def one(key: str) -> tuple[str, float]:
        exercise, code, _ = graded[key]
        result = grade_all(tmp_path_factory.mktemp(key), code, [exercise])[exercise]
        return key, result.score

    with ThreadPoolExecutor(max_workers=2) as pool:
        scores = dict(pool.map(one, graded))
    scores["nothing"] = 0.0
    return scores


def assert_within_bar(result: ExerciseResult, bar: str, baseline_scores: dict) -> None:
    if bar.startswith("fails:"):
        phrase = bar.split(":", 1)[1]
        lost = [c for c in result.failures if phrase in c.name]
        assert lost, f"should fail the {phrase!r} case: {failures(result)}"
        assert result.score < result.max_score
        return
    limit = baseline_scores[bar]
    assert result.score <= limit + 1e-9, (
        f"earned {result.score}, more than {BASELINES[bar][2]} ({limit}): {failures(result)}")


def assert_full_marks(result: ExerciseResult) -> None:
    assert result.score == result.max_score, failures(result)


def assert_victim_full_marks(grade, exercise: str = "rmsnorm", code: str | None = None) -> None:
    """A correct learner graded next, in the same process, is not disturbed."""
    assert_full_marks(grade(code or REFERENCE[exercise], exercise))


def _params():
    params = []
    for name, (exercises, _, _) in ATTACKS.items():
        if name in SPECIAL:
            continue
        attacked = exercises if isinstance(exercises, str) else exercises[0]
        marks = [getattr(pytest.mark, attacked)]
        if name in HOLES:
            marks.append(pytest.mark.xfail(strict=True, reason=HOLES[name]))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.mark.grader
@pytest.mark.parametrize("name", _params())
def test_attack_earns_nothing(name, tmp_path, baseline_scores, grade):
    if name in NEEDS_STRICT and active_level() != "strict":
        pytest.skip(f"only an OS sandbox stops this; isolation here is {active_level()!r}")
    exercises, code, bar = ATTACKS[name]
    attacked, *companions = (exercises,) if isinstance(exercises, str) else exercises
    timeout = TIMEOUTS.get(name)
    start = time.monotonic()
    results = grade_all(tmp_path, code, [attacked, *companions], timeout_s=timeout)
    elapsed = time.monotonic() - start
    assert elapsed < (timeout or 30) + 20, f"grading took {elapsed:.0f} s"
    assert_within_bar(results[attacked], bar, baseline_scores)
    if name in PHRASES:
        result = results[attacked]
        said = " | ".join([result.stopped, *(c.message for c in result.cases)])
        assert PHRASES[name] in said, said
    for companion in companions:  # the other exercise in the same file is not disturbed
        assert_full_marks(results[companion])
    if name in VICTIM_AFTER:
        assert_victim_full_marks(grade)


def _exercises(entry) -> list[str]:
    return [entry] if isinstance(entry, str) else list(entry)


@pytest.mark.grader
@pytest.mark.parametrize("name", [pytest.param(k, marks=getattr(pytest.mark, _exercises(v[0])[0]),
                                               id=k) for k, v in CORRECT_BUT_STOPPED.items()])
def test_correct_code_that_stops_the_worker_scores_zero_and_says_why(name, tmp_path):
    """COURSE.md: "A crash, hang, memory blow-up, exit, or tampering in one exercise scores
    that exercise zero with a clear message, and the rest is graded" (even after some of its
    cases passed; the control, ``rmsnorm_correct_that_counts_its_calls``, gets full marks)."""
    exercises, code, phrases = CORRECT_BUT_STOPPED[name]
    attacked, *companions = _exercises(exercises)
    results = grade_all(tmp_path, code, [attacked, *companions], timeout_s=TIMEOUTS.get(name))
    result = results[attacked]
    assert result.score == 0, [(c.name, c.message) for c in result.cases if c.passed]
    for phrase in phrases:
        assert phrase in result.stopped, (phrase, result.stopped)
    line = stop_line(result)
    assert "\n" not in line and len(line) < 400, line
    assert all(c.message == line and not c.passed for c in result.cases)
    # one line, wherever results are shown
    assert table([result]).count(line) == 1
    assert feedback(result).endswith(f"FAILED  {line}")
    assert as_json([result])["exercises"][0]["stopped"] == line
    gradescope = as_gradescope([result])
    assert f"{attacked}: {line}" in gradescope["output"].splitlines()
    assert line in gradescope["tests"][0]["output"]
    assert f"{attacked}: {line}" in problems(Learner("carol", [], [], set()), [result])
    for companion in companions:  # the other exercise in the same file is graded
        assert_full_marks(results[companion])
        assert not results[companion].stopped


@pytest.mark.grader
@pytest.mark.rmsnorm
@pytest.mark.parametrize("name", list(SKIPPED))
def test_attack_not_applicable(name):
    pytest.skip(SKIPPED[name])


@pytest.mark.grader
@pytest.mark.parametrize("name", [pytest.param(k, marks=getattr(pytest.mark, v[0]), id=k)
                                  for k, v in CORRECT_WITH_TRICKS.items()])
def test_correct_code_that_flips_global_state_gets_full_marks(grade, name):
    exercise, code = CORRECT_WITH_TRICKS[name]
    assert_full_marks(grade(code, exercise))


@pytest.mark.grader
@pytest.mark.rmsnorm
def test_worker_cannot_import_the_answer_key(grade, baseline_scores):
    """Neither ``solutions`` nor the graders can be imported from the worker. Reading
    ``solutions/normalization.py`` by an absolute path (the worker's own path, ``sys.argv[0]``,
    gives the checkout away) is stopped only by the strict isolation: there the worker sees
    no checkout at all."""
    exercises, code, bar = ATTACKS["probe_what_the_worker_can_see"]
    result = grade(code, exercises)
    probe = next((n for n in result.notes if "PROBE" in n), "")
    assert "importable=[]" in probe, probe
    assert "on_path=[]" in probe, probe
    # under "user" it depends on the files' modes (nobody may read the checkout or not)
    readable = {"strict": "False", "basic": "True"}.get(active_level(), "(True|False)")
    assert re.search(rf"abspath_readable={readable}", probe), probe
    assert_within_bar(result, bar, baseline_scores)


def named(name: str) -> list[int]:
    """Live processes (as this process sees them) whose name is ``name``."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_text().strip() == name:
                pids.append(int(entry))
        except OSError:
            continue
    return [p for p in pids if _pid_alive(p)]


def wait_until_gone(name: str, seconds: float = 3.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while named(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    return named(name)


@pytest.mark.grader
@pytest.mark.rmsnorm
def test_children_left_behind_are_killed_with_the_worker(grade, baseline_scores):
    exercises, code, bar = ATTACKS["sleeping_children_left_behind"]
    name = f"ag{uuid.uuid4().hex[:10]}"
    try:
        start = time.monotonic()
        result = grade(code.replace("{{NAME}}", name), exercises)
        assert time.monotonic() - start < 30, "the grader waited for the children"
        assert any("SLEEPERS started" in n for n in result.notes), result.notes
        assert not wait_until_gone(name), "children survived the worker"
        assert_within_bar(result, bar, baseline_scores)
    finally:
        _kill(named(name))


@pytest.mark.grader
@pytest.mark.rmsnorm
def test_setsid_daemon_cannot_outlive_the_job(grade, baseline_scores):
    exercises, code, bar = ATTACKS["setsid_daemon_outlives_the_job"]
    name = f"ag{uuid.uuid4().hex[:10]}"
    token = f"victim-{uuid.uuid4().hex}"  # the daemon only touches a job holding this token
    code = code.replace("{{NAME}}", name).replace("{{TOKEN}}", token)
    try:
        result = grade(code, exercises)
        assert any("DAEMON started" in n for n in result.notes), result.notes
        assert_within_bar(result, bar, baseline_scores)
        # a correct learner graded next is not disturbed
        assert_victim_full_marks(grade, code=REFERENCE["rmsnorm"] + f"\n# {token}\n")
        assert not wait_until_gone(name), "a process of the attack outlived it"
    finally:
        _kill(named(name))


def run_cli(tmp_path: Path, code: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    path = tmp_path / "cli_submission.py"
    path.write_text(code, encoding="utf-8")
    out, gradescope = tmp_path / "out.json", tmp_path / "gradescope.json"
    proc = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", str(path), "--seed", str(SEED),
         "--parallel", "2", "--json", str(out), "--gradescope", str(gradescope)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    data = json.loads(out.read_text()) if out.exists() else None
    if data is not None:
        data["gradescope"] = json.loads(gradescope.read_text())
    return proc, data


def _scores(data: dict) -> dict[str, float]:
    return {e["name"]: e["score"] for e in data["exercises"]}


@pytest.mark.grader
@pytest.mark.rmsnorm
def test_cli_printed_verdicts_do_not_count(tmp_path, baseline_scores):
    exercises, code, bar = ATTACKS["prints_passed"]
    proc, data = run_cli(tmp_path, code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert data is not None
    assert _scores(data)["rmsnorm"] <= baseline_scores[bar]
    assert data["score"] == data["gradescope"]["score"] == sum(_scores(data).values())
    # the learner's output stays in the worker: it is not part of the report
    assert "All tests passed" not in proc.stdout and "points, all tests" not in proc.stdout


@pytest.mark.grader
@pytest.mark.rmsnorm
@pytest.mark.swiglu
def test_cli_survives_a_forged_result_file(tmp_path, baseline_scores):
    exercises, code, bar = ATTACKS["forged_result_ok_is_a_tensor"]
    proc, data = run_cli(tmp_path, code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert data is not None
    assert _scores(data)["rmsnorm"] <= baseline_scores[bar]
    assert _scores(data)["swiglu"] == 10


@pytest.mark.grader
@pytest.mark.rmsnorm
def test_cli_report_cannot_be_forged_by_an_error_message(tmp_path, baseline_scores):
    exercises, code, bar = ATTACKS["error_message_forges_report"]
    proc, data = run_cli(tmp_path, code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert data is not None
    assert _scores(data)["rmsnorm"] <= baseline_scores[bar]  # the numbers are right...
    totals = [line for line in proc.stdout.splitlines() if re.match(r"\s*total\s", line)]
    headers = [line for line in proc.stdout.splitlines() if line.startswith("rmsnorm:")]
    assert len(totals) == 1 and len(headers) == 1, totals + headers  # ...and so is the text
    feedback = data["gradescope"]["tests"][0]["output"]
    assert all(line.startswith(("ok  ", "FAILED  ", "note: ")) for line in feedback.splitlines())


@pytest.mark.grader
@pytest.mark.rmsnorm
def test_hidden_inputs_are_fresh_without_a_seed(tmp_path, monkeypatch):
    """The attacks are graded with seed 1234; for real, each run draws a secret seed, so
    ``torch.manual_seed`` in a learner's code cannot make the hidden inputs predictable."""
    import autograder.grading as grading
    from autograder.sandbox import JobOutcome

    sent = []

    def fake_run_job(chunks, calls, **kwargs):  # no worker: only look at what would be sent
        sent.append([t for c in calls for t in c.get("inputs", [])])
        return JobOutcome(results=[None] * len(calls), stopped="not run")

    monkeypatch.setattr(grading, "run_job", fake_run_job)
    path = tmp_path / "reference.py"
    path.write_text(REFERENCE["rmsnorm"], encoding="utf-8")
    for _ in range(2):
        grading.grade_exercise(BY_NAME["rmsnorm"], read_submission(path))
    first, second = sent
    assert len(first) == len(second) > 3
    random = [(a, b) for a, b in zip(first, second, strict=True) if a.abs().sum() > 0]
    assert random and not any(a.equal(b) for a, b in random)


@pytest.mark.grader
def test_catalogue_is_large_enough():
    assert len(ATTACKS) >= 22
    for _exercises, code, bar in ATTACKS.values():
        assert bar in BASELINES or bar.startswith("fails:")
        compile(code, "attack", "exec")
