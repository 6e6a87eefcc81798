"""``logger=mlflow``: the run in MLflow, through MLflow's own client (``pip install
segexp[mlflow]``). Tracking store: ``tracking_uri``, by default a file store in the run folder
(``<run folder>/mlruns``; ``mlflow ui --backend-store-uri <run folder>/mlruns``). The MLflow run
id is kept in ``<run folder>/mlflow_run_id`` so that a resumed run logs into the same MLflow run.
"""

import os
from pathlib import Path
from typing import Any

import numpy as np

from segexp.errors import SegexpError

RUN_ID_FILE = "mlflow_run_id"


class MLflowWriter:
    def __init__(
        self,
        log_dir: str,
        purge_step: int | None = None,
        tracking_uri: str | None = None,
        experiment_name: str = "segexp",
    ) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise SegexpError(
                "logger=mlflow needs MLflow: pip install 'segexp[mlflow]' (or drop mlflow from "
                "logger=[...])"
            ) from None
        folder = Path(log_dir)
        if tracking_uri is None:
            # MLflow 3 asks for this opt-in to its file store, which keeps a run self-contained
            # (its SQL store needs sqlalchemy and puts artifacts under the working directory).
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.tracking_uri = tracking_uri or (folder / "mlruns").resolve().as_uri()
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        id_file = folder / RUN_ID_FILE
        if purge_step is not None and id_file.is_file():
            self.run_id = id_file.read_text().strip()
        else:
            found = self.client.get_experiment_by_name(experiment_name)
            experiment_id = (
                found.experiment_id if found else self.client.create_experiment(experiment_name)
            )
            run = self.client.create_run(experiment_id, run_name=folder.name)
            self.run_id = run.info.run_id
            id_file.write_text(self.run_id + "\n")

    def add_scalar(self, tag: str, value: float, step: int | None = None) -> None:
        self.client.log_metric(self.run_id, tag, float(value), step=step or 0)

    def add_text(self, tag: str, text: str, step: int | None = None) -> None:
        suffix = "" if step is None else f"_{step:04d}"
        self.client.log_text(self.run_id, text, f"text/{tag}{suffix}.md")

    def add_image(self, tag: str, image: Any, step: int | None = None) -> None:
        array = np.asarray(image.cpu() if hasattr(image, "cpu") else image)
        self.client.log_image(
            self.run_id, np.ascontiguousarray(array.transpose(1, 2, 0)), key=tag, step=step or 0
        )

    def log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        for key, value in metrics.items():  # first: no parameter trouble can cost them
            self.client.log_metric(self.run_id, key, value)
        # MLflow never changes a logged parameter, and a resumed run may change a setting
        # (resume=<run> trainer.epochs=30): the parameter keeps the first session's value, the
        # run's tag of the same name holds the new one.
        logged = self.client.get_run(self.run_id).data.params
        for key, value in hparams.items():
            text = "null" if value is None else str(value)
            if key not in logged:
                self.client.log_param(self.run_id, key, text)
            elif logged[key] != text:
                self.client.set_tag(self.run_id, key, text)

    def flush(self) -> None:
        pass  # the client writes each call through

    def close(self) -> None:
        self.client.set_terminated(self.run_id)
