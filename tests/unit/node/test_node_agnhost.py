"""agnhost's pure parts: pflag command lines, Go formats, netexec's answers, connect's outcomes,
porter's env, the dns subcommands, cobra's refusals."""

import socket
import time

import pytest

from knet.node.agnhost import connect, netexec, porter, simple
from knet.node.agnhost import flags as fl
from knet.node.agnhost.golang import go_json, parse_duration, remote_addr
from knet.node.agnhost.httpserve import parse_request
from knet.node.agnhost.main import check


# -- Go's time.ParseDuration (a subset of parseDurationTests in Go's src/time/time_test.go) ----
@pytest.mark.parametrize("text,seconds", [
    ("0", 0), ("5s", 5), ("30s", 30), ("1478s", 1478), ("-5s", -5), ("+5s", 5), ("-0", 0), ("+0", 0),
    ("5.0s", 5), ("5.6s", 5.6), ("5.s", 5), (".5s", 0.5), ("1.004s", 1.004), ("100.00100s", 100.001),
    ("10ns", 10e-9), ("11us", 11e-6), ("12\u00b5s", 12e-6), ("12\u03bcs", 12e-6), ("13ms", 0.013),
    ("15m", 900), ("16h", 57600), ("3h30m", 12600), ("10.5s4m", 250.5), ("-2m3.4s", -123.4),
    ("1h2m3s4ms5us6ns", 3723.004005006), ("39h9m14.425s", 140954.425),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text,message", [
    ("", 'time: invalid duration ""'), ("3", 'time: missing unit in duration "3"'),
    ("-", 'time: invalid duration "-"'), ("s", 'time: invalid duration "s"'), (".", 'time: invalid duration "."'),
    ("-.", 'time: invalid duration "-."'), (".s", 'time: invalid duration ".s"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
])
def test_parse_duration_errors(text, message):
    with pytest.raises(ValueError) as err:
        parse_duration(text)
    assert str(err.value) == message


# -- pflag ------------------------------------------------------------------------------------
NETEXEC = netexec.FLAGS


@pytest.mark.parametrize("argv,http,udp", [
    ([], 8080, 8081),
    (["--http-port=9000"], 9000, 8081),
    (["--http-port", "9000", "--udp-port", "9001"], 9000, 9001),
    (["--udp-port=-1"], 8080, -1),
    (["--udp-port", "-1"], 8080, -1),            # a negative value is still the flag's value
    (["--http-port=0x1F90"], 8080, 8081),        # strconv.ParseInt base 0
])
def test_netexec_ports_parse_as_pflag(argv, http, udp):
    values, args = fl.parse(NETEXEC, argv)
    assert (values["http-port"], values["udp-port"], args) == (http, udp, [])


def test_booleans_never_take_the_next_word():
    flags = [fl.Flag("http", fl.BOOL, True), fl.Flag("udp", fl.BOOL, False), fl.Flag("port", fl.INT, 9376)]
    assert fl.parse(flags, ["--udp", "--http=false", "--port", "53"]) == \
        ({"http": False, "udp": True, "port": 53}, [])
    assert fl.parse(flags, ["--http", "false"])[1] == ["false"]  # a positional word, refused by cobra later
    assert fl.parse(flags, ["--", "--udp"]) == ({"http": True, "udp": False, "port": 9376}, ["--udp"])


@pytest.mark.parametrize("argv,message", [
    (["--nope"], "unknown flag: --nope"),
    (["--http-port"], "flag needs an argument: --http-port"),
    (["--http-port=abc"], 'invalid argument "abc" for "--http-port" flag: strconv.ParseInt: parsing "abc": '
                          "invalid syntax"),
    (["-http-port=1"], "unknown shorthand flag: 'h' in -http-port=1"),
])
def test_flag_errors_read_as_cobra(argv, message):
    with pytest.raises(fl.FlagError) as err:
        fl.parse(NETEXEC, argv)
    assert str(err.value) == message


def test_duration_flag():
    values, args = fl.parse(connect.FLAGS, ["10.0.0.1:80", "--timeout", "1.5s", "--protocol=udp"])
    assert values["timeout"] == 1.5 and values["protocol"] == "udp" and args == ["10.0.0.1:80"]
    with pytest.raises(fl.FlagError) as err:
        fl.parse(connect.FLAGS, ["--timeout=5"])
    assert str(err.value) == 'invalid argument "5" for "--timeout" flag: time: missing unit in duration "5"'


# -- cobra's dispatch -------------------------------------------------------------------------
@pytest.mark.parametrize("argv,code,start", [
    (["frobnicate"], 1, 'Error: unknown command "frobnicate" for "agnhost"'),
    (["netexec", "--bogus"], 1, "Error: unknown flag: --bogus\nUsage:\n  agnhost netexec [flags]"),
    (["netexec", "extra"], 1, "Error: accepts at most 0 arg(s), received 1"),
    (["serve-hostname", "--http", "false"], 1, "Error: accepts at most 0 arg(s), received 1"),
    (["connect"], 1, "Error: accepts 1 arg(s), received 0"),
    (["pause", "--help"], 0, "Pauses the execution"),
    ([], 0, "Usage:\n  agnhost [command]"),
])
def test_cobra_refusals(argv, code, start):
    got = check(argv)
    assert got is not None and got[0] == code and got[1].startswith(start), got


def test_valid_command_lines_run():
    assert check(["netexec", "--http-port", "8080", "--udp-port=-1", "--delay-shutdown", "5"]) is None
    assert check(["connect", "s-x:80", "--timeout=1s"]) is None


# -- Go formats -------------------------------------------------------------------------------
def test_go_json_sorts_and_escapes_like_encoding_json():
    assert go_json({"output": "<a&b>\n", "error": "exit status 1"}) == \
        '{"error":"exit status 1","output":"\\u003ca\\u0026b\\u003e\\n"}'


def test_remote_addr():
    assert remote_addr("::ffff:10.244.1.5", 43120) == "10.244.1.5:43120"
    assert remote_addr("fd00::5", 80) == "[fd00::5]:80"


# -- netexec's HTTP answers (test/images/agnhost/netexec/netexec.go) ---------------------------
def get(state, target, method="GET", body=b"", headers=()):
    r = parse_request(method, target, [("Host", "x"), *headers], body, "10.244.1.7:5555")
    return netexec.handle(state, r)


def test_hostname_clientip_echo():
    state = netexec.State()
    assert get(state, "/hostname").body.decode() == socket.gethostname()
    assert get(state, "/hostName").body.decode() == socket.gethostname()
    assert get(state, "/clientip").body == b"10.244.1.7:5555"
    r = get(state, "/echo?msg=hello%20world")
    assert (r.status, r.body) == (200, b"hello world")
    r = get(state, "/echo?msg=gone&code=404")
    assert (r.status, r.body) == (404, b"gone")
    r = get(state, "/echo?msg=x&code=abc")
    assert (r.status, r.body) == (200, b"argument 'code' must be an integer or empty, got \"abc\"\n")
    r = get(state, "/echo", "POST", b"msg=posted", [("Content-Type", "application/x-www-form-urlencoded")])
    assert r.body == b"posted"


def test_root_and_unknown_paths_answer_the_time():
    state = netexec.State()
    for path in ("/", "/anything/else"):
        body = get(state, path).body.decode()
        assert body.startswith(f"NOW: {time.strftime('%Y-')}") and body.endswith(("UTC", time.strftime("%Z")))


def test_an_nginx_or_httpd_stand_in_answers_its_index_page_at_root_only():
    # `kubectl create deployment web --image=nginx` then curl: nginx's page (615 bytes), as on any cluster
    state = netexec.State(index_page="nginx")
    for path in ("/", "/index.html"):
        r = get(state, path)
        assert r.status == 200 and b"<title>Welcome to nginx!</title>" in r.body and len(r.body) == 615
        assert ("Content-Type", "text/html") in r.headers
    assert get(state, "/hostname").body.decode() == socket.gethostname()  # what labs and tests ask
    assert get(netexec.State(index_page="httpd"), "/").body == b"<html><body><h1>It works!</h1></body></html>\n"
    assert get(netexec.State(index_page="bogus"), "/").body.startswith(b"NOW: ")


def test_healthz_and_readyz_follow_udp_readiness_and_sigterm():
    state = netexec.State()
    assert get(state, "/healthz").status == 412 and get(state, "/readyz").status == 412
    state.ready.set()
    assert get(state, "/healthz").status == 200
    assert (get(state, "/readyz").status, get(state, "/readyz").body) == (200, b"ok")
    state.sigterm.set()  # healthy (don't kill it) but not ready (take it out of endpoints)
    assert get(state, "/healthz").status == 200
    assert (get(state, "/readyz").status, get(state, "/readyz").body) == (503, b"shutting down")


def test_exit_and_shutdown():
    exits = []
    graceful = []
    state = netexec.State(exit=exits.append, graceful_exit=lambda code, t: graceful.append((code, t)))
    get(state, "/exit?code=3")
    get(state, "/exit?code=4&timeout=2s")
    get(state, "/shutdown")
    assert exits == [3, 0] and graceful == [(4, 2.0)]
    r = get(state, "/exit?timeout=later")
    assert r.body == b"argument 'timeout' must be a valid golang duration or empty, got \"later\"\n"
    r = get(state, "/exit?code=x")
    assert r.body == b"argument 'code' must be an integer [0-127] or empty, got \"x\"\n"
    assert exits == [3, 0]


def test_shell_answers_output_and_error():
    state = netexec.State()
    r = get(state, "/shell?cmd=echo%20out%3B%20echo%20err%201%3E%262%3B%20exit%203")
    assert (r.status, r.body) == (200, b'{"error":"exit status 3","output":"out\\nerr\\n"}')
    assert get(state, "/shell?shellCommand=true").body == b"{}"
    assert netexec.shell_error(-9) == "signal: killed"


def test_redirect():
    state = netexec.State()
    r = get(state, "/redirect?location=/echo%3Fmsg%3Dfoobar&code=307")
    assert r.status == 307 and ("Location", "/echo?msg=foobar") in r.headers
    assert r.body == b'<a href="/echo?msg=foobar">Temporary Redirect</a>.\n\n'
    r = get(state, "/redirect?location=hostname")
    assert r.status == 302 and ("Location", "/hostname") in r.headers


def test_header():
    state = netexec.State()
    r = get(state, "/header", headers=[("X-Forwarded-For", "1.2.3.4"), ("user-agent", "t")])
    assert r.body == b'{"User-Agent":["t"],"X-Forwarded-For":["1.2.3.4"]}'
    assert get(state, "/header?key=x-forwarded-for", headers=[("X-Forwarded-For", "1.2.3.4")]).body == b"1.2.3.4"


def test_http_override_answers_every_request_as_that_path():
    state = netexec.State(http_override="/echo?msg=overridden")
    assert get(state, "/hostname").body == b"overridden"


def test_upload(tmp_path):
    state = netexec.State(upload_dir=str(tmp_path))
    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\nhello upload\r\n--{boundary}--\r\n").encode()
    r = get(state, "/upload", "POST", body, [("Content-Type", f"multipart/form-data; boundary={boundary}")])
    assert r.status == 201
    name = r.body.decode().split('"output":"')[1].rstrip('"}')
    assert name.startswith(str(tmp_path / "upload")) and open(name).read() == "hello upload"
    assert get(state, "/upload", "POST").body == b'{"error":"Unable to upload file."}'
    missing = netexec.State(upload_dir=str(tmp_path / "absent"))
    r = get(missing, "/upload", "POST", body, [("Content-Type", f"multipart/form-data; boundary={boundary}")])
    assert r.body == b'{"error":"Unable to open file for write"}'


@pytest.mark.parametrize("target,message", [
    ("/dial?host=1.2.3.4&port=80", "request parameter not specified. <nil>\n"),
    ("/dial?request=hostname&host=1.2.3.4&port=80&tries=x",
     'tries parameter is invalid. strconv.Atoi: parsing "x": invalid syntax\n'),
    ("/dial?request=hostname&host=1.2.3.4&port=80&protocol=icmp", "unsupported protocol. icmp\n"),
    ("/dial?request=hostname&host=1.2.3.4&port=http-alt-nope", "host and/or port param are invalid. "
                                                               "address 1.2.3.4:http-alt-nope: unknown port\n"),
])
def test_dial_refuses_bad_parameters_with_400(target, message):
    r = netexec.handle(netexec.State(), parse_request("GET", target, [], b"", "c:1"))
    assert (r.status, r.body.decode()) == (400, message)


def test_udp_protocol():
    assert netexec.udp_answer("hostname\n", "1.2.3.4:5") == socket.gethostname()
    assert netexec.udp_answer("echo Hello", "1.2.3.4:5") == "hello"   # upstream lowercases what it reads
    assert netexec.udp_answer("clientip", "1.2.3.4:5") == "1.2.3.4:5"
    assert netexec.udp_answer("what", "1.2.3.4:5") is None           # no answer at all


# -- connect ----------------------------------------------------------------------------------
def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_connect_outcomes_on_loopback():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        assert connect.attempt([f"127.0.0.1:{listener.getsockname()[1]}", "--timeout=2s"]) == (0, "")
    finally:
        listener.close()
    assert connect.attempt([f"127.0.0.1:{_closed_port()}", "--timeout", "2s"]) == (1, "REFUSED\n")
    assert connect.attempt(["127.0.0.1"]) == (1, "UNKNOWN: address 127.0.0.1: missing port in address\n")
    code, err = connect.attempt(["no-such-host.invalid:80", "--timeout=2s"])
    assert code == 1 and err.startswith("DNS: lookup no-such-host.invalid")
    assert connect.attempt(["127.0.0.1:80", "--protocol=icmp"]) == (1, "Unsupported protocol\nicmp")
    code, err = connect.attempt([f"127.0.0.1:{_closed_port()}", "--protocol=udp", "--timeout=2s"])
    assert code == 1 and err.startswith("REFUSED: read udp 127.0.0.1:") and err.endswith("connection refused\n")


def test_connect_udp_answered():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(2)
    import threading

    def answer():
        data, addr = server.recvfrom(100)
        assert data == b"hostname\n"
        server.sendto(b"pod-a", addr)
    t = threading.Thread(target=answer)
    t.start()
    try:
        assert connect.attempt([f"127.0.0.1:{server.getsockname()[1]}", "--protocol=udp", "--timeout=2s"]) == (0, "")
    finally:
        t.join()
        server.close()


# -- porter, dns ------------------------------------------------------------------------------
def test_porter_reads_its_servers_from_the_environment():
    env = {"PATH": "/bin", "SERVE_PORT_9001": "foo", "SERVE_TCP_PORT_9002": "bar", "SERVE_UDP_PORT_9003": "u",
           "SERVE_TLS_PORT_9443": "tls", "SERVE_SCTP_PORT_9004": "s"}
    assert porter.servers(env) == [("tcp", "9001", "foo"), ("tcp", "9002", "bar"), ("udp", "9003", "u"),
                                   ("tls", "9443", "tls"), ("sctp", "9004", "s")]
    r = porter.answer("foo", True, parse_request("POST", "/", [], b"", "c:1"))
    assert r.body == b'{"Body":"foo","Method":"POST"}' and ("Content-Type", "application/json") in r.headers


RESOLV = "search ns1.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"


def test_dns_subcommands_read_resolv_conf_as_upstream():
    assert simple.dns_suffix(RESOLV) == "ns1.svc.cluster.local,svc.cluster.local,cluster.local"
    assert simple.dns_server_list(RESOLV) == "10.96.0.10"
    with pytest.raises(RuntimeError, match="Could not find DNS search list!"):
        simple.dns_suffix("nameserver 1.1.1.1\n")


# -- liveness, test-webserver -----------------------------------------------------------------
def test_liveness_is_healthy_for_ten_seconds():
    from knet.node.agnhost import liveness

    def at(path, age):
        return liveness.answer(parse_request("GET", path, [], b"", "c:1"), 100.0, 100.0 + age)
    assert (at("/healthz", 3).status, at("/healthz", 3).body) == (200, b"ok")
    late = at("/healthz", 10.5)
    assert late.status == 500 and late.body.startswith(b"error: 10.5")
    assert at("/started", 2.5).body == b"2.500000000s"
    r = at("/redirect?loc=%2Fhealthz", 1)
    assert r.status == 302 and ("Location", "/healthz") in r.headers
    assert at("/nope", 1).status == 404
    r = at("/sleep-headers?code=503", 0)
    assert (r.status, r.body) == (503, b"Slept for 0 secs\n")
    assert at("/slow-response?size=2&code=200", 0).body.__len__() == 2048
    with pytest.raises(liveness.Disconnect):
        at("/disconnect-headers", 0)


def test_test_webserver_serves_files_and_listings(tmp_path):
    from knet.node.agnhost import testwebserver
    (tmp_path / "dir").mkdir()
    (tmp_path / "index.txt").write_text("hello")

    def get_(path):
        return testwebserver.answer(parse_request("GET", path, [], b"", "c:1"), str(tmp_path))
    r = get_("/index.txt")
    assert (r.status, r.body) == (200, b"hello") and ("Access-Control-Allow-Origin", "*") in r.headers
    listing = get_("/").body.decode()
    assert '<a href="dir/">dir/</a>' in listing and '<a href="index.txt">index.txt</a>' in listing
    assert get_("/missing").status == 404
    assert get_("/../../etc/passwd").status == 404  # never above the served root
    r = get_("/dir")
    assert r.status == 301 and ("Location", "dir/") in r.headers
