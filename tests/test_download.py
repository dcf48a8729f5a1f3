"""Tests of mlipft.download against a local HTTPS server on 127.0.0.1 (no other network; its
self-signed certificate is made with the openssl command line once per session). Downloads go
through pooch (requests), which trusts the certificate through REQUESTS_CA_BUNDLE."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import ssl
import subprocess
import threading
import urllib.parse
from pathlib import Path

import pytest

from mlipft import download as dl

ROOT = Path(__file__).resolve().parents[1]
PAPER_SOURCES = ROOT / "config" / "sources" / "paper.yaml"
PAPER_LOCK = ROOT / "config" / "sources" / "paper.lock.tsv"

BODY = b"3\nLattice=\"1 0 0 0 1 0 0 0 1\" REF_energy=-1.0\n" + bytes(range(256)) * 40
SHA = hashlib.sha256(BODY).hexdigest()

# --------------------------------------------------------------------------- server


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output quiet
        pass

    def do_GET(self):  # noqa: N802
        srv = self.server
        path = urllib.parse.urlsplit(self.path).path
        with srv.lock:
            srv.hits[path] = srv.hits.get(path, 0) + 1
            n = srv.hits[path]
        route = srv.routes.get(path)
        if route is None:
            self._send(404, b"not found")
            return
        mode = route["mode"]
        body = route.get("body", BODY)
        if mode == "fail" and n <= route["times"]:
            self._send(500, b"boom")
        elif mode == "redirect":
            self.send_response(302)
            self.send_header("Location", route["to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif mode == "drop" and n <= route["times"]:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True  # server closes the socket mid-body
        elif mode == "html":
            self._send(200, b"<html>login</html>", ctype="text/html; charset=utf-8")
        elif mode == "corrupt" and n <= route["times"]:  # same length, other bytes
            self._send(200, body[:-1] + bytes([body[-1] ^ 1]))
        else:
            self._send(200, body)

    def _send(self, code, body, ctype="application/octet-stream"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="session")
def tls(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (cert, key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make the test server's certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def server(tls, monkeypatch):
    """An HTTPS server on 127.0.0.1, trusted by mlipft.download's downloads (requests)."""
    cert, key = tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    srv.daemon_threads = True
    srv.routes, srv.hits, srv.lock = {}, {}, threading.Lock()
    srv.base = f"https://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv(dl.LOCAL_DATA_ENV, raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)


def make_source(url, sid="sn2_train", dest="sup/sn2/train.xyz", **kw):
    return dl.Source(id=sid, url=url, dest=dest, kind=kw.pop("kind", "archive"),
                     licence=kw.pop("licence", "CC-BY-4.0"), description="test file", **kw)


def fetch(src, tmp_path, **kw):
    kw.setdefault("retries", 3)
    kw.setdefault("backoff", 0.0)
    kw.setdefault("timeout", 5.0)
    return dl.fetch(src, tmp_path / "raw", tmp_path / "lock.tsv", **kw)


def leftovers(directory: Path) -> list[Path]:
    """Temporary files: ours (.part, .tmp, .download) and pooch's (tmp* beside the destination)."""
    return [p for p in directory.rglob("*")
            if p.name.endswith((".part", ".tmp", ".download")) or p.name.startswith("tmp")]


# --------------------------------------------------------------------------- fetch


def test_download_records_sha256_in_lock(server, tmp_path):
    server.routes["/f.xyz"] = {"mode": "ok"}
    src = make_source(server.base + "/f.xyz")
    out = fetch(src, tmp_path)
    assert out == tmp_path / "raw" / "sup" / "sn2" / "train.xyz"
    assert out.read_bytes() == BODY
    lock = dl.read_lock(tmp_path / "lock.tsv")
    assert lock["sn2_train"] == dl.LockEntry("sn2_train", SHA, len(BODY), src.url)
    lines = (tmp_path / "lock.tsv").read_text().splitlines()
    assert lines[0] == "id\tsha256\tbytes\turl"
    assert not leftovers(tmp_path)


def test_second_fetch_is_a_noop(server, tmp_path):
    server.routes["/f.xyz"] = {"mode": "ok"}
    src = make_source(server.base + "/f.xyz")
    out = fetch(src, tmp_path)
    mtime, lock_text = out.stat().st_mtime_ns, (tmp_path / "lock.tsv").read_text()
    fetch(src, tmp_path)
    assert server.hits["/f.xyz"] == 1
    assert out.stat().st_mtime_ns == mtime
    assert (tmp_path / "lock.tsv").read_text() == lock_text


