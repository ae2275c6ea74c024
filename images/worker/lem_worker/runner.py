"""Dispatch a parsed config to its backend (found in the worker's backend registry, never by name
here) and check the result it returns against the result contract before anything is written."""
from __future__ import annotations

import threading
from typing import Any

from lem_worker import jsoncontract
from lem_worker.backends import runner_for
from lem_worker.config import WorkerConfig
from lem_worker.engines import CACHE
from lem_worker.serving.settings import check_traffic_backend


def run_experiment(cfg: WorkerConfig, stop: threading.Event) -> dict[str, Any]:
    CACHE.ctx.experiment_id = cfg.run.experiment_id  # the fake engine's failure hooks match on it
    check_traffic_backend(cfg.experiment)  # traffic: only where the engine takes requests one at a time
    result = runner_for(cfg.experiment.backend)(cfg, stop)
    jsoncontract.check_result(result)
    return result
