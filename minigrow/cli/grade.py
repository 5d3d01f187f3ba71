"""``python -m minigrow grade``: coursework exercises and their grader (minigrow.coursework).

    python -m minigrow grade --list                 the exercises
    python -m minigrow grade --new dense            write the stub dense.py (formula + TODOs) here
    python -m minigrow grade dense.py [more.py …]   grade: a verdict per file, the first thing to look at

Exit status: 0 every file passes, 1 some answer is wrong (the grading ran), 2 bad input (no such file, no
EXERCISE name, an existing file that --new would overwrite).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..coursework import EXERCISES, grade_file, stub_path


def register(sub):
    p = sub.add_parser("grade", help="coursework: write exercise stubs and grade your answers",
                       description="Grade coursework files (gradient checks, the layer contract, comparison with "
                                   "minigrow's own layers on hidden inputs), or write a stub to start from.")
    p.add_argument("files", nargs="*", metavar="FILE", help="your answer files (each sets EXERCISE = '…')")
    p.add_argument("--list", action="store_true", help="list the exercises")
    p.add_argument("--new", metavar="NAME", choices=sorted(EXERCISES), help="write the stub NAME.py here")
    p.add_argument("--out", default=".", help="folder for --new (default: the current folder)")
    p.set_defaults(func=run)


def run(args):
    if args.list:
        for name, ex in EXERCISES.items():
            print(f"{name:<11} {ex.what}")
        return 0
    if args.new:
        dest = Path(args.out) / f"{args.new}.py"
        if dest.exists():
            raise ValueError(f"{dest} exists already; remove it or choose another --out")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stub_path(args.new), dest)
        print(f"wrote {dest}: fill in the TODOs, then  python -m minigrow grade {dest}")
        return 0
    if not args.files:
        raise ValueError("grade: give FILE(s) to grade, --list or --new NAME")
    status = 0
    for f in args.files:
        result = grade_file(f)
        print(f"{f}: {result}")
        status = status if result.passed else 1
    return status