def test_lock_rows_stay_sorted(server, tmp_path):
    server.routes["/f.xyz"] = {"mode": "ok"}
    for sid in ("zeta", "alpha", "mid"):
        fetch(make_source(server.base + "/f.xyz", sid=sid, dest=f"{sid}.xyz"), tmp_path)
    ids = [ln.split("\t")[0] for ln in (tmp_path / "lock.tsv").read_text().splitlines()[1:]]
    assert ids == ["alpha", "mid", "zeta"]
    assert not leftovers(tmp_path)


def test_checksum_mismatch_raises_and_leaves_no_file(server, tmp_path):
    server.routes["/f.xyz"] = {"mode": "ok"}
    src = make_source(server.base + "/f.xyz")
    wrong = "0" * 64
    dl.write_lock(tmp_path / "lock.tsv", {src.id: dl.LockEntry(src.id, wrong, 1, src.url)})
    with pytest.raises(dl.ChecksumMismatch) as err:
        fetch(src, tmp_path)
    msg = str(err.value)
    assert "sn2_train" in msg and wrong in msg and SHA in msg and "train.xyz" in msg
    assert err.value.expected == wrong and err.value.actual == SHA
    assert not src.path(tmp_path / "raw").exists()
    assert not leftovers(tmp_path)
    assert dl.read_lock(tmp_path / "lock.tsv")[src.id].sha256 == wrong  # lock untouched


def test_existing_bad_file_is_moved_aside_and_refetched(server, tmp_path):
    server.routes["/f.xyz"] = {"mode": "ok"}
    src = make_source(server.base + "/f.xyz")
    fetch(src, tmp_path)
    final = src.path(tmp_path / "raw")
    final.write_bytes(b"corrupted")
    fetch(src, tmp_path)
    assert final.read_bytes() == BODY
    assert list(final.parent.glob("train.xyz.mismatch-*"))
    assert server.hits["/f.xyz"] == 2


def test_http_500_is_retried_with_exponential_backoff(server, tmp_path):
    server.routes["/f.xyz"] = {"mode": "fail", "times": 2}
    sleeps = []
    src = make_source(server.base + "/f.xyz")
    fetch(src, tmp_path, backoff=0.5, sleep=sleeps.append)
    assert server.hits["/f.xyz"] == 3
    assert sleeps == [0.5, 1.0]
    assert src.path(tmp_path / "raw").read_bytes() == BODY


def test_gives_up_after_retries(server, tmp_path):
    server.routes["/f.xyz"] = {"mode": "fail", "times": 99}
    src = make_source(server.base + "/f.xyz")
    with pytest.raises(dl.DownloadError, match="3 attempt"):
        fetch(src, tmp_path, retries=2)
    assert server.hits["/f.xyz"] == 3
    assert not src.path(tmp_path / "raw").exists()
    assert not leftovers(tmp_path)
    assert dl.read_lock(tmp_path / "lock.tsv") == {}


def test_http_404_is_not_retried(server, tmp_path):
    src = make_source(server.base + "/missing.xyz")
    with pytest.raises(dl.DownloadError, match="404"):
        fetch(src, tmp_path)
    assert server.hits["/missing.xyz"] == 1
    assert not leftovers(tmp_path)


def test_connection_dropped_mid_body_leaves_no_partial_file(server, tmp_path):
    server.routes["/f.xyz"] = {"mode": "drop", "times": 99}
    src = make_source(server.base + "/f.xyz")
    with pytest.raises(dl.DownloadError):
        fetch(src, tmp_path, retries=1)
    assert server.hits["/f.xyz"] == 2
    assert not src.path(tmp_path / "raw").exists()
    assert not leftovers(tmp_path)
    assert dl.read_lock(tmp_path / "lock.tsv") == {}


def test_connection_dropped_once_is_retried(server, tmp_path):
    server.routes["/f.xyz"] = {"mode": "drop", "times": 1}
    src = make_source(server.base + "/f.xyz")
    fetch(src, tmp_path)
    assert src.path(tmp_path / "raw").read_bytes() == BODY
    assert dl.read_lock(tmp_path / "lock.tsv")[src.id].sha256 == SHA


