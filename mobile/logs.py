"""Where the output of a long command goes: the runtimes' chatter into a log file, progress bars only where a
person watches a terminal, one line per stage otherwise.

`native_chatter_to` is shared by `anyir profile` and `anyir build`; `third_party_progress` switches off the
converters' own progress output (coremltools' tqdm "Running MIL ... pipeline" bars, litert-torch's
[START]/[DONE] lines) where it would only fill a log with carriage returns.
"""
from __future__ import annotations

import io
import os
import re
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path


# what the runtimes print that no user acts on (FACTS.md: harmless on CPU); kept in the log instead
CHATTER = re.compile(r"^(\[[\w.]+\.(cpp|cc|c|h):\d+\]|[IWE]\d{4} \d\d:\d\d:\d\d|I0000 |USDT:|Failed to load .*torchao"
                     r"|WARNING: All log messages before absl|INFO: Created TensorFlow Lite|\w+\.(cpp|cc):\d+\] )")


class _ChatterFilter(io.TextIOBase):
    """A stderr that sends chatter lines to a log and everything else (errors, progress bars) to the user."""

    def __init__(self, user, log):
        self.user, self.log, self.pending = user, log, ""

    def write(self, text: str) -> int:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            if CHATTER.match(line):
                self._to_log(line + "\n")
            else:
                self.user.write(line + "\n")
        if self.pending and not CHATTER.match(self.pending) and not self.pending[:1] in "[IWEUF":
            self.user.write(self.pending)  # a progress bar's carriage-return update: show it now
            self.pending = ""
        return len(text)

    def _to_log(self, text: str) -> None:
        # never raise from here: the ExecuTorch bindings write their log through sys.stderr from C++, and an
        # exception there aborts the process (a full disk under $TMPDIR made `anyir profile` die by SIGABRT)
        if self.log is None:
            return
        try:
            self.log.write(text)
        except (OSError, ValueError):
            self.log = None  # the chatter is dropped from now on, the command goes on

    def flush(self) -> None:
        self.user.flush()
        if self.log is not None:
            try:
                self.log.flush()
            except (OSError, ValueError):
                self.log = None

    def isatty(self) -> bool:
        return self.user.isatty()

    @property
    def encoding(self):
        return getattr(self.user, "encoding", "utf-8")


def native_chatter_to(log: Path) -> None:
    """From now on, keep the runtimes' chatter (cpuinfo probes, threadpool resets, absl and XNNPACK notices,
    torchao's CUDA-only libraries, profiler start/stop lines) out of the terminal and in `log`, while errors
    and progress bars still reach the user. Some of it comes through Python's sys.stderr (the ExecuTorch
    bindings route their log there), some straight to file descriptor 2 from native code: both are caught.
    Not undone: some native lines are buffered until exit, so the descriptor stays on the log."""
    sys.stderr.flush()
    _flush_c_stdio()
    user = os.dup(2)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = _ChatterFilter(open(user, "w", buffering=1, errors="backslashreplace"),
                                open(log, "a", buffering=1, errors="backslashreplace"))


def _flush_c_stdio() -> None:
    try:
        import ctypes
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def warnings_to(log: Path) -> None:
    """Python warnings of the libraries (coremltools' tested-torch-version notice, torch.export's deprecations)
    go to `log` too: the user can act on none of them."""
    def show(message, category, filename, lineno, file=None, line=None):
        try:
            with open(log, "a", errors="backslashreplace") as f:
                f.write(warnings.formatwarning(message, category, filename, lineno, line))
        except OSError:  # a full disk: a warning nobody acts on is not worth failing the command for
            pass
    warnings.showwarning = show


@contextmanager
def third_party_progress(show: bool):
    """Within the block, the converters' own progress output is on or off: tqdm bars (coremltools and any
    other library's; tqdm reads its TQDM_* settings only when imported, so its constructor is wrapped) and
    litert-torch's task lines (read from LITERT_TORCH_SHOW_PROGRESS at each call)."""
    import tqdm.std
    cls = tqdm.std.tqdm
    had_env = "LITERT_TORCH_SHOW_PROGRESS" in os.environ
    old_env = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    old_init = cls.__dict__["__init__"]
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "y" if show else "n"
    if not show:
        def quiet_init(self, *args, **kwargs):
            kwargs["disable"] = True
            old_init.__get__(self, type(self))(*args, **kwargs)
        cls.__init__ = quiet_init
    try:
        yield
    finally:
        cls.__init__ = old_init
        if had_env:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = old_env
        else:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
