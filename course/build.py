"""Build the course notebooks from their text sources, and what the registry generates.

    python course/build.py            # write course/source/, course/release/ and GENERATED
    python course/build.py --check    # exit 1 if any of them is stale

``course/notebooks/weekN_<name>.py`` (jupytext "percent" text, easy to diff and review) is the
one place a notebook is written; its week and name are the registry's (autograder/registry.py).
Cells carry a ``role``:

- ``role="locked"``: read-only code (set-up, demos, measurements); with
  ``code="solutions.positions:rotate_half"`` it starts with that reference code, given as is;
- ``role="answer" exercise="rmsnorm"``: the learner's cell; its code is the exercise's reference
  (from the registry) with nbgrader's solution markers around each body, so the answer key
  exists once, in ``solutions/``;
- ``role="test" exercise="rmsnorm"``: visible checks, plus a hidden part that calls the
  isolated autograder; its points are the exercise's.

The build writes ``course/source/weekN/<name>.ipynb`` (nbgrader's instructor version, with
solutions, no outputs) and runs ``nbgrader generate_assignment`` to make
``course/release/weekN/<name>.ipynb``, the version learners open. From the registry it also
writes the week tables of README.md and site/index.md, the weeks of mkdocs.yml's nav, the
instructor guide's table of refused library calls and the imports of solutions/__init__.py
(``GENERATED``).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import jupytext
import nbformat

from autograder import registry
from autograder.reference import Spec

COURSE = Path(__file__).resolve().parent
REPO = COURSE.parent
HIDDEN = '''### BEGIN HIDDEN TESTS
from autograder.nbgrader_hook import check

check("{exercise}", "{notebook}")
### END HIDDEN TESTS'''


def nbgrader_meta(role: str, grade_id: str, points: int | None = None) -> dict:
    meta = {"grade": role == "test", "grade_id": grade_id, "locked": role != "answer",
            "schema_version": 3, "solution": role == "answer", "task": False}
    if points is not None:
        meta["points"] = points
    return meta


class BuildError(ValueError):
    """A notebook that does not match the registry."""


def points_value(points: float) -> int | float:
    return int(points) if float(points).is_integer() else points


def build_source(text_path: Path, week: registry.Week) -> nbformat.NotebookNode:
    """Turn week ``week``'s text notebook into nbgrader's source notebook."""
    nb = jupytext.read(text_path)
    locked = 0
    answered, tested = [], []
    for cell in nb.cells:
        meta = cell.metadata
        role = meta.pop("role", None)
        if cell.cell_type != "code":
            cell.metadata = {}
            continue
        if role in ("answer", "test"):
            exercise = registry.BY_NAME.get(meta.pop("exercise", None))
            if exercise is None or exercise.week != week.number:
                raise BuildError(f"{text_path.name}: a {role} cell names no exercise of week "
                                 f"{week.number} in autograder/registry.py")
            stale = {"solution", "points"} & set(meta)
            if stale:
                raise BuildError(f"{text_path.name}: {exercise.name}'s {role} cell sets "
                                 f"{sorted(stale)}: the registry holds them; drop them here")
        if role == "answer":
            cell.source = Spec.parse(exercise.reference).code(markers=True)
            meta["nbgrader"] = nbgrader_meta(role, exercise.name)
            answered.append(exercise.name)
        elif role == "test":
            hidden = HIDDEN.format(exercise=exercise.name, notebook=f"{week.notebook}.ipynb")
            cell.source = f"{cell.source.rstrip()}\n\n{hidden}"
            meta["nbgrader"] = nbgrader_meta(role, f"test_{exercise.name}",
                                             points_value(exercise.points))
            tested.append(exercise.name)
        elif role == "locked":
            if "code" in meta:  # given code, copied from the reference so it exists once
                given = Spec.parse(meta.pop("code")).code()
                cell.source = f"{given}\n\n\n{cell.source}".strip() + "\n"
            locked += 1
            meta["nbgrader"] = nbgrader_meta(role, f"locked_{locked}")
        else:
            raise BuildError(f"{text_path.name}: every code cell needs a role; got {role!r}")
        cell.outputs, cell.execution_count = [], None
    expected = [e.name for e in registry.exercises_of(week.number)]
    for role, found in (("answer", answered), ("test", tested)):
        if sorted(found) != sorted(expected):
            raise BuildError(f"{text_path.name}: {role} cells for {found}, but the registry's "
                             f"week {week.number} has {expected} (one {role} cell each)")
    nb.metadata = {
        "course": {"week": week.number},
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                       "name": "python3"},
        "language_info": {"name": "python"},
    }
    return nb


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    """One canonical layout (sorted keys, one-space indent, no ids) so diffs stay small."""
    for cell in nb.cells:
        cell.pop("id", None)
    nb.nbformat, nb.nbformat_minor = 4, 4
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")


def venv_env() -> dict[str, str]:
    """nbgrader runs ``alembic`` from PATH: put this interpreter's scripts folder first."""
    scripts = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": scripts + os.pathsep + os.environ.get("PATH", "")}


