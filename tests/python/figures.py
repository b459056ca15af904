"""FOOTPRINT_FIGURES=FILE: the accuracy tests append each estimate they hold to a real run, one
line a run, so that two builds' figures can be compared line by line (`diff`): a change that
moves no number, as the planner's did (issue 34), shows no difference. Unset: nothing is written.
"""
import os


def record(key, *numbers):
    path = os.environ.get("FOOTPRINT_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(" ".join([key.replace(" ", "_"), *(str(n) for n in numbers)]) + "\n")
