from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from hyperfcn.tb import HParamsLog, hparam_info


def _plugin(acc):
    return acc.PluginTagToContent("hparams")


def test_experiment_with_domains_and_running_sessions(tmp_path):
    log = HParamsLog(tmp_path)
    log.experiment([hparam_info("batch_size", [8, 16], None),
                    hparam_info("learning_rate", None, (1e-4, 1e-1)),
                    hparam_info("head", ["dense", "conv"], None)])
    log.start("t1", {"batch_size": 8, "learning_rate": 0.01, "head": "conv",
                     "rotation": True})
    log.scalars("t1", 1, {"val_loss": 0.5, "val_accuracy": 0.8})
    # t1 is still running: its start info must already be on disk
    root = EventAccumulator(str(tmp_path))
    root.Reload()
    exp = plugin_data_pb2.HParamsPluginData.FromString(
        _plugin(root)["_hparams_/experiment"]).experiment
    names = {h.name: h for h in exp.hparam_infos}
    assert list(names["batch_size"].domain_discrete.values)[1].number_value == 16
    assert names["learning_rate"].domain_interval.max_value == 0.1
    assert {m.name.tag for m in exp.metric_infos} >= {"val_loss", "val_accuracy"}
    run = EventAccumulator(str(tmp_path / "t1"))
    run.Reload()
    start = plugin_data_pb2.HParamsPluginData.FromString(
        _plugin(run)["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["head"].string_value == "conv"
    assert start.hparams["rotation"].bool_value is True
    assert run.Scalars("val_loss")[0].value == 0.5
    log.end("t1", "failed")
    log.close()
