"""``autograder/registry.py`` is the one place an exercise is written down: it is consistent,
everything it points at exists, and the files generated from it are up to date."""

import importlib
import importlib.util
from pathlib import Path

import pytest

import solutions
from autograder import registry
from autograder.reference import Spec, given_code

REPO = Path(__file__).resolve().parents[1]


def load_build():
    spec = importlib.util.spec_from_file_location("course_build", REPO / "course" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load_build()


def test_weeks_and_exercises_are_consistent():
    names = [e.name for e in registry.EXERCISES]
    assert len(set(names)) == len(names), "two exercises share a name"
    assert all(n.isidentifier() for n in names), "names are pytest markers and grade ids"
    weeks = [w.number for w in registry.WEEKS]
    assert weeks == list(range(1, len(weeks) + 1)), "weeks are numbered 1, 2, 3, ..."
    assert [e.week for e in registry.EXERCISES] == sorted(e.week for e in registry.EXERCISES), (
        "EXERCISES are in course order")
    assert {e.week for e in registry.EXERCISES} == set(weeks), "every week, and only those"
    assert len({w.notebook for w in registry.WEEKS}) == len(weeks)
    assert all(e.points > 0 for e in registry.EXERCISES)


@pytest.mark.parametrize("exercise", registry.EXERCISES, ids=lambda e: e.name)
def test_what_an_exercise_points_at_exists(exercise):
    spec = Spec.parse(exercise.reference)
    assert spec.module.startswith("solutions.")
    for symbol in spec.symbols:
        spec.load(symbol)
    assert callable(exercise.build), f"{exercise.name}: no case builder {exercise.cases!r}"
    for given in exercise.given:
        assert given_code(given)
    # tests/grader/test_shortcuts.py checks that each torch path is real and refused
    assert all(path.count(".") and why for path, why in exercise.forbidden.items())
    assert exercise.allowed, f"{exercise.name}: say what stays allowed (the instructor guide)"


def test_the_grader_modules_are_the_registrys_weeks():
    """``autograder/exercises/weekN.py`` holds week N's case builders only: a list of
    exercises there would be a second registry, silently ignored."""
    modules = sorted(p.stem for p in (REPO / "autograder" / "exercises").glob("week*.py"))
    assert modules == sorted(w.folder for w in registry.WEEKS)
    for name in modules:
        module = importlib.import_module(f"autograder.exercises.{name}")
        assert not hasattr(module, "EXERCISES"), (
            f"autograder/exercises/{name}.py lists EXERCISES: move them to autograder/registry.py")


def test_solutions_exports_exactly_the_registrys_names():
    """``from solutions import X`` for every name of every exercise's reference and of
    ``ALSO_EXPORTED``, and nothing else (course/build.py writes solutions/__init__.py)."""
    specs = [Spec.parse(e.reference) for e in registry.EXERCISES]
    specs += [Spec.parse(s) for texts in registry.ALSO_EXPORTED.values() for s in texts]
    for spec in specs:
        for symbol in spec.symbols:
            assert getattr(solutions, symbol, None) is spec.load(symbol), symbol
    assert sorted(solutions.__all__) == sorted({s for spec in specs for s in spec.symbols})


@pytest.mark.parametrize("name", list(build.GENERATED))
def test_generated_files_are_up_to_date(name):
    old, new = build.generated()[REPO / name]
    assert old == new, f"{name} is stale: run `python course/build.py`"


def test_generated_tables_and_nav_follow_the_registry():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    home = (REPO / "site" / "index.md").read_text(encoding="utf-8")
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    for week in registry.WEEKS:
        symbols = ", ".join(f"`{e.symbol}`" for e in registry.exercises_of(week.number))
        assert f"| {week.number} | {week.topics} | {symbols} |" in readme
        assert f"| {week.number} | {week.topics} | {symbols} | [lesson](weeks/" in home
        assert f'  - "Week {week.number}: {week.title}":\n      - Lesson: weeks/' in nav
    assert "[speed](weeks/week7/speed.md)" in home and "Speed: weeks/week7/speed.md" in nav


def test_text_notebooks_are_the_registrys(tmp_path):
    found = build.text_notebooks(REPO / "course")
    assert [(p.name, w) for p, w in found] == [(w.text_notebook, w) for w in registry.WEEKS]
    (tmp_path / "notebooks").mkdir()
    for path, _ in found:
        (tmp_path / "notebooks" / path.name).write_text("")
    (tmp_path / "notebooks" / "week3_norms.py").write_text("")
    with pytest.raises(build.BuildError, match=r"does not name: \['week3_norms.py'\]"):
        build.text_notebooks(tmp_path)
    (tmp_path / "notebooks" / "week3_norms.py").unlink()
    (tmp_path / "notebooks" / "week2_bpe.py").unlink()
    with pytest.raises(build.BuildError, match=r"not written: \['week2_bpe.py'\]"):
        build.text_notebooks(tmp_path)


WEEK3 = registry.BY_WEEK[3]
NAMES = [e.name for e in registry.exercises_of(3)]
ANSWER = '# %% role="answer" exercise="{}"\n'
TEST = '# %% role="test" exercise="{}"\nprint("visible check")\n'
CELLS = [cell.format(name) for name in NAMES for cell in (ANSWER, TEST)]


def text_notebook(tmp_path: Path, *cells: str) -> Path:
    path = tmp_path / WEEK3.text_notebook
    path.write_text("# %% [markdown]\n# # Week 3\n\n" + "\n".join(cells), encoding="utf-8")
    return path


def test_cells_name_only_their_exercise_and_the_registry_fills_them(tmp_path):
    nb = build.build_source(text_notebook(tmp_path, *CELLS), WEEK3)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for exercise, answer, test in zip(registry.exercises_of(3), code[::2], code[1::2],
                                      strict=True):
        assert answer.source == Spec.parse(exercise.reference).code(markers=True)
        assert answer.metadata["nbgrader"]["solution"]
        grading = test.metadata["nbgrader"]
        assert grading["grade_id"] == f"test_{exercise.name}"
        assert grading["points"] == exercise.points
        assert f'check("{exercise.name}", "{WEEK3.notebook}.ipynb")' in test.source
    assert nb.metadata["course"] == {"week": 3}


OTHERS = CELLS[2:]


@pytest.mark.parametrize("cells, message", [
    ((ANSWER.format("rms_norm"), *CELLS), "names no exercise of week 3"),
    ((*CELLS, ANSWER.format("causal_mask")), "names no exercise of week 3"),
    ((ANSWER.format("rmsnorm").replace('"\n', '" solution="solutions.normalization:RMSNorm"\n'),
      *CELLS[1:]), r"sets \['solution'\]: the registry holds them"),
    ((CELLS[0], TEST.format("rmsnorm").replace('"\n', '" points=5\n', 1), *OTHERS),
     r"sets \['points'\]"),
    ((CELLS[0], *OTHERS), r"test cells for \[.*\], but the registry's week 3 has \['rmsnorm', "),
    ((*CELLS, ANSWER.format("rmsnorm")), r"answer cells for \['rmsnorm', .*'rmsnorm'\]"),
    ((*CELLS, "# %%\nx = 1\n"), "every code cell needs a role"),
])
def test_a_notebook_that_disagrees_with_the_registry_does_not_build(tmp_path, cells, message):
    with pytest.raises(build.BuildError, match=message):
        build.build_source(text_notebook(tmp_path, *cells), WEEK3)
