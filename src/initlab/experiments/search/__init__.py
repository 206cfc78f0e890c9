"""Group C of PROTOCOLS.md: hyperparameter search (C1 random-search, C2 bayes-search).

Both are built on :mod:`initlab.search` (Optuna): one run per search, whose study lives in
the workspace's database beside the run store.
"""
