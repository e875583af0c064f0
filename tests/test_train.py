"""Training: the recipe's pieces, exact resume after an interruption, and kills that lose nothing."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from anyir_core import AnyIRError, load_checkpoint
from anyir_core.train import TrainConfig, lr_at, read_log, restoration_loss, train

FAST = dict(preset="anyir-tiny", tasks=["noise25", "rain"], patch=16, batch=2, log_every=1, save_every=3, seed=5,
            threads=1)


def test_loss_is_l1_plus_fft_l1():
    a, b = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    loss, parts = restoration_loss(a, b, 0.1)
    assert parts["l1"] == pytest.approx(1.0)
    # rfft2 of a constant 1 image: DC = 64 in each channel, everything else 0; L1 over (re, im) pairs
    assert parts["fft"] == pytest.approx(64 / (8 * 5 * 2))
    assert float(loss) == pytest.approx(1.0 + 0.1 * parts["fft"])


def test_warmup_then_cosine():
    cfg = TrainConfig(steps=100, lr=1e-3, min_lr=0.0, warmup=0.1)
    assert lr_at(cfg, 0) == pytest.approx(1e-4) and lr_at(cfg, 9) == pytest.approx(1e-3)
    assert lr_at(cfg, 55) == pytest.approx(5e-4, rel=1e-2) and lr_at(cfg, 100) == pytest.approx(0.0, abs=1e-9)


def test_resume_continues_the_same_curve(tmp_path):
    straight = train(TrainConfig(steps=9, **FAST), tmp_path / "a", quiet=True)
    train(TrainConfig(steps=9, **FAST), tmp_path / "b", quiet=True, stop_after=4)
    # lines written after the last save (step 3) are dropped on resume, then re-written identically
    with pytest.raises(AnyIRError, match="--resume"):
        train(TrainConfig(steps=9, **FAST), tmp_path / "b", quiet=True)
    resumed = train(TrainConfig(steps=9, **FAST), tmp_path / "b", resume=True, quiet=True)
    a, b = read_log(tmp_path / "a" / "log.jsonl"), read_log(tmp_path / "b" / "log.jsonl")
    assert [r["step"] for r in b] == list(range(1, 10))
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], rel=1e-4)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(load_checkpoint(straight)(x), load_checkpoint(resumed)(x), atol=1e-5)
    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    assert meta["step"] == 9 and meta["recipe"]["preset"] == "anyir-tiny" and meta["training"]["steps"] == 9


def test_loader_workers_and_darkening_keep_batches_a_function_of_the_step(tmp_path):
    cfg = dict(FAST, tasks=["noise25", "clean"], darken=0.5)
    train(TrainConfig(steps=4, **cfg), tmp_path / "a", quiet=True)
    train(TrainConfig(steps=4, workers=2, **cfg), tmp_path / "b", quiet=True)
    a, b = read_log(tmp_path / "a" / "log.jsonl"), read_log(tmp_path / "b" / "log.jsonl")
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-5)
    from anyir_core.data import PatchSampler, builtin_samples
    samples = builtin_samples("train")[:2]
    plain = PatchSampler(samples, ["clean"], 32, 16, seed=1).draw(0)[1]
    dark = PatchSampler(samples, ["clean"], 32, 16, seed=1, darken=1.0).draw(0)[1]
    assert dark.mean() < 0.95 * plain.mean()
    with pytest.raises(AnyIRError, match="darken"):
        TrainConfig(darken=1.5).validate()


def test_colour_augmentation_recolours_the_clean_target_before_degrading():
    from anyir_core.data import PatchSampler, builtin_samples
    samples = builtin_samples("train")[:2]
    plain = PatchSampler(samples, ["clean"], 32, 16, seed=1).draw(0)
    coloured = PatchSampler(samples, ["clean"], 32, 16, seed=1, color=1.0).draw(0)
    again = PatchSampler(samples, ["clean"], 32, 16, seed=1, color=1.0).draw(0)
    assert torch.equal(coloured[0], again[0])  # still a function of (seed, step)
    # 'clean' is the identity: input == target, so the recolouring happened before the degradation
    assert torch.equal(coloured[0], coloured[1])
    assert not torch.equal(coloured[1], plain[1])
    # recoloured patches carry a colour cast (white balance), grey photos included
    rgb_means = coloured[1].mean((2, 3))
    assert (rgb_means.max(1).values - rgb_means.min(1).values).mean() > 0.02
    noisy = PatchSampler(samples, ["noise25"], 32, 16, seed=1, color=1.0).draw(0)
    assert 5 < float((noisy[0] - noisy[1]).std() * 255) < 40  # the noise is added to the recoloured patch
    for bad in (dict(color=-0.1), dict(color=2.0), dict(amp="fp16")):
        with pytest.raises(AnyIRError, match="color|amp"):
            TrainConfig(**bad).validate()


def test_bf16_needs_cuda(tmp_path):
    with pytest.raises(AnyIRError, match="needs a CUDA device"):
        train(TrainConfig(steps=1, amp="bf16", device="cpu", **FAST), tmp_path, quiet=True)


def test_resume_rejects_changed_settings(tmp_path):
    train(TrainConfig(steps=3, **FAST), tmp_path, quiet=True)
    with pytest.raises(AnyIRError, match="different settings \\(lr\\)"):
        train(TrainConfig(steps=3, **{**FAST, "seed": 5}, lr=1.0), tmp_path, resume=True, quiet=True)


def test_damaged_newest_checkpoint_falls_back(tmp_path):
    train(TrainConfig(steps=6, **FAST), tmp_path, quiet=True, stop_after=6)
    newest = tmp_path / "checkpoints" / "step_0000006" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(UserWarning, match="damaged checkpoint"):
        train(TrainConfig(steps=8, **FAST), tmp_path, resume=True, quiet=True)
    assert [r["step"] for r in read_log(tmp_path / "log.jsonl")] == list(range(1, 9))


def _cli_train(out, steps, *extra):
    args = ["--preset", "anyir-tiny", "--tasks", "noise25", "--patch", "16", "--batch", "2", "--steps", str(steps),
            "--save-every", "2", "--log-every", "1", "--threads", "1", "--quiet"]
    return [sys.executable, "-m", "mobile.cli", "train", "--out", str(out), *args, *extra]


def _wait_for_checkpoint(run: Path, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if list((run / "checkpoints").glob("step_*")) if (run / "checkpoints").exists() else []:
            return
        assert proc.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_the_same_step_count(tmp_path, sig):
    run = tmp_path / "run"
    proc = subprocess.Popen(_cli_train(run, 60), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(run, proc)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:  # graceful: finishes the step, saves, says how to continue
        assert proc.returncode == 130 and "--resume" in err and "Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not list(run.glob("checkpoints/.tmp*")) or sig == signal.SIGKILL
    killed_at = max(int(p.name.split("_")[1]) for p in (run / "checkpoints").glob("step_*"))
    assert 0 < killed_at < 60
    r = subprocess.run(_cli_train(run, 60, "--resume"), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    steps = [rec["step"] for rec in read_log(run / "log.jsonl")]
    assert steps == list(range(1, 61))  # no gap, no duplicate: the curve continues
    assert load_checkpoint(run / "model.safetensors").preset == "anyir-tiny"


def test_torchrun_ddp_on_cpu(tmp_path):
    """Two processes through torchrun (gloo on CPU): the engine multi-GPU users run, same code path."""
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mobile.cli", "train", "--out", str(run), "--preset", "anyir-tiny", "--tasks", "noise25",
           "--patch", "16", "--batch", "2", "--steps", "4", "--log-every", "1", "--threads", "1", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    recs = read_log(run / "log.jsonl")
    assert [x["step"] for x in recs] == [1, 2, 3, 4]  # one writer: rank 0
    assert load_checkpoint(run / "model.safetensors").preset == "anyir-tiny"


def test_config_file_with_flag_override_and_bad_options(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("preset: anyir-tiny\ntasks: [noise15]\npatch: 16\nbatch: 1\nsteps: 50\nthreads: 1\n")
    base = [sys.executable, "-m", "mobile.cli", "train", "--config", str(cfg), "--quiet"]
    r = subprocess.run(base + ["--out", str(tmp_path / "r"), "--steps", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["steps"] == 2 and saved["preset"] == "anyir-tiny" and saved["tasks"] == ["noise15"]
    cfg.write_text("preset: anyir-tiny\nlearning_rate: 3\n")
    r = subprocess.run(base + ["--out", str(tmp_path / "s")], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown training option(s): learning_rate" in r.stderr
    r = subprocess.run(base[:-3] + ["--out", str(tmp_path / "t"), "--preset", "anyir-tiny", "--patch", "20"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "multiple of 8" in r.stderr and "Traceback" not in r.stderr
