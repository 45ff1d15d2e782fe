"""GPUs read from the driver's and the packages' files: a GPU option this machine cannot
honour is refused before any work, and a GPU the installed build cannot use is said."""

import pytest

from hyperfcn import gpu
from hyperfcn.errors import UserError


def _driver(tmp_path, n):
    for i in range(n):
        (tmp_path / "gpus" / f"0000:0{i}:00.0").mkdir(parents=True)
    return tmp_path / "gpus"


def _tensorflow(tmp_path, monkeypatch, cuda: bool):
    """An installed TensorFlow whose build_info says how it was built."""
    d = tmp_path / "tensorflow"
    (d / "python" / "platform").mkdir(parents=True, exist_ok=True)
    (d / "python" / "platform" / "build_info.py").write_text(
        f"build_info = collections.OrderedDict([('is_cuda_build', {cuda}), "
        f"('is_rocm_build', False)])\n")
    monkeypatch.setattr(gpu, "_package_dir", lambda name: d)


def test_the_drivers_gpus_less_those_cuda_visible_devices_hides(tmp_path):
    proc = _driver(tmp_path, 2)
    assert gpu.local_gpus(proc, visible=None) in (2, 0)  # the environment's own setting
    assert gpu.local_gpus(proc, visible="0,1") == 2
    assert gpu.local_gpus(proc, visible="1") == 1
    assert gpu.local_gpus(proc, visible="") == 0 and gpu.local_gpus(proc, visible="-1") == 0
    assert gpu.local_gpus(tmp_path / "no driver", visible="0") == 0


@pytest.mark.parametrize("cuda", [True, False])
def test_tensorflows_build_is_read_from_its_build_info(tmp_path, monkeypatch, cuda):
    _tensorflow(tmp_path, monkeypatch, cuda)
    assert gpu.cuda_build("tensorflow") is cuda
    note = gpu.gpu_note("tensorflow", gpus=1)
    assert (note is None) is cuda
    if not cuda:
        assert "1 NVIDIA GPU, but the installed tensorflow is a CPU-only build" in note
        assert "docs/gpu.md" in note
    assert gpu.gpu_note("tensorflow", gpus=0) is None  # no GPU: nothing to say


def test_a_gpu_option_this_machine_cannot_honour_is_refused(tmp_path, monkeypatch):
    _tensorflow(tmp_path, monkeypatch, cuda=True)
    with pytest.raises(UserError, match="--gpus-per-trial 1: this machine has no NVIDIA GPU"):
        gpu.check_gpu_option(1, None, "tensorflow", gpus=0)
    with pytest.raises(UserError, match="--gpus-per-trial 2: more than the 1 GPU of this"):
        gpu.check_gpu_option(2, None, "tensorflow", gpus=1)
    gpu.check_gpu_option(0.25, None, "tensorflow", gpus=1)  # a share of one: fine
    gpu.check_gpu_option(2, "ray://head:10001", "tensorflow", gpus=0)  # a cluster's own
    gpu.check_gpu_option(None, None, "tensorflow", gpus=0)  # not asked
    _tensorflow(tmp_path, monkeypatch, cuda=False)
    with pytest.raises(UserError, match="CPU-only build and cannot use the GPU"):
        gpu.check_gpu_option(1, None, "tensorflow", gpus=1)