def text_notebooks(root: Path, week: int | None = None) -> list[tuple[Path, registry.Week]]:
    """Each week's text notebook under ``root/notebooks``; a file the registry does not
    name is an error (a typo would otherwise leave a week unbuilt)."""
    weeks = [w for w in registry.WEEKS if week in (None, w.number)]
    named = {w.text_notebook for w in registry.WEEKS}
    strays = sorted(p.name for p in (root / "notebooks").glob("week*.py") if p.name not in named)
    if strays:
        raise BuildError(f"notebooks that autograder/registry.py does not name: {strays} "
                         f"(it names {sorted(named)})")
    missing = [w.text_notebook for w in weeks
               if not (root / "notebooks" / w.text_notebook).exists()]
    if missing:
        raise BuildError(f"notebooks named in autograder/registry.py but not written: {missing}")
    return [(root / "notebooks" / w.text_notebook, w) for w in weeks]


def build(root: Path, week: int | None = None) -> list[Path]:
    """Build the notebooks under ``root`` (``course/`` or a copy); return the files written."""
    written = []
    built_weeks = []
    for text_path, wk in text_notebooks(root, week):
        target = root / "source" / wk.notebook_file
        write_notebook(build_source(text_path, wk), target)
        written.append(target)
        built_weeks.append(wk.folder)
    release(root, built_weeks)
    for week_dir in built_weeks:
        for released in sorted((root / "release" / week_dir).glob("*.ipynb")):
            write_notebook(nbformat.read(released, as_version=4), released)
            written.append(released)
    return written


# nbgrader's generate_assignment for each week, all in one process: nbgrader's imports cost
# seconds of CPU, several times what converting one week's notebook does
GENERATE = """
import sys
from nbgrader.apps.generateassignmentapp import GenerateAssignmentApp

root, db, *weeks = sys.argv[1:]
for week in weeks:
    app = GenerateAssignmentApp()
    app.initialize([week, "--force", "--log-level=WARN", f"--CourseDirectory.root={root}",
                    # the shipped release/, not nbgrader's own generated/ (nbgrader_config.py)
                    "--CourseDirectory.release_directory=release",
                    f"--CourseDirectory.db_url=sqlite:///{db}"])
    app.start()  # exits with status 1 when a week fails
"""


def release(root: Path, week_dirs: list[str]) -> None:
    """nbgrader's learner version of each week (``generate_assignment``)."""
    if not week_dirs:
        return
    with tempfile.TemporaryDirectory() as tmp:  # a throwaway gradebook: builds never share
        subprocess.run([sys.executable, "-c", GENERATE, str(root),
                        str(Path(tmp) / "gradebook.db"), *week_dirs],
                       cwd=root, check=True, env=venv_env())


# --- what the registry generates outside the notebooks ------------------------------------


def exercise_names(week: int) -> str:
    return ", ".join(f"`{e.symbol}`" for e in registry.exercises_of(week))


def extra_pages(week: registry.Week) -> list[str]:
    """A week's site pages besides its lesson, notebook and quiz (week 7's speed.md)."""
    folder = REPO / "site" / "weeks" / week.folder
    return sorted(p.stem for p in folder.glob("*.md") if p.stem not in ("lesson", "quiz"))


def readme_weeks() -> str:
    rows = [f"| {w.number} | {w.topics} | {exercise_names(w.number)} |" for w in registry.WEEKS]
    return "\n".join(["| week | topic | you implement |", "|---|---|---|", *rows])


