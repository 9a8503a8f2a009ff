"""The studio ends on SIGINT even when it was started with SIGINT ignored, as a background job of a script
inherits it: Ctrl+C, `kill -INT` and a service manager's polite stop end it, not only a kill."""

from __future__ import annotations

import signal
import subprocess

from test_studio_security import Studio  # a real `python app.py`, started and waited for


def test_the_studio_ends_on_sigint_inherited_as_ignored(tmp_path):
    studio = Studio(tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        studio.proc.send_signal(signal.SIGINT)
        try:
            studio.proc.wait(60)  # a bound for a hang, not a speed goal: it takes about 2 s
        except subprocess.TimeoutExpired:
            raise AssertionError("the studio ignored SIGINT") from None
        assert "Traceback" not in studio.log(), studio.log()  # stopped, not crashed, wherever it was
    finally:
        if studio.proc.poll() is None:
            studio.proc.kill()
