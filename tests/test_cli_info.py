"""`anyir info`: the released model's numbers, and clear errors."""
import subprocess
import sys


def anyir(*args):
    return subprocess.run([sys.executable, "-m", "mobile.cli", *args], capture_output=True, text=True)


def test_info_released_numbers():
    r = anyir("info", "--preset", "anyir", "--no-ops")
    assert r.returncode == 0, r.stderr
    assert "5,736,376" in r.stdout and "825 entries" in r.stdout
    assert "26.25 G at 224x224" in r.stdout
    r = anyir("info", "--preset", "anyir", "--size", "256", "256", "--no-ops")
    assert "34.29 G at 256x256" in r.stdout


def test_info_op_inventory_has_no_fft():
    r = anyir("info", "--preset", "anyir-tiny", "--size", "60", "100")
    assert r.returncode == 0, r.stderr
    assert "run at 64x104 after padding" in r.stdout
    inventory = r.stdout.split("export form", 1)[1]
    assert "conv2d" in inventory and "bmm" in inventory
    assert "fft" not in inventory and "complex" not in inventory and "layer_norm" not in inventory


def test_info_errors_are_one_line():
    for args, needle in ((("--preset", "nope"), "unknown preset 'nope'"),
                         (("--size", "0", "64"), "must be positive"),
                         (("--size", "20000", "64"), "tiles")):
        r = anyir("info", *args, "--no-ops")
        assert r.returncode == 2 and needle in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0
