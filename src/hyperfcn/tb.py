"""TensorBoard logs with the HParams dashboard, written without TensorFlow.

The experiment (every hyperparameter with its declared domain, and the metrics) is written
once at the log root; each trial gets its own run with its hyperparameters at the *start*,
scalars every epoch and a status at the end, so running trials show in the table too.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

METRICS = ("val_loss", "val_calibrated_loss", "val_accuracy", "val_balanced_accuracy",
           "loss", "accuracy")
_STATUS = {"ok": api_pb2.STATUS_SUCCESS, "failed": api_pb2.STATUS_FAILURE,
           "stopped": api_pb2.STATUS_SUCCESS, "running": api_pb2.STATUS_RUNNING}


_uid = itertools.count()


class EventFileWriter:
    """A TensorBoard event file. TensorBoard's own writer goes through tf.io.gfile, which
    imports all of TensorFlow (3-4 s, ~560 MB) into the driver when it is installed."""

    def __init__(self, logdir: str) -> None:
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                f"{os.getpid()}.{next(_uid)}")
        self._file = open(os.path.join(logdir, name), "wb")  # noqa: SIM115
        self._records = RecordWriter(self._file)
        self.add_event(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def add_event(self, event: event_pb2.Event) -> None:
        self._records.write(event.SerializeToString())

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _hparam_summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> summary_pb2.Summary:
    s = summary_pb2.Summary()
    s.value.add(tag=tag, metadata=metadata.create_summary_metadata(data))
    return s


def _value(v: Any):
    if isinstance(v, bool):
        return api_pb2.DATA_TYPE_BOOL
    if isinstance(v, int | float):
        return api_pb2.DATA_TYPE_FLOAT64
    return api_pb2.DATA_TYPE_STRING


def hparam_info(name: str, values: Sequence[Any] | None,
                interval: tuple[float, float] | None) -> api_pb2.HParamInfo:
    info = api_pb2.HParamInfo(name=name)
    if values:
        info.type = _value(values[0])
        for v in values:
            lv = info.domain_discrete.values.add()
            if isinstance(v, bool):
                lv.bool_value = v
            elif isinstance(v, int | float):
                lv.number_value = float(v)
            else:
                lv.string_value = str(v)
    elif interval is not None:
        info.type = api_pb2.DATA_TYPE_FLOAT64
        info.domain_interval.min_value = float(interval[0])
        info.domain_interval.max_value = float(interval[1])
    return info


class HParamsLog:
    def __init__(self, logdir: Path) -> None:
        self.logdir = Path(logdir)
        self._writers: dict[str, EventFileWriter] = {}

    def _writer(self, run: str) -> EventFileWriter:
        if run not in self._writers:
            d = self.logdir / run if run else self.logdir
            d.mkdir(parents=True, exist_ok=True)
            self._writers[run] = EventFileWriter(str(d))
        return self._writers[run]

    def _add(self, run: str, summary: summary_pb2.Summary, step: int = 0) -> None:
        self._writer(run).add_event(event_pb2.Event(wall_time=time.time(), step=step,
                                                    summary=summary))

    def experiment(self, infos: Sequence[api_pb2.HParamInfo],
                   metrics: Sequence[str] = METRICS, description: str = "") -> None:
        exp = api_pb2.Experiment(
            description=description, time_created_secs=time.time(), hparam_infos=infos,
            metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m),
                                             display_name=m) for m in metrics])
        self._add("", _hparam_summary(metadata.EXPERIMENT_TAG,
                                      plugin_data_pb2.HParamsPluginData(experiment=exp)))
        self._writer("").flush()

    def start(self, run: str, hparams: Mapping[str, Any], group: str = "") -> None:
        info = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time(), group_name=group)
        for k, v in hparams.items():
            if isinstance(v, bool):
                info.hparams[k].bool_value = v
            elif isinstance(v, int | float):
                info.hparams[k].number_value = float(v)
            else:
                info.hparams[k].string_value = str(v)
        self._add(run, _hparam_summary(metadata.SESSION_START_INFO_TAG,
                                       plugin_data_pb2.HParamsPluginData(
                                           session_start_info=info)))
        self._writer(run).flush()

    def scalars(self, run: str, step: int, values: Mapping[str, float]) -> None:
        s = summary_pb2.Summary()
        for k, v in values.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                s.value.add(tag=k, simple_value=float(v))
        self._add(run, s, step)
        self._writer(run).flush()

    def end(self, run: str, status: str = "ok") -> None:
        info = plugin_data_pb2.SessionEndInfo(status=_STATUS.get(status, api_pb2.STATUS_UNKNOWN),
                                              end_time_secs=time.time())
        self._add(run, _hparam_summary(metadata.SESSION_END_INFO_TAG,
                                       plugin_data_pb2.HParamsPluginData(
                                           session_end_info=info)))
        self.close(run)

    def close(self, run: str | None = None) -> None:
        runs = [run] if run is not None else list(self._writers)
        for r in runs:
            w = self._writers.pop(r, None)
            if w is not None:
                w.close()