def test_html_landing_page_is_rejected(server, tmp_path):
    server.routes["/f.xyz"] = {"mode": "html"}
    src = make_source(server.base + "/f.xyz")
    with pytest.raises(dl.DownloadError, match="HTML"):
        fetch(src, tmp_path)
    assert not src.path(tmp_path / "raw").exists()


# --------------------------------------------------------------------------- digests (pooch)


def test_downloads_go_through_pooch_retrieve_with_the_locked_hash(server, tmp_path, monkeypatch):
    """First download: no known hash (trust on first use, recorded); later ones: the lock's."""
    import pooch

    calls = []
    real = pooch.retrieve
    monkeypatch.setattr(pooch, "retrieve", lambda url, known_hash=None, **kw: calls.append(known_hash)
                        or real(url, known_hash=known_hash, **kw))
    server.routes["/f.xyz"] = {"mode": "ok"}
    src = make_source(server.base + "/f.xyz")
    out = fetch(src, tmp_path)
    out.unlink()
    fetch(src, tmp_path)
    assert calls == [None, f"sha256:{SHA}"]
    assert out.read_bytes() == BODY and not leftovers(tmp_path)


def test_corrupted_transfer_is_retried(server, tmp_path):
    server.routes["/f.xyz"] = {"mode": "corrupt", "times": 1}
    src = make_source(server.base + "/f.xyz")
    dl.write_lock(tmp_path / "lock.tsv", {src.id: dl.LockEntry(src.id, SHA, len(BODY), src.url)})
    sleeps = []
    fetch(src, tmp_path, backoff=0.25, sleep=sleeps.append)
    assert server.hits["/f.xyz"] == 2 and sleeps == [0.25]
    assert src.path(tmp_path / "raw").read_bytes() == BODY and not leftovers(tmp_path)


def test_corrupted_file_is_refused(server, tmp_path):
    """Every attempt returns other bytes than the lock's: refused, nothing kept, lock untouched."""
    server.routes["/f.xyz"] = {"mode": "corrupt", "times": 99}
    src = make_source(server.base + "/f.xyz")
    dl.write_lock(tmp_path / "lock.tsv", {src.id: dl.LockEntry(src.id, SHA, len(BODY), src.url)})
    with pytest.raises(dl.ChecksumMismatch) as err:
        fetch(src, tmp_path, retries=2)
    corrupt = BODY[:-1] + bytes([BODY[-1] ^ 1])
    assert err.value.expected == SHA and err.value.actual == hashlib.sha256(corrupt).hexdigest()
    assert err.value.origin == src.url and err.value.path == src.path(tmp_path / "raw")
    assert server.hits["/f.xyz"] == 3
    assert not src.path(tmp_path / "raw").exists() and not leftovers(tmp_path)
    assert dl.read_lock(tmp_path / "lock.tsv")[src.id].sha256 == SHA


def test_changed_upstream_file_is_refused_after_the_first_download(server, tmp_path):
    server.routes["/f.xyz"] = {"mode": "ok"}
    src = make_source(server.base + "/f.xyz")
    fetch(src, tmp_path).unlink()
    server.routes["/f.xyz"] = {"mode": "ok", "body": b"the same name, other bytes"}
    with pytest.raises(dl.ChecksumMismatch, match="remove the 'sn2_train' row"):
        fetch(src, tmp_path, retries=0)
    assert dl.read_lock(tmp_path / "lock.tsv")[src.id].sha256 == SHA


def test_lock_is_written_once(server, tmp_path, monkeypatch):
    writes = []
    real = dl.write_lock
    monkeypatch.setattr(dl, "write_lock", lambda path, entries: writes.append(dict(entries)) or real(path, entries))
    server.routes["/f.xyz"] = {"mode": "ok"}
    src = make_source(server.base + "/f.xyz")
    out = fetch(src, tmp_path)
    fetch(src, tmp_path)  # in place: no-op
    out.unlink()
    fetch(src, tmp_path)  # downloaded again, checked against the row, which stays as it is
    assert len(writes) == 1 and set(writes[0]) == {src.id}
    assert server.hits["/f.xyz"] == 2


# --------------------------------------------------------------------------- https only


def _no_network(url, output_file, pooch, check_only=False):  # a downloader that must never be called
    raise AssertionError(f"network access to {url}")


