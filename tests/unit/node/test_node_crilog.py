"""CRI container logs: the writer (containerd's pkg/cri/io/logger_test.go TestRedirectLogs table,
run against crilog.split_output and against the real writer processes, crilog.c and its Python
twin) and the reader (the kubelet's pkg/kubelet/kuberuntime/logs/logs_test.go: TestLogOptions,
TestReadLogs, TestParseLog, TestWriteLogs, TestWriteLogsWithBytesLimit,
TestReadLogsLimitsWithTimestamps), plus the pods/log query (ValidatePodLogOptions)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from knet.api import podlogoptions
from knet.node import crilog, crilogwriter
from knet.node.crilog import FULL, PARTIAL, STDERR, STDOUT, LogOptions, Message, Stamp

BUF = 4096  # containerd's defaultBufSize
MAX = BUF * 4
A = "a"

# (description, input, max length, [(tag, content)]): containerd's TestRedirectLogs.
REDIRECT_CASES = [
    ("stdout log", "test stdout log 1\ntest stdout log 2\n", MAX,
     [(FULL, "test stdout log 1"), (FULL, "test stdout log 2")]),
    ("log ends without newline", "test stderr log 1\ntest stderr log 2", MAX,
     [(FULL, "test stderr log 1"), (PARTIAL, "test stderr log 2")]),
    ("log length equal to buffer size", A * BUF + "\n" + A * BUF + "\n", MAX, [(FULL, A * BUF), (FULL, A * BUF)]),
    ("log length longer than buffer size", A * (BUF * 2 + 10) + "\n" + A * (BUF * 2 + 20) + "\n", MAX,
     [(FULL, A * (BUF * 2 + 10)), (FULL, A * (BUF * 2 + 20))]),
    ("log length equal to max length", A * MAX + "\n" + A * MAX + "\n", MAX, [(FULL, A * MAX), (FULL, A * MAX)]),
    ("log length exceed max length by 1", A * (MAX + 1) + "\n" + A * (MAX + 1) + "\n", MAX,
     [(PARTIAL, A * MAX), (FULL, A), (PARTIAL, A * MAX), (FULL, A)]),
    ("log length longer than max length", A * (MAX * 2) + "\n" + A * (MAX * 2 + 1) + "\n", MAX,
     [(PARTIAL, A * MAX), (FULL, A * MAX), (PARTIAL, A * MAX), (PARTIAL, A * MAX), (FULL, A)]),
    ("max length shorter than buffer size", A * (BUF * 3 // 2 + 10) + "\n" + A * (BUF * 3 // 2 + 20) + "\n", BUF // 2,
     [(PARTIAL, A * (BUF // 2))] * 3 + [(FULL, A * 10)] + [(PARTIAL, A * (BUF // 2))] * 3 + [(FULL, A * 20)]),
    ("log length longer than max length, and (maxLen % defaultBufSize != 0)",
     A * (BUF * 2 + 10) + "\n" + A * (BUF * 2 + 20) + "\n", BUF * 3 // 2,
     [(PARTIAL, A * (BUF * 3 // 2)), (FULL, A * (BUF // 2 + 10)), (PARTIAL, A * (BUF * 3 // 2)),
      (FULL, A * (BUF // 2 + 20))]),
    ("no limit if max length is 0", A * (BUF * 10 + 10) + "\n" + A * (BUF * 10 + 20) + "\n", 0,
     [(FULL, A * (BUF * 10 + 10)), (FULL, A * (BUF * 10 + 20))]),
    ("no limit if max length is negative", A * (BUF * 10 + 10) + "\n" + A * (BUF * 10 + 20) + "\n", -1,
     [(FULL, A * (BUF * 10 + 10)), (FULL, A * (BUF * 10 + 20))]),
    ("log length longer than buffer size with tailing \\r\\n", A * (BUF - 1) + "\r\n" + A * (BUF - 1) + "\r\n", -1,
     [(FULL, A * (BUF - 1)), (FULL, A * (BUF - 1))]),
]
RECORD = re.compile(rb"^(\S+) (stdout|stderr) ([FP]) (.*)$", re.S)


def _records(data: bytes) -> list[tuple[str, str, str]]:
    out = []
    for line in data.split(b"\n")[:-1]:
        m = RECORD.match(line)
        assert m, line
        crilog.parse_time(m.group(1))  # a valid RFC3339Nano time
        out.append((m.group(2).decode(), m.group(3).decode(), m.group(4).decode()))
    return out


@pytest.mark.parametrize(("desc", "text", "max_len", "want"), REDIRECT_CASES, ids=[c[0] for c in REDIRECT_CASES])
def test_split_output_as_containerds_redirect_logs(desc, text, max_len, want):
    # Fed in odd-sized reads, as a pipe hands them over.
    data, pending, got = text.encode(), b"", []
    for i in range(0, len(data), 1000):
        records, pending = crilog.split_output(pending, data[i:i + 1000], max_len)
        got += records
    got += crilog.split_output(pending, b"", max_len, eof=True)[0]
    assert [(t, c.decode()) for t, c in got] == want


def _writers() -> list[list[str]]:
    built = crilogwriter._build(crilogwriter.Path(os.environ.get("TMPDIR", "/tmp")) / "knet-test-crilog")
    assert built is not None, "crilog.c must build (a C compiler is a dependency: scripts/install.sh)"
    return [built, [sys.executable, "-I", "-S", crilogwriter.__file__]]


WRITERS = _writers()
WRITER_IDS = ["c", "python"]


@pytest.mark.parametrize("writer", WRITERS, ids=WRITER_IDS)
@pytest.mark.parametrize(("desc", "text", "max_len", "want"), [c for c in REDIRECT_CASES if c[2] > 0],
                         ids=[c[0] for c in REDIRECT_CASES if c[2] > 0])
def test_the_writer_process_writes_records_as_containerd(tmp_path, writer, desc, text, max_len, want):
    (tmp_path / "in").write_text(text)
    log = tmp_path / "0.log"
    code = subprocess.run([*writer, str(log), str(max_len), "sh", "-c", f"cat {tmp_path / 'in'} >&2"]).returncode
    assert code == 0
    assert _records(log.read_bytes()) == [(STDERR, t, c) for t, c in want]


@pytest.mark.parametrize("writer", WRITERS, ids=WRITER_IDS)
def test_the_writer_keeps_streams_apart_stamps_each_line_and_exits_as_its_command(tmp_path, writer):
    log = tmp_path / "0.log"
    script = "echo one; echo two >&2; sleep 0.3; echo three; exit 7"
    before = Stamp.now()
    assert subprocess.run([*writer, str(log), "16384", "sh", "-c", script]).returncode == 7
    after = Stamp.now()
    lines = log.read_bytes().splitlines(keepends=True)
    msgs = [crilog.parse_cri(line) for line in lines]
    assert sorted((m.stream, m.log) for m in msgs) == [(STDERR, b"two\n"), (STDOUT, b"one\n"), (STDOUT, b"three\n")]
    three = next(m for m in msgs if m.log == b"three\n")
    one = next(m for m in msgs if m.log == b"one\n")
    # Stamped when printed (not when read back): the sleep shows between the lines' times.
    assert before.ns <= one.timestamp.ns < three.timestamp.ns <= after.ns
    assert three.timestamp.ns - one.timestamp.ns >= 250_000_000
    # A signal that ended the command ends the writer the same way (the kubelet's exit code).
    proc = subprocess.run([*writer, str(log), "16384", "sh", "-c", "kill -KILL $$"])
    assert proc.returncode == -signal.SIGKILL
    # A command that does not exist: 127 and the reason in the log, as a shell says it.
    assert subprocess.run([*writer, str(log), "16384", "/nonexistent/cmd"]).returncode == 127
    assert b"stderr F crilog: exec /nonexistent/cmd" in log.read_bytes()


@pytest.mark.parametrize("writer", WRITERS, ids=WRITER_IDS)
def test_the_writer_outlives_a_sigterm_to_its_group_to_write_the_last_words(tmp_path, writer):
    """As a kubelet's killpg of a host process: the command gets SIGTERM and says goodbye; the
    writer (same group) ignores it and records the goodbye, then exits as the command did."""
    log = tmp_path / "0.log"
    script = "trap 'echo goodbye; exit 143' TERM; echo ready; while :; do sleep 0.05; done"
    proc = subprocess.Popen([*writer, str(log), "16384", "sh", "-c", script], start_new_session=True)
    deadline = time.time() + 10
    while b"ready" not in (log.read_bytes() if log.exists() else b"") and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(10) == 143
    msgs = list(map(crilog.parse_cri, log.read_bytes().splitlines(keepends=True)))
    # (sh also says on stderr that its `sleep` was Terminated: the group got the signal)
    assert [m.log for m in msgs if m.stream == STDOUT] == [b"ready\n", b"goodbye\n"]


@pytest.mark.parametrize("writer", WRITERS, ids=WRITER_IDS)
def test_the_gate_holds_the_command_until_stdin_closes(tmp_path, writer):
    log = tmp_path / "0.log"
    proc = subprocess.Popen([*writer, "-g", str(log), "16384", "sh", "-c", "echo started; cat"],
                            stdin=subprocess.PIPE)
    time.sleep(0.3)
    assert not log.exists() or log.read_bytes() == b""  # not started yet
    proc.stdin.close()
    assert proc.wait(10) == 0  # started, its stdin /dev/null (cat ends at once)
    assert crilog.parse_cri(log.read_bytes()).log == b"started\n"


# -- the kubelet's logs_test.go --

def test_log_options():
    now = Stamp.now()
    assert LogOptions.from_pod_log_options(now=now) == LogOptions(tail=-1, bytes=-1)
    assert LogOptions.from_pod_log_options(tail_lines=8, now=now) == LogOptions(tail=8, bytes=-1)
    assert LogOptions.from_pod_log_options(limit_bytes=64, now=now) == LogOptions(tail=-1, bytes=64)
    assert LogOptions.from_pod_log_options(since_time=now, now=now) == LogOptions(since=now)
    assert LogOptions.from_pod_log_options(since_seconds=10, now=now) == LogOptions(since=now + -10)


DOCKER_LOG = (b'{"log":"line1\\n","stream":"stdout","time":"2020-09-27T11:18:01.00000000Z"}\n'
              b'{"log":"line2\\n","stream":"stdout","time":"2020-09-27T11:18:02.00000000Z"}\n'
              b'{"log":"line3\\n","stream":"stdout","time":"2020-09-27T11:18:03.00000000Z"}\n')
SINCE = crilog.parse_time("2020-09-27T11:18:02Z")
READ_CASES = [
    ("default pod log options should output all lines", {}, "line1\nline2\nline3\n"),
    ("using TailLines 2 should output last 2 lines", {"tail_lines": 2}, "line2\nline3\n"),
    ("using TailLines 4 should output all lines when the log has less than 4 lines", {"tail_lines": 4},
     "line1\nline2\nline3\n"),
    ("using TailLines 0 should output nothing", {"tail_lines": 0}, ""),
    ("using LimitBytes 9 should output first 9 bytes", {"limit_bytes": 9}, "line1\nlin"),
    ("using LimitBytes 100 should output all bytes when the log has less than 100 bytes", {"limit_bytes": 100},
     "line1\nline2\nline3\n"),
    ("using LimitBytes 0 should output nothing", {"limit_bytes": 0}, ""),
    ("using SinceTime should output lines with a time on or after the specified time", {"since_time": SINCE},
     "line2\nline3\n"),
    ("using SinceTime now should output nothing", {"since_time": Stamp.now()}, ""),
    ("using follow should output all log lines", {"follow": True}, "line1\nline2\nline3\n"),
    ("using follow combined with TailLines 2 should output the last 2 lines", {"follow": True, "tail_lines": 2},
     "line2\nline3\n"),
    ("using follow combined with SinceTime should output lines with a time on or after the specified time",
     {"follow": True, "since_time": SINCE}, "line2\nline3\n"),
]


@pytest.mark.parametrize(("desc", "options", "expected"), READ_CASES, ids=[c[0] for c in READ_CASES])
@pytest.mark.parametrize("fmt", ["docker", "cri"])
async def test_read_logs(desc, options, expected, fmt):
    data = DOCKER_LOG if fmt == "docker" else b"".join(
        b"2020-09-27T11:18:0%dZ stdout F line%d\n" % (i, i) for i in (1, 2, 3))
    out: list[tuple[str, bytes]] = []

    async def write(stream: str, text: bytes) -> None:
        out.append((stream, text))

    # Following a container that is not running: what is there, then the end (as upstream's test).
    await crilog.read_logs(io.BytesIO(data), LogOptions.from_pod_log_options(**options), write, lambda: False, poll=0)
    assert all(stream == STDOUT for stream, _ in out)
    assert b"".join(text for _, text in out).decode() == expected


async def test_follow_reads_what_a_running_container_writes_until_it_stops(tmp_path):
    log = tmp_path / "0.log"
    log.write_bytes(crilog.encode(Stamp.now(), STDOUT, FULL, b"first"))
    running, out = True, []

    async def write(stream: str, text: bytes) -> None:
        out.append(text)

    with open(log, "rb") as f:
        task = asyncio.ensure_future(crilog.read_logs(f, LogOptions(follow=True), write, lambda: running, poll=0.01))
        await asyncio.sleep(0.1)
        record = crilog.encode(Stamp.now(), STDERR, FULL, b"second")
        with open(log, "ab") as w:  # a record half written is not read until it is whole
            w.write(record[:10])
            w.flush()
            await asyncio.sleep(0.1)
            assert out == [b"first\n"]
            w.write(record[10:])
        await asyncio.sleep(0.1)
        running = False
        await asyncio.wait_for(task, 5)
    assert out == [b"first\n", b"second\n"]


PARSE_TS = crilog.parse_time("2016-10-20T18:39:20.57606443Z")
PARSE_CASES = [
    (b'{"log":"docker stdout test log","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}\n',
     Message(PARSE_TS, STDOUT, b"docker stdout test log")),
    (b'{"log":"docker stderr test log","stream":"stderr","time":"2016-10-20T18:39:20.57606443Z"}\n',
     Message(PARSE_TS, STDERR, b"docker stderr test log")),
    (b"2016-10-20T18:39:20.57606443Z stdout F cri stdout test log\n", Message(PARSE_TS, STDOUT, b"cri stdout test log\n")),
    (b"2016-10-20T18:39:20.57606443Z stderr F cri stderr test log\n", Message(PARSE_TS, STDERR, b"cri stderr test log\n")),
    (b"unsupported log format test log\n", None),
    (b"2016-10-20T18:39:20.57606443Z stdout P cri stdout partial test log\n",
     Message(PARSE_TS, STDOUT, b"cri stdout partial test log")),
    (b"2016-10-20T18:39:20.57606443Z stdout P:TAG1:TAG2 cri stdout partial test log\n",
     Message(PARSE_TS, STDOUT, b"cri stdout partial test log")),
]


@pytest.mark.parametrize(("line", "msg"), PARSE_CASES)
def test_parse_log(line, msg):
    if msg is None:
        with pytest.raises(ValueError):
            crilog.parser_for(line)
        return
    assert crilog.parser_for(line)(line) == msg


def test_write_logs():
    ts = Stamp(1234 * 1_000_000_000 + 43210)
    log = b"abcdefg\n"
    for stream, since, stamps, want in [
        (STDERR, None, False, (STDERR, log)),
        (STDOUT, None, False, (STDOUT, log)),
        (STDOUT, ts + 1, False, None),  # since is after timestamp
        (STDERR, None, True, (STDERR, ts.fixed().encode() + b" " + log)),
    ]:
        assert crilog.LogWriter(LogOptions(since=since, timestamps=stamps)).write(Message(ts, stream, log), True) == want
    assert ts.fixed() == "1970-01-01T00:20:34.000043210Z"  # RFC3339NanoFixed


def _limited(stdout_lines: int, stderr_lines: int, limit: int, stamps: bool) -> tuple[bytes, bytes]:
    ts = Stamp(1234 * 1_000_000_000 + 4321)
    w = crilog.LogWriter(LogOptions(bytes=limit, timestamps=stamps))
    out = {STDOUT: b"", STDERR: b""}
    for stream in [STDOUT] * stdout_lines + [STDERR] * stderr_lines:
        if w.remain <= 0:
            break
        name, text = w.write(Message(ts, stream, b"abcdefg\n"), True)
        out[name] += text
    return out[STDOUT], out[STDERR]


def test_write_logs_with_bytes_limit():
    ts = Stamp(1234 * 1_000_000_000 + 4321).fixed().encode()
    log = b"abcdefg\n"
    assert _limited(3, 0, 3, False) == (b"abc", b"")
    assert _limited(3, 0, len(log) + 3, False) == (b"abcdefg\nabc", b"")
    assert _limited(3, 0, 3 * len(log), False) == (log * 3, b"")
    assert _limited(0, 3, len(log) + 3, False) == (b"", b"abcdefg\nabc")
    assert _limited(1, 2, len(log) + 3, False) == (log, b"abc")
    assert _limited(3, 0, len(ts) + 1 + len(log) + 2, True) == (ts + b" " + log + ts[:2], b"")


def test_read_logs_limits_with_timestamps():
    """Partial records make one line with one timestamp (TestReadLogsLimitsWithTimestamps)."""
    line = "2022-10-29T16:10:22.592603036-05:00 stdout P {}\n"
    newline = "2022-10-29T16:10:22.592603036-05:00 stdout F \n"
    data = ("".join(line.format(i) for i in range(10000)) + newline) * 2
    out = b"".join(text for _, text in crilog.render(data.encode(), LogOptions(timestamps=True)))
    lines = out.splitlines()
    assert len(lines) == 2
    for one in lines:
        stamp, _, text = one.partition(b" ")
        assert stamp == b"2022-10-29T16:10:22.592603036-05:00"  # in the zone it was written in
        assert text.endswith(b"9999")


def test_tail_counts_records_and_ignores_an_unfinished_one():
    data = b"".join(crilog.encode(Stamp.now(), STDOUT, FULL, b"%d" % i) for i in range(5)) + b"2026-01-01T00:00:00Z stdo"
    start = crilog.tail_start(io.BytesIO(data), 2)
    assert data[:start].count(b"\n") == 3 and data[start - 1:start] == b"\n"
    assert [t for _, t in crilog.render(data, LogOptions(tail=2))] == [b"3\n", b"4\n"]
    assert crilog.tail_start(io.BytesIO(b""), 3) == 0


def test_times_round_trip_with_nanoseconds():
    stamp = crilog.parse_time("2026-12-05T06:49:55.271636792Z")
    assert stamp.nano() == "2026-12-05T06:49:55.271636792Z"
    assert crilog.parse_time("2026-12-05T06:49:55.2Z").fixed() == "2026-12-05T06:49:55.200000000Z"
    assert crilog.parse_time("2026-12-05T06:49:55Z").nano() == "2026-12-05T06:49:55Z"
    assert crilog.parse_time("2026-12-05T08:49:55+02:00").ns == crilog.parse_time("2026-12-05T06:49:55Z").ns
    for bad in ("yesterday", "2026-12-05 06:49:55Z", "2026-13-05T06:49:55Z", "2026-12-05T06:49:55.1234567890Z"):
        with pytest.raises(ValueError):
            crilog.parse_time(bad)


# -- the pods/log query: decoding (400) and ValidatePodLogOptions (422) --

def test_pod_log_options_decode_as_the_apiserver():
    opts = podlogoptions.from_query({"follow": "TRUE", "previous": "0", "timestamps": "", "tailLines": "5",
                                     "limitBytes": "9223372036854775807", "sinceTime": "2026-12-05T06:00:00Z"})
    assert (opts.follow, opts.previous, opts.timestamps, opts.tail_lines) == (True, False, True, 5)
    assert opts.limit_bytes == (1 << 63) - 1 and opts.since_time == crilog.parse_time("2026-12-05T06:00:00Z")
    for query, message in [
        ({"sinceSeconds": "abc"}, 'strconv.ParseInt: parsing "abc": invalid syntax'),
        ({"limitBytes": "9223372036854775808"}, 'strconv.ParseInt: parsing "9223372036854775808": value out of range'),
        ({"sinceTime": "yesterday"}, 'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00"'),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            podlogoptions.from_query(query)


def test_validate_pod_log_options():
    def errs(**kw):
        return [str(e) for e in podlogoptions.validate(podlogoptions.PodLogOptions(**kw))]

    assert errs() == []
    assert errs(tail_lines=-1) == ["tailLines: Invalid value: -1: must be greater than or equal to 0"]
    assert errs(limit_bytes=0) == ["limitBytes: Invalid value: 0: must be greater than 0"]
    assert errs(since_seconds=0) == ["sinceSeconds: Invalid value: 0: must be greater than 0"]
    assert errs(since_seconds=5, since_time=Stamp.now()) == [
        ": Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"]
