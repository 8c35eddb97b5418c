"""Prefect wiring for mdesign's long jobs, installed as ``mdesign_flows`` (the folder is
``flows/``; the import name is the project's, not a generic ``flows``).

Only orchestration lives here: each flow calls library functions from :mod:`mdesign`, which
never imports prefect. Tasks take paths and small configs, not tensors.

One pattern for every flow: ``flows/NAME.py`` holds its tasks, its ``@flow`` and a plain
``run_NAME(...)`` that runs it; it imports prefect at the top, so whoever starts it first calls
:func:`mdesign_flows._prefect_env.configure_prefect` (Prefect reads its settings at import),
then imports the module. ``mdesign optimize`` starts :mod:`mdesign_flows.design`;
``python -m mdesign_flows reconstruct FOLDER OUT_DIR`` starts
:mod:`mdesign_flows.reconstruct`.
"""