def site_weeks() -> str:
    rows = []
    for w in registry.WEEKS:
        pages = ["lesson", "notebook", "quiz", *extra_pages(w)]
        links = " · ".join(
            f"[{p}](weeks/{w.folder}/{p}.{'ipynb' if p == 'notebook' else 'md'})" for p in pages)
        rows.append(f"| {w.number} | {w.topics} | {exercise_names(w.number)} | {links} |")
    return "\n".join(["| Week | Topic | You implement | Pages |", "|---|---|---|---|", *rows])


def nav_weeks() -> str:
    lines = []
    for w in registry.WEEKS:
        lines.append(f"  - {json.dumps(f'Week {w.number}: {w.title}')}:")
        pages = [("Lesson", "lesson.md"), ("Notebook", "notebook.ipynb"), ("Quiz", "quiz.md")]
        pages += [(p.capitalize(), f"{p}.md") for p in extra_pages(w)]
        lines += [f"      - {title}: weeks/{w.folder}/{page}" for title, page in pages]
    return "\n".join(lines)


def refused_names(forbidden: dict[str, str]) -> str:
    """The refused calls as the instructor guide shows them: each name once, by package."""
    packages: dict[str, list[str]] = {}
    for path in forbidden:
        names = packages.setdefault(path.split(".")[0], [])
        name = path.rsplit(".", 1)[-1]
        if name not in names:
            names.append(name)
    return "; ".join(f"`{package}`'{'' if package.endswith('s') else 's'} "
                     + ", ".join(f"`{n}`" for n in names) for package, names in packages.items())


def refused_table() -> str:
    """site/instructors.md's table of refused calls: one row per exercise, or per run of
    exercises of one week that refuse and allow the same."""
    rows: list[list] = []
    for e in registry.EXERCISES:
        last = rows[-1] if rows else None
        if last and last[0] == e.week and last[2] == e.forbidden and last[3] == e.allowed:
            last[1].append(e.symbol)
        else:
            rows.append([e.week, [e.symbol], e.forbidden, e.allowed])
    lines = ["| week | exercise | refused | still allowed |", "|---|---|---|---|"]
    for week, symbols, forbidden, allowed in rows:
        refused = refused_names(forbidden) if forbidden else "nothing"
        lines.append(f"| {week} | {', '.join(f'`{s}`' for s in symbols)} | {refused} | "
                     f"{allowed} |")
    return "\n".join(lines)


def _member_order(name: str) -> tuple:
    """isort's (and ruff's) order inside one import: constants, classes, then the rest."""
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name.lower(), name


def solutions_init() -> str:
    """solutions/__init__.py: every name of every exercise's reference, and ALSO_EXPORTED."""
    by_week: dict[int, list[Spec]] = {}
    for e in registry.EXERCISES:
        by_week.setdefault(e.week, []).append(Spec.parse(e.reference))
    for week, texts in registry.ALSO_EXPORTED.items():
        by_week.setdefault(week, []).extend(Spec.parse(s) for s in texts)
    modules: dict[str, list[str]] = {}
    for spec in (spec for week in sorted(by_week) for spec in by_week[week]):
        names = modules.setdefault(spec.module, [])
        names += [s for s in spec.symbols if s not in names]
    imports = []
    for module in sorted(modules):
        names = sorted(modules[module], key=_member_order)
        line = f"from {module} import {', '.join(names)}"
        if len(line) > 100:
            line = f"from {module} import (\n" + "".join(f"    {n},\n" for n in names) + ")"
        imports.append(line)
    groups = []
    for week in sorted(by_week):
        names = list(dict.fromkeys(s for spec in by_week[week] for s in spec.symbols))
        groups.append(f"    # week {week}\n" + wrap(", ".join(f'"{n}"' for n in names), "    "))
    return (
        '"""Reference solutions: the answer key of the course, one module per topic.\n\n'
        "Every name of the exercise contract is importable from here: "
        "``from solutions import RMSNorm``.\n"
        "Written by ``python course/build.py`` from autograder/registry.py (each exercise's\n"
        'reference and ``ALSO_EXPORTED``): change those, not this file.\n"""\n\n'
        + "\n".join(imports) + "\n\n__all__ = [\n" + "\n".join(groups) + "\n]\n"
    )


