"""flows.console: progress lines on the terminal, everything else (even file-descriptor
writes of C++ code) in the command's log file; --verbose shows it all live."""
import os
import sys

import pytest

from flows import console
from tasks import progress


def test_noise_goes_to_the_log_and_progress_to_the_terminal(tmp_path, capfd):
    with console.session("ingest", str(tmp_path / "logs")) as session:
        os.write(2, b"C++ noise on fd 2\n")
        os.write(1, b"pip noise on fd 1\n")
        print("python noise", file=sys.__stderr__, flush=True)  # the process's own stderr
        progress.log.info("ingest: 3 files")
    out, err = capfd.readouterr()
    assert err.splitlines() == [f"hotdog ingest: full log in {session.log_path} (--verbose shows it here)",
                                "ingest: 3 files"]
    assert out == ""
    log = open(session.log_path).read()
    assert "C++ noise on fd 2" in log and "pip noise on fd 1" in log and "python noise" in log
    assert "ingest: 3 files" in log
    os.write(2, b"after the session\n")
    assert capfd.readouterr().err == "after the session\n"  # the descriptors are back


def test_verbose_shows_everything_live(tmp_path, capfd):
    with console.session("train", str(tmp_path / "logs"), verbose=True) as session:
        os.write(2, b"C++ noise on fd 2\n")
        progress.log.info("1/9 ImportExampleGen")
    err = capfd.readouterr().err
    assert "C++ noise on fd 2" in err and "1/9 ImportExampleGen" in err
    assert "1/9 ImportExampleGen" in open(session.log_path).read()


def test_a_failure_names_the_log(tmp_path, capfd):
    with pytest.raises(RuntimeError, match="boom"):
        with console.session("run", str(tmp_path / "logs")) as session:
            raise RuntimeError("boom")
    assert capfd.readouterr().err.splitlines()[-1] == f"hotdog run failed (RuntimeError); full log: {session.log_path}"
