"""Plots and summaries of a run folder: `atlas report RUN_DIR` writes RUN_DIR/report/."""
