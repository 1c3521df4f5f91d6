"""MLflow: one parent run per sweep, one nested child run per item, through MlflowClient.

Every call runs on the Tracker's one logging thread (MLflow's fluent API keeps the active run in
process-wide state and is not thread-safe; the client API with explicit run ids is used instead,
so a user's own active run in the notebook is left alone).

The store is MLFLOW_TRACKING_URI when set, else a local SQLite store in `out_dir/mlruns/`
(mlflow.db, artifacts in artifacts/): no server, no network. MLflow 3 refuses its older plain-file
store unless MLFLOW_ALLOW_FILE_STORE is set, and recommends SQLite, so that is the default.
The experiment is MLFLOW_EXPERIMENT_NAME, else "decart_nb".
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .params import ParamValue, item_label, split_row

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["DEFAULT_EXPERIMENT", "MlflowBackend", "default_tracking_uri"]

DEFAULT_EXPERIMENT = "decart_nb"
# MLflow's limits (since 2.x): a param's value 6000 characters, a name 250.
_MAX_VALUE = 6000
_MAX_NAME = 250
_BATCH = 100  # params per log_batch call (MLflow takes at most 100)
# MLflow 3's UI opens an experiment by its kind: without this tag a new one opens on the GenAI
# traces overview, not on its runs.
_EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def default_tracking_uri(out_dir: Path) -> str:
    """The local store of a sweep writing into `out_dir`: sqlite:////abs/out_dir/mlruns/mlflow.db."""
    return "sqlite:///" + str((Path(out_dir) / "mlruns" / "mlflow.db").resolve())


class MlflowBackend:
    """The Backend for tracker="mlflow" (see base.Backend); used from the logging thread only."""

    label = "MLflow"
    needs_start = True

    def __init__(self, out_dir: Path) -> None:
        self._out_dir = Path(out_dir)
        self._client: MlflowClient | None = None
        self._experiment = ""
        self._parent = ""
        # The sweep's run starts now (MLflow's import and store set-up take seconds on the thread).
        self._opened_ms = int(time.time() * 1000)

    def start(self, name: str, params: Mapping[str, ParamValue]) -> None:
        from mlflow import MlflowClient  # imported here, on the logging thread: it takes seconds

        uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
        artifacts: str | None = None
        if not uri:
            store = self._out_dir / "mlruns"
            store.mkdir(parents=True, exist_ok=True)
            uri, artifacts = default_tracking_uri(self._out_dir), (store / "artifacts").resolve().as_uri()
        self._client = client = MlflowClient(tracking_uri=uri)
        self._experiment = self._experiment_id(client, artifacts)
        tags = {"decart_nb.run": "sweep"}
        run = client.create_run(self._experiment, start_time=self._opened_ms, run_name=name, tags=tags)
        self._parent = str(run.info.run_id)
        self._log(self._parent, params, {})

    def item(self, row: Mapping[str, object], files: Mapping[str, Path]) -> None:
        client = self._started()
        tags = {"mlflow.parentRunId": self._parent, "decart_nb.run": "item"}
        if isinstance(row.get("key"), str):
            tags["decart_nb.key"] = str(row["key"])
        run = client.create_run(self._experiment, run_name=item_label(row), tags=tags)
        run_id = str(run.info.run_id)
        status = "FAILED" if row.get("error_code") else "FINISHED"
        try:
            params, metrics = split_row(row)
            self._log(run_id, params, metrics)
            for kind, path in files.items():  # "snapshot" (a PNG the UI shows), "clip" (an mp4)
                client.log_artifact(run_id, str(path), kind)
        except BaseException:
            status = "FAILED"
            raise
        finally:  # never left RUNNING, even when logging failed half way
            client.set_terminated(run_id, status)

    def file(self, path: Path) -> None:
        self._started().log_artifact(self._parent, str(path))

    def end(self) -> None:
        self._started().set_terminated(self._parent, "FINISHED")

    def _started(self) -> MlflowClient:
        if self._client is None:
            raise RuntimeError("the MLflow run was not started")
        return self._client

    def _experiment_id(self, client: MlflowClient, artifacts: str | None) -> str:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip() or DEFAULT_EXPERIMENT
        found = client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(client.create_experiment(name, artifact_location=artifacts, tags=_EXPERIMENT_TAGS))
        except Exception:
            # Another sweep (another process) created it first: use theirs; anything else raises.
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def _log(self, run_id: str, params: Mapping[str, ParamValue], metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric, Param

        client = self._started()
        now = int(time.time() * 1000)
        param_list = [Param(_name(k), str(v)[:_MAX_VALUE]) for k, v in params.items()]
        metric_list = [Metric(_name(k), v, now, 0) for k, v in metrics.items()]
        for i in range(0, max(len(param_list), len(metric_list)), _BATCH):
            client.log_batch(run_id, metrics=metric_list[i : i + _BATCH], params=param_list[i : i + _BATCH])


def _name(name: str) -> str:
    """A param or metric name MLflow accepts: letters, digits, _ - . space / only."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in name)[:_MAX_NAME] or "_"