@pytest.mark.parametrize("url,needle", [
    ("http://127.0.0.1:9/f.xyz", "plain http is refused"),
    ("HTTP://example.org/f.xyz", "plain http is refused"),
    ("ftp://example.org/f.xyz", "scheme ftp:// is refused; only https:// URLs and file:// paths"),
    ("example.org/f.xyz", "scheme (none) is refused"),
    ("https:///f.xyz", "an https URL needs a host"),
    ("file://otherhost/f.xyz", "a file URL is file:///absolute/path"),
])
def test_non_https_source_is_refused_before_any_access(tmp_path, url, needle):
    """Refused first, by id: no download, no lock, no local copy used (even one that is there)."""
    src = make_source(url, sid="sn2_train")
    local = tmp_path / "copy"
    local.mkdir()
    (local / src.basename).write_bytes(BODY)
    with pytest.raises(dl.InsecureSource) as err:
        dl.fetch(src, tmp_path / "raw", tmp_path / "lock.tsv", local_dirs=[local], downloader=_no_network)
    assert str(err.value).startswith(f"source 'sn2_train': refusing {url!r}: ")
    assert needle in str(err.value) and err.value.source_id == "sn2_train"
    assert isinstance(err.value, dl.DownloadError)
    assert not (tmp_path / "raw").exists() and not (tmp_path / "lock.tsv").exists()


def test_http_source_in_sources_file_is_refused_by_id(tmp_path, capsys):
    p = _write_sources(tmp_path / "s.yaml", "sources:" + GOOD_ENTRY.format(id="fine", dest="a.xyz")
                       + GOOD_ENTRY.format(id="plain", dest="b.xyz").replace("https://", "http://"))
    with pytest.raises(dl.SourcesError) as err:
        dl.load_sources(p)
    assert str(err.value) == (f"{p}: entry #2 (id 'plain'): url 'http://example.org/plain.xyz': plain http is "
                              "refused (it can be altered in transit, and the first fetch pins the digest); use the "
                              "https:// address of the same file")
    assert dl.main(["--sources", str(p), "--lock", str(tmp_path / "lock.tsv"), "--dest", str(tmp_path / "raw"),
                    "--all"]) == 1
    assert "id 'plain'" in capsys.readouterr().err and not (tmp_path / "raw").exists()


def test_file_url_is_a_local_file(tmp_path):
    here = tmp_path / "mine.xyz"
    here.write_bytes(BODY)
    src = make_source(here.as_uri(), sid="own_data", dest="own/data.xyz")
    assert dl.load_sources(_write_sources(tmp_path / "s.yaml", "sources:" + GOOD_ENTRY.format(
        id="own_data", dest="own/data.xyz").replace("https://example.org/own_data.xyz", here.as_uri())))
    out = dl.fetch(src, tmp_path / "raw", tmp_path / "lock.tsv", retries=0)
    assert out.read_bytes() == BODY
    assert dl.read_lock(tmp_path / "lock.tsv")["own_data"] == dl.LockEntry("own_data", SHA, len(BODY), here.as_uri())


def test_redirect_to_http_is_refused_before_it_is_followed(server, tmp_path):
    """mlipft.download's downloader stops at the 302: the plain-http address is never contacted."""
    server.routes["/f.xyz"] = {"mode": "redirect", "to": "http://127.0.0.1:9/f.xyz"}
    src = make_source(server.base + "/f.xyz")
    with pytest.raises(dl.DownloadError) as err:
        dl.fetch(src, tmp_path / "raw", tmp_path / "lock.tsv", retries=2, backoff=0.0, timeout=5.0)
    assert "redirects (302) to http://127.0.0.1:9/f.xyz, which is refused" in str(err.value)
    assert str(err.value).startswith("source 'sn2_train': ")
    assert server.hits["/f.xyz"] == 1  # not retried
    assert not src.path(tmp_path / "raw").exists() and not leftovers(tmp_path)


def test_redirect_chain_ending_on_http_is_refused(server, tmp_path):
    """Each hop is checked before it is followed, not only the first."""
    server.routes["/a.xyz"] = {"mode": "redirect", "to": server.base + "/b.xyz"}
    server.routes["/b.xyz"] = {"mode": "redirect", "to": "http://127.0.0.1:9/f.xyz"}
    src = make_source(server.base + "/a.xyz")
    with pytest.raises(dl.DownloadError, match=r"/b\.xyz redirects \(302\) to http://127\.0\.0\.1:9/f\.xyz"):
        fetch(src, tmp_path)
    assert server.hits == {"/a.xyz": 1, "/b.xyz": 1}
    assert not src.path(tmp_path / "raw").exists() and not leftovers(tmp_path)


