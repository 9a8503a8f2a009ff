"""Evaluation: a checkpoint's accuracy on a split (evaluate.py), the report of a run and the results table in the
paper's layout (report.py, paper.py), and sweeps over seeds, thread counts, sizes and methods (sweep.py)."""
