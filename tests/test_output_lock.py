"""One writer per output file: a second is refused in one line, and a killed one leaves no lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from retina_desktop.core.errors import OutputError
from retina_desktop.core.output_lock import lock_path_for, output_lock
from tests.conftest import ROOT


def test_a_second_writer_is_refused_while_the_first_holds_the_output(tmp_path):
    out = tmp_path / "results.csv"
    with output_lock(out) as lock:
        assert lock == lock_path_for(out) and lock.exists()
        with pytest.raises(OutputError) as refused:
            with output_lock(out):
                pass
        message = str(refused.value)
        assert message.startswith(f'Cannot write "{out}": another run is writing it now') and "\n" not in message
    assert not lock_path_for(out).exists()
    with output_lock(out):  # free again once the first let go
        pass


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 semantics")
def test_a_killed_writer_leaves_no_stuck_lock(tmp_path):
    out = tmp_path / "results.csv"
    script = textwrap.dedent(f"""
        import os, sys
        from retina_desktop.core.output_lock import output_lock
        with output_lock({str(out)!r}):
            print("held", flush=True)
            sys.stdin.readline()
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match="another run"):
            with output_lock(out):
                pass
    finally:
        holder.kill()  # as a crash would: no cleanup runs
        holder.wait(timeout=30)
    assert lock_path_for(out).exists()  # the file is left behind, but not its lock
    with output_lock(out):
        pass