def test_redirect_to_https_is_followed(server, tmp_path):
    server.routes["/old.xyz"] = {"mode": "redirect", "to": server.base + "/f.xyz"}
    server.routes["/f.xyz"] = {"mode": "ok"}
    src = make_source(server.base + "/old.xyz")
    out = dl.fetch(src, tmp_path / "raw", tmp_path / "lock.tsv", retries=0, timeout=5.0)
    assert out.read_bytes() == BODY and server.hits == {"/old.xyz": 1, "/f.xyz": 1}


# --------------------------------------------------------------------------- local copies

DEAD_URL = "https://127.0.0.1:9/never-contacted.xyz"  # discard port; must not be used


@pytest.mark.parametrize("layout", ["basename", "dest"])
def test_local_dir_copy_needs_no_server(tmp_path, layout):
    src = make_source(DEAD_URL)
    local = tmp_path / "cluster-copy"
    where = local / (src.basename if layout == "basename" else src.dest)
    where.parent.mkdir(parents=True)
    where.write_bytes(BODY)
    out = fetch(src, tmp_path, local_dirs=[tmp_path / "empty", local], retries=0,
                allow_download=False)
    assert out.read_bytes() == BODY
    assert where.read_bytes() == BODY  # the user's copy is untouched
    assert dl.read_lock(tmp_path / "lock.tsv")[src.id].sha256 == SHA
    assert not leftovers(tmp_path)


def test_local_dir_from_environment(tmp_path, monkeypatch):
    src = make_source(DEAD_URL)
    local = tmp_path / "env-copy"
    local.mkdir()
    (local / src.basename).write_bytes(BODY)
    monkeypatch.setenv(dl.LOCAL_DATA_ENV, f"{tmp_path / 'nothing'}:{local}")
    out = fetch(src, tmp_path, retries=0, allow_download=False)
    assert out.read_bytes() == BODY


def test_shared_basename_is_only_found_by_dest_path(tmp_path):
    p = _write_sources(tmp_path / "s.yaml", "sources:"
                       + GOOD_ENTRY.format(id="a", dest="one/test.xyz")
                       + GOOD_ENTRY.format(id="b", dest="two/test.xyz")
                       + GOOD_ENTRY.format(id="c", dest="three/own.xyz"))
    sources = dl.load_sources(p)
    assert [s.unique_basename for s in sources.values()] == [False, False, True]
    local = tmp_path / "copy"
    (local / "two").mkdir(parents=True)
    (local / "test.xyz").write_bytes(b"ambiguous")
    (local / "two" / "test.xyz").write_bytes(BODY)
    (local / "own.xyz").write_bytes(BODY)
    assert dl.find_local(sources["a"], [local]) == []
    assert dl.find_local(sources["b"], [local]) == [local / "two" / "test.xyz"]
    assert dl.find_local(sources["c"], [local]) == [local / "own.xyz"]


def test_local_copy_with_wrong_digest_is_rejected(tmp_path):
    src = make_source(DEAD_URL)
    dl.write_lock(tmp_path / "lock.tsv", {src.id: dl.LockEntry(src.id, SHA, len(BODY), DEAD_URL)})
    local = tmp_path / "copy"
    local.mkdir()
    (local / src.basename).write_bytes(b"something else")
    with pytest.raises(dl.ChecksumMismatch, match="sn2_train"):
        fetch(src, tmp_path, local_dirs=[local], allow_download=False)
    assert not src.path(tmp_path / "raw").exists()
    assert not leftovers(tmp_path)


def test_offline_without_local_copy_fails_clearly(tmp_path):
    src = make_source(DEAD_URL)
    with pytest.raises(dl.DownloadError, match="offline"):
        fetch(src, tmp_path, local_dirs=[tmp_path], allow_download=False)


