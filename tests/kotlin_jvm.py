"""The Kotlin compiler the suite uses for the apps' plain-Kotlin code, shared by the Android test modules.

A current compiler ships inside the PyPI wheel kotlin-jupyter-kernel (a declared test dependency; FACTS.md);
JDK 17 runs it. Compiling takes 20-40 s, so each set of sources is compiled once, in the background while a
module builds its bundle, into a temp folder keyed by a hash of the sources and the compiler."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def toolchain() -> tuple[Path, Path, str]:
    """The compiler jar, the stdlib jar and java, or a failure that says what to install."""
    try:
        import run_kotlin_kernel
    except ImportError:
        pytest.fail("the Kotlin compiler is missing: pip install kotlin-jupyter-kernel==0.19.0.944 "
                    "(a declared test dependency, pyproject [test])", pytrace=False)
    jars = Path(run_kotlin_kernel.__file__).parent / "jars"
    compiler = sorted(jars.glob("kotlin-jupyter-kernel-*-all.jar"))
    stdlib = [p for p in sorted(jars.glob("kotlin-stdlib-*.jar")) if "jdk" not in p.name and "common" not in p.name]
    if not compiler or not stdlib:
        pytest.fail(f"no Kotlin compiler jar (kotlin-jupyter-kernel-*-all.jar) or stdlib jar in {jars}: reinstall "
                    "kotlin-jupyter-kernel==0.19.0.944", pytrace=False)
    java = shutil.which("java")
    if java is None:
        pytest.fail("no `java` on PATH: the Kotlin code is checked on a JDK (17)", pytrace=False)
    return compiler[-1], stdlib[-1], java


class Compilation:
    """Compiles `sources` (paths under `root`) in the background; `classes()` waits and returns the folder."""

    def __init__(self, sources: list[Path], root: Path, name: str):
        compiler, self.stdlib, self.java = toolchain()
        h = hashlib.sha256(compiler.name.encode() + self.stdlib.name.encode())
        for src in sources:
            h.update(str(src.relative_to(root)).encode() + b"\0" + src.read_bytes() + b"\0")
        self.cache = Path(tempfile.gettempdir()) / name / h.hexdigest()[:20]
        self.t0, self.proc, self.seconds = time.perf_counter(), None, "cached"
        if not (self.cache / "OK").is_file():
            self.staging = self.cache.with_name(f"{self.cache.name}.partial-{os.getpid()}")
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging.mkdir(parents=True)
            self.proc = subprocess.Popen(
                [self.java, "-cp", str(compiler), "org.jetbrains.kotlin.cli.jvm.K2JVMCompiler", "-no-stdlib",
                 "-no-reflect", "-nowarn", "-classpath", str(self.stdlib), *map(str, sources), "-d", str(self.staging)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def classes(self) -> Path:
        if self.proc is not None:
            log, _ = self.proc.communicate()
            proc, self.proc = self.proc, None
            if proc.returncode != 0:
                shutil.rmtree(self.staging, ignore_errors=True)
                pytest.fail(f"the Kotlin sources do not compile:\n{log[-6000:]}", pytrace=False)
            (self.staging / "OK").write_text("compiled\n")
            try:
                self.staging.rename(self.cache)  # another worker may have won the race: its output is the same
            except OSError:
                shutil.rmtree(self.staging, ignore_errors=True)
            self.seconds = round(time.perf_counter() - self.t0, 1)
        return self.cache

    def close(self) -> None:
        """Stops a compile nobody waited for (the module ended early)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.staging, ignore_errors=True)

    def runner(self, main_class: str, what: str):
        """run(*args, heap=None, check=True) -> the program's JSON lines; a non-zero exit fails the test."""
        classes = self.classes()

        def run(*args, heap: str | None = None, check: bool = True, timeout: int = 600) -> list[dict]:
            cmd = [self.java, *([f"-Xmx{heap}", "-XX:+UseSerialGC"] if heap else []), "-cp",
                   f"{classes}{os.pathsep}{self.stdlib}", main_class, *map(str, args)]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            if check and r.returncode != 0:
                pytest.fail(f"{what} {' '.join(map(str, args))} exited {r.returncode}:\n{r.stderr[-4000:]}",
                            pytrace=False)
            return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        return run
