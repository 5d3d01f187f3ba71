"""Coursework: exercises in the CS231n manner and a grader.

``python -m minigrow grade --list`` lists the exercises, ``python -m minigrow grade --new dense`` writes the stub
``dense.py`` (the formula and TODOs) into the current folder, and ``python -m minigrow grade dense.py`` grades it:
the gradient checker's diagnoses (:func:`minigrow.gradcheck.check_layer`), gradient checks on hidden random
inputs, the layer contract (grads overwritten, eval mode updates nothing, no mutated input), and a comparison
with minigrow's own implementation; then one verdict per exercise with the first thing to look at.
"""
from .grader import EXERCISES, GradeResult, grade_file, stub_path

__all__ = ["EXERCISES", "GradeResult", "grade_file", "stub_path"]
