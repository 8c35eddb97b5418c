"""Prefect wiring for mdesign's long jobs.

Only orchestration lives here: each flow calls library functions from :mod:`mdesign`, which
never imports prefect. Tasks take paths and small configs, not tensors.
"""
