"""``python -m autograder``: the grading command (the ``autograder`` console script is the same)."""

import sys


def run() -> int:
    try:
        from autograder.cli import main
    except ModuleNotFoundError as exc:  # e.g. the system Python, without torch
        print(f"error: this Python ({sys.executable}) cannot run the grader ({exc}). Use the "
              "course's own environment, made by `make lab`: `.venv/bin/autograder grade PATH` "
              "from the course folder, or `source .venv/bin/activate` first.", file=sys.stderr)
        return 2
    return main()


if __name__ == "__main__":
    raise SystemExit(run())