def test_manual_source_needs_a_local_copy(tmp_path):
    src = make_source("https://doi.org/10.17863/CAM.107498", manual=True,
                      instructions="Download it from the Apollo record by hand.")
    with pytest.raises(dl.ManualDownloadRequired, match="Apollo record"):
        fetch(src, tmp_path, local_dirs=[tmp_path / "none"])
    local = tmp_path / "copy"
    local.mkdir()
    (local / src.basename).write_bytes(BODY)
    assert fetch(src, tmp_path, local_dirs=[local]).read_bytes() == BODY


# --------------------------------------------------------------------------- licences


def test_licence_notice_blocks_until_accepted(server, tmp_path, capsys):
    server.routes["/omat.model"] = {"mode": "ok"}
    src = make_source(server.base + "/omat.model", sid="mace_omat_0_small",
                      dest="foundations/omat.model", kind="foundation", licence="ASL",
                      licence_notice="Academic Software License: no commercial use.")
    with pytest.raises(dl.LicenceNotAccepted) as err:
        fetch(src, tmp_path)
    assert "--accept-licences" in str(err.value) and "accept_licences" in str(err.value)
    assert "Academic Software License" in capsys.readouterr().err
    assert server.hits.get("/omat.model") is None
    assert not src.path(tmp_path / "raw").exists()
    with pytest.raises(dl.LicenceNotAccepted):
        fetch(src, tmp_path, accept_licences={"some_other_id"})
    fetch(src, tmp_path, accept_licences={"mace_omat_0_small"})
    assert src.path(tmp_path / "raw").read_bytes() == BODY
    fetch(src, tmp_path, accept_licences=True)  # already there: no-op
    assert server.hits["/omat.model"] == 1


# --------------------------------------------------------------------------- verify, CLI


def test_verify_lists_changed_files(server, tmp_path):
    server.routes["/a.xyz"] = {"mode": "ok"}
    server.routes["/b.xyz"] = {"mode": "ok", "body": b"other"}
    a = make_source(server.base + "/a.xyz", sid="a", dest="a.xyz")
    b = make_source(server.base + "/b.xyz", sid="b", dest="b.xyz")
    c = make_source(server.base + "/c.xyz", sid="c", dest="c.xyz")  # never fetched
    for s in (a, b):
        fetch(s, tmp_path)
    sources = {s.id: s for s in (a, b, c)}
    assert dl.verify(tmp_path / "raw", tmp_path / "lock.tsv", sources) == []
    (tmp_path / "raw" / "b.xyz").write_bytes(b"tampered")
    problems = dl.verify(tmp_path / "raw", tmp_path / "lock.tsv", sources)
    assert [(p.id, p.reason) for p in problems] == [("b", "mismatch")]
    assert problems[0].actual == hashlib.sha256(b"tampered").hexdigest()
    (tmp_path / "raw" / "a.xyz").unlink()
    problems = dl.verify(tmp_path / "raw", tmp_path / "lock.tsv", sources, include_missing=True)
    assert {(p.id, p.reason) for p in problems} == {("a", "missing"), ("b", "mismatch")}


