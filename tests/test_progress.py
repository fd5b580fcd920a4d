"""kerasviz._progress: the one progress line (rate, ETA), silenced by KERASVIZ_QUIET."""

import io

from kerasviz import _progress


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_quiet_env_and_disabled_print_nothing(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setenv("KERASVIZ_QUIET", "1")
    _progress.Progress(10, label="x", every=0.0, stream=stream).update(10)
    _progress.Progress(10, label="x", stream=stream).note("stage")
    _progress.Progress(None, label="x", every=0.0, stream=stream).update(3, finalize=True)
    monkeypatch.delenv("KERASVIZ_QUIET")
    _progress.Progress(10, label="x", enabled=False, every=0.0, stream=stream).update(10)
    _progress.Progress(10, done=10, every=0.0, stream=stream).update(10)  # nothing left to do
    assert stream.getvalue() == ""


def test_lines_units_and_notes(monkeypatch):
    monkeypatch.delenv("KERASVIZ_QUIET", raising=False)
    stream = io.StringIO()
    bar = _progress.Progress(4, label="steps", every=1e9, stream=stream, unit="step")
    bar.started -= 2.0
    bar.update(1)  # the first line is printed at once, then one every `every` seconds
    bar.update(2)
    bar.update(4)  # the last line always
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()  # not a terminal
    assert len(lines) == 2 and lines[0].startswith("steps  1/4 [######")
    assert "step/s" in lines[1] and lines[1].endswith("ETA 0:00"), lines
    bar.note("filters")
    assert stream.getvalue().endswith("[steps] filters\n")


def test_terminal_redraws_in_place(monkeypatch):
    monkeypatch.delenv("KERASVIZ_QUIET", raising=False)
    stream = Tty()
    bar = _progress.Progress(3, label="job", stream=stream)
    bar.update(1)
    bar.update(3)
    text = stream.getvalue()
    assert text.startswith("\rjob  1/3") and text.count("\n") == 1 and text.endswith("\n")
    early = Tty()
    bar = _progress.Progress(10, label="stream", stream=early)
    bar.update(4, finalize=True)  # a stream that ended before its announced total
    assert early.getvalue().startswith("\rstream  4/10") and early.getvalue().endswith("\n")


def test_unknown_total_counts_without_bar_or_eta(monkeypatch):
    """A stream of unknown length (a tf.data.Dataset without cardinality)."""
    monkeypatch.delenv("KERASVIZ_QUIET", raising=False)
    stream = io.StringIO()
    bar = _progress.Progress(None, label="features", every=1e9, stream=stream)
    bar.update(4)  # the first line at once
    bar.update(8)  # not final: the length is unknown
    bar.update(10, finalize=True)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("features  4  "), lines
    assert lines[1].startswith("features  10  ") and "ETA" not in lines[1] and "[" not in lines[1]


def test_clock():
    assert _progress.clock(5) == "0:05" and _progress.clock(3725) == "1:02:05"