def wrap(text: str, indent: str, width: int = 100) -> str:
    """Comma-separated items on lines of at most ``width`` characters, each line ending
    with a comma."""
    lines, line = [], indent
    for item in text.split(", "):
        if line.strip() and len(line) + len(item) + 2 > width:
            lines.append(line.rstrip())
            line = indent
        line += item + ", "
    lines.append(line.rstrip())
    return "\n".join(lines)


def between(begin: str, end: str, make: Callable[[], str]) -> Callable[[str], str]:
    """Replace what lies between the lines ``begin`` and ``end`` of a file's text."""

    def replace(text: str) -> str:
        pattern = re.compile(rf"(^{re.escape(begin)}\n).*?(^{re.escape(end)}$)", re.S | re.M)
        if not pattern.search(text):
            raise BuildError(f"the markers {begin!r} ... {end!r} are missing")
        return pattern.sub(lambda m: m[1] + make() + "\n" + m[2], text, count=1)

    return replace


TABLE_BEGIN = "<!-- the weeks: written by course/build.py from autograder/registry.py -->"
TABLE_END = "<!-- end of the weeks -->"
GENERATED: dict[str, Callable[[str], str]] = {
    # blank lines around a table: markdown would read it as part of the comment's HTML block
    "README.md": between(TABLE_BEGIN, TABLE_END, lambda: f"\n{readme_weeks()}\n"),
    "site/index.md": between(TABLE_BEGIN, TABLE_END, lambda: f"\n{site_weeks()}\n"),
    "mkdocs.yml": between("  # the weeks: written by course/build.py from autograder/registry.py",
                          "  # end of the weeks", nav_weeks),
    "site/instructors.md": between(
        "<!-- the refused calls: written by course/build.py from autograder/registry.py -->",
        "<!-- end of the refused calls -->", lambda: f"\n{refused_table()}\n"),
    "solutions/__init__.py": lambda text: solutions_init(),
}
"""Files (relative to the repository) that the build rewrites from the registry."""


def generated() -> dict[Path, tuple[str, str]]:
    """Each generated file: (its text now, what the registry makes of it)."""
    out = {}
    for name, make in GENERATED.items():
        path = REPO / name
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        out[path] = (old, make(old))
    return out


def write_generated() -> list[Path]:
    written = []
    for path, (old, new) in generated().items():
        if new != old:
            path.write_text(new, encoding="utf-8")
            written.append(path)
    return written


def show_diff(old: str, new: str) -> None:
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), "committed", "rebuilt",
                                lineterm="", n=1)
    print("\n".join(list(diff)[:40]))


def check() -> int:
    """Rebuild into a temporary copy and compare with the committed notebooks and files."""
    stale = []
    for path, (old, new) in generated().items():
        if old != new:
            stale.append(str(path.relative_to(REPO)))
            show_diff(old, new)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "course"
        shutil.copytree(COURSE / "notebooks", copy / "notebooks")
        shutil.copy(COURSE / "nbgrader_config.py", copy / "nbgrader_config.py")
        built = build(copy)
        expected = {COURSE / b.relative_to(copy) for b in built}
        for kind in ("source", "release"):
            stale += [str(p.relative_to(REPO)) + " (not built from any notebook)"
                      for p in sorted((COURSE / kind).glob("week*/*.ipynb")) if p not in expected]
        for path in built:
            committed = COURSE / path.relative_to(copy)
            old = committed.read_text(encoding="utf-8") if committed.exists() else ""
            new = path.read_text(encoding="utf-8")
            if old != new:
                stale.append(str(committed.relative_to(REPO)))
                show_diff(old, new)
    if stale:
        print("stale (run `python course/build.py`):", *stale, sep="\n  ")
        return 1
    print("notebooks and generated files are up to date")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    parser.add_argument("--week", type=int, help="build only this week's notebooks")
    args = parser.parse_args()
    if args.check:
        return check()
    for path in write_generated():
        print(f"wrote {path.relative_to(REPO)}")
    build(COURSE, args.week)
    return 0


if __name__ == "__main__":
    sys.exit(main())
