"""reuse_freed_memory: glibc's mallopt settings, a no-op elsewhere, used by the program."""

import platform
import subprocess
import sys

import pytest

from sklearn_leuko.utils import _malloc, reuse_freed_memory


class _RecordingLibc:
    def __init__(self, result=1):
        self.calls = []
        self.result = result

        def mallopt(param, value):
            self.calls.append((param, value))
            return self.result

        self.mallopt = mallopt


def test_sets_the_three_mallopt_parameters(monkeypatch):
    libc = _RecordingLibc()
    monkeypatch.setattr(_malloc, "_glibc", lambda: libc)
    assert reuse_freed_memory() is True
    assert libc.calls == [(-4, 0), (-1, 2**31 - 1), (-2, 1 << 28)]
    assert all(-(2**31) <= value < 2**31 for _, value in libc.calls)  # C ints


def test_reports_a_refused_setting(monkeypatch):
    monkeypatch.setattr(_malloc, "_glibc", lambda: _RecordingLibc(result=0))
    assert reuse_freed_memory() is False


def test_is_a_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda: ("musl", "1.2"))
    assert _malloc._glibc() is None
    assert reuse_freed_memory() is False


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc only",
)
def test_glibc_accepts_the_settings_in_a_fresh_process():
    code = "from sklearn_leuko.utils import reuse_freed_memory as r; print(r())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_the_program_entry_point_applies_it_and_main_does_not(monkeypatch, capsys):
    from sklearn_leuko import _cli

    calls = []
    monkeypatch.setattr(_malloc, "_glibc", lambda: calls.append("mallopt") or None)
    assert _cli.main(["--version"]) == 0  # main() runs in-process: no settings
    assert calls == []
    monkeypatch.setattr(_cli, "main", lambda argv=None: 7)
    assert _cli.run() == 7
    assert calls == ["mallopt"]