def _write_sources(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_cli_fetch_and_failure_exit_codes(server, tmp_path, capsys):
    server.routes["/f.xyz"] = {"mode": "ok"}
    sources = _write_sources(tmp_path / "s.yaml", f"""
sources:
  - id: good
    url: {server.base}/f.xyz
    dest: d/good.xyz
    kind: dataset
    licence: MIT
    description: a file
  - id: gone
    url: {server.base}/gone.xyz
    dest: d/gone.xyz
    kind: dataset
    licence: MIT
    description: a 404
""")
    common = ["--sources", str(sources), "--lock", str(tmp_path / "lock.tsv"),
              "--dest", str(tmp_path / "raw"), "--retries", "0"]
    assert dl.main(common + ["good"]) == 0  # the default downloader, proxies cleared
    assert (tmp_path / "raw" / "d" / "good.xyz").read_bytes() == BODY
    assert dl.main(common + ["--verify"]) == 0
    assert dl.main(common + ["gone"]) == 1
    assert "404" in capsys.readouterr().err
    assert dl.main(common + ["nope"]) == 1
    assert "unknown source id" in capsys.readouterr().err
    assert dl.main(common + ["--list"]) == 0
    assert "good\tdataset\td/good.xyz [locked]" in capsys.readouterr().out


# --------------------------------------------------------------------------- sources YAML

GOOD_ENTRY = """
  - id: {id}
    url: https://example.org/{id}.xyz
    dest: {dest}
    kind: dataset
    licence: MIT
    description: x
"""


def test_duplicate_id_is_named(tmp_path):
    p = _write_sources(tmp_path / "dup.yaml", "sources:" + GOOD_ENTRY.format(id="a", dest="a")
                       + GOOD_ENTRY.format(id="a", dest="b"))
    with pytest.raises(dl.SourcesError) as err:
        dl.load_sources(p)
    assert "dup.yaml" in str(err.value) and "entry #2" in str(err.value)
    assert "duplicate id 'a'" in str(err.value)


def test_duplicate_dest_is_named(tmp_path):
    p = _write_sources(tmp_path / "dd.yaml", "sources:" + GOOD_ENTRY.format(id="a", dest="x/a")
                       + GOOD_ENTRY.format(id="b", dest="x/a"))
    with pytest.raises(dl.SourcesError, match=r"dd\.yaml: entry #2 \(id 'b'\).*also used by id 'a'"):
        dl.load_sources(p)


def test_missing_url_is_named(tmp_path):
    p = _write_sources(tmp_path / "nourl.yaml", """
sources:
  - id: ok
    url: https://example.org/ok
    dest: ok
    kind: dataset
    licence: MIT
    description: x
  - id: broken
    dest: broken
    kind: dataset
    licence: MIT
    description: x
""")
    with pytest.raises(dl.SourcesError) as err:
        dl.load_sources(p)
    msg = str(err.value)
    assert "nourl.yaml" in msg and "'broken'" in msg and "'url'" in msg


@pytest.mark.parametrize("field,value,needle", [
    ("kind", "weights", "kind 'weights'"),
    ("dest", "../escape", "dest '../escape'"),
    ("url", "ftp://example.org/x", "url 'ftp://example.org/x': scheme ftp:// is refused"),
    ("url", "http://example.org/x", "url 'http://example.org/x': plain http is refused"),
    ("colour", "blue", "unknown key(s) 'colour'"),
    ("manual", "true", "needs an 'instructions'"),
])
def test_invalid_fields_are_named(tmp_path, field, value, needle):
    entry = {"id": "e1", "url": "https://example.org/e1", "dest": "e1", "kind": "dataset",
             "licence": "MIT", "description": "x", field: value}
    body = "\n".join(f"    {k}: {v}" for k, v in entry.items()).replace("    id:", "  - id:", 1)
    p = _write_sources(tmp_path / "bad.yaml", "sources:\n" + body + "\n")
    with pytest.raises(dl.SourcesError) as err:
        dl.load_sources(p)
    assert "bad.yaml" in str(err.value) and "'e1'" in str(err.value) and needle in str(err.value)


def test_paper_sources_load_and_are_well_formed():
    sources = dl.load_sources(PAPER_SOURCES)
    assert len(sources) == len(set(sources))  # ids unique (also enforced by load_sources)
    assert len({s.dest for s in sources.values()}) == len(sources)
    for s in sources.values():
        assert urllib.parse.urlsplit(s.url).scheme == "https", s.id
    expected = {"sn2_train", "sn2_valid", "sn2_test", "sn2_omat24_replay", "lpsc_600",
                "nacl_mp2_gen2", "mptrj_replay", "mptrj_replay_omat",
                "spice_maceoff_train", "spice_maceoff_test",
                "mace_mp_0_small", "mace_mp_0_medium", "mace_mp_0b3_medium",
                "mace_mpa_0_medium", "mace_omat_0_small", "mace_omat_0_medium"}
    assert expected <= set(sources)
    assert {s.id for s in sources.values() if s.kind == "foundation"} == {
        i for i in expected if i.startswith("mace_")}
    assert {s.id for s in sources.values() if s.licence_notice} == {
        "mace_omat_0_small", "mace_omat_0_medium"}
    assert all(s.instructions for s in sources.values() if s.manual)
    rev = "e132ea4317a4cd1426498af8cfca24ebe88fd498"
    assert all(rev in s.url for s in sources.values() if s.kind == "archive")
    assert sum(s.id.startswith("ice_") for s in sources.values()) == 20


def test_paper_lock_parses():
    lock = dl.read_lock(PAPER_LOCK)
    assert PAPER_LOCK.read_text().splitlines()[0] == "id\tsha256\tbytes\turl"
    assert set(lock) <= set(dl.load_sources(PAPER_SOURCES))
