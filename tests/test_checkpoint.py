"""Checkpoints: official Lightning .ckpt, plain .pth, our safetensors, and clear errors for bad files."""
import subprocess
import sys

import pytest
import torch

from anyir_core import CheckpointError, load_checkpoint, save_checkpoint
from conftest import random_model


def _same_output(a, b):
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def test_lightning_ckpt_loads_unchanged(tmp_path, tiny):
    ckpt = {  # the layout PyTorch Lightning writes for the official training (LightningModule.net = AnyIR)
        "epoch": 129, "global_step": 123456, "pytorch-lightning_version": "2.1.0",
        "state_dict": {f"net.{k}": v for k, v in tiny.state_dict().items()},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 2e-4}]}],
        "lr_schedulers": [], "hyper_parameters": {},
    }
    path = tmp_path / "epoch=129-step=123456.ckpt"
    torch.save(ckpt, path)
    loaded = load_checkpoint(path, preset="anyir-tiny")
    assert not loaded.training and _same_output(loaded, tiny)
    # and without naming the preset: guessed from the shapes
    assert load_checkpoint(path).config == tiny.config


def test_plain_state_dict_pth(tmp_path, tiny):
    path = tmp_path / "anyir.pth"
    torch.save(tiny.state_dict(), path)
    assert _same_output(load_checkpoint(path, preset="anyir-tiny"), tiny)


def test_safetensors_round_trip_carries_preset(tmp_path, tiny):
    path = save_checkpoint(tiny, tmp_path / "m.safetensors", "anyir-tiny", {"note": "test"})
    assert (tmp_path / "m.json").is_file()
    loaded = load_checkpoint(path)
    assert loaded.preset == "anyir-tiny" and _same_output(loaded, tiny)


def test_wrong_preset_names_the_keys(tmp_path, tiny):
    path = tmp_path / "tiny.pth"
    torch.save(tiny.state_dict(), path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, preset="anyir")
    msg = str(e.value)
    assert "does not fit preset 'anyir'" in msg and "missing" in msg and "mis-shaped" in msg
    assert "more)" in msg  # first few keys, then a count
    assert "\n" not in msg


def test_missing_and_unexpected_keys(tmp_path, tiny):
    sd = dict(tiny.state_dict())
    sd.pop("output.weight")
    sd["extra.head.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"1 missing: output.weight; 1 unexpected: extra.head.weight"):
        load_checkpoint(path, preset="anyir-tiny")


@pytest.mark.parametrize("suffix", [".ckpt", ".pth", ".safetensors"])
def test_corrupted_files(tmp_path, tiny, suffix):
    good = tmp_path / f"good{suffix}"
    if suffix == ".safetensors":
        save_checkpoint(tiny, good, "anyir-tiny")
    else:
        torch.save({"state_dict": tiny.state_dict()}, good)
    data = good.read_bytes()
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match="bad"):
        load_checkpoint(bad, preset="anyir-tiny")
    junk = tmp_path / f"junk{suffix}"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError):
        load_checkpoint(junk, preset="anyir-tiny")


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": Evil()}, path)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(path)


def test_save_is_atomic_on_failure(tmp_path, tiny, monkeypatch):
    path = save_checkpoint(tiny, tmp_path / "m.safetensors", "anyir-tiny")
    before = path.read_bytes()
    import safetensors.torch as st

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(st, "save_file", boom)
    with pytest.raises(RuntimeError):
        save_checkpoint(random_model(seed=9), path, "anyir-tiny")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_reports_bad_checkpoint_in_one_line(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x00" * 100)
    r = subprocess.run([sys.executable, "-m", "mobile.cli", "info", "--checkpoint", str(junk), "--no-ops"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "not a readable PyTorch checkpoint" in r.stderr
    assert "Traceback" not in r.stderr
