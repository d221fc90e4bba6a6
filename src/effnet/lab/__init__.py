"""The scaling lab: run the paper's scaling experiments on your own data and hardware.

* :func:`search`: the phi = 1 grid search for (alpha, beta, gamma) under
  alpha * beta^2 * gamma^2 ~= budget, every model measured and trained, the winner named.
* :func:`compare`: depth-only, width-only, resolution-only and compound models at matched
  measured MACs, trained under one recipe, plotted as accuracy against GMACs.
* :func:`family_spec` / :func:`family_ladder`: the family a set of coefficients makes.

Trials are independent and run serially, in a process pool or as Ray tasks; results land in
one directory and an interrupted experiment resumes where it stopped.
"""

from effnet.lab.compare import CompareResult, Verdict, compare, plan_compare
from effnet.lab.families import (
    STRATEGIES,
    Candidate,
    LabBase,
    family_ladder,
    family_spec,
    match_macs,
    phi1_candidates,
    resolve_base,
)
from effnet.lab.grid import Grid, default_grid, enumerate_grid
from effnet.lab.runner import BACKENDS, RunOptions, RunReport, load_results, run_trials
from effnet.lab.search import SearchResult, plan_search, search
from effnet.lab.trial import DataConfig, Recipe, run_trial

__all__ = [
    "BACKENDS",
    "STRATEGIES",
    "Candidate",
    "CompareResult",
    "DataConfig",
    "Grid",
    "LabBase",
    "Recipe",
    "RunOptions",
    "RunReport",
    "SearchResult",
    "Verdict",
    "compare",
    "default_grid",
    "enumerate_grid",
    "family_ladder",
    "family_spec",
    "load_results",
    "match_macs",
    "phi1_candidates",
    "plan_compare",
    "plan_search",
    "resolve_base",
    "run_trial",
    "run_trials",
    "search",
]
