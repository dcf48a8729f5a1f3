"""Fetch the raw sources of the paper world, reproducibly and without partial files.

What is ours here: the sources (``config/sources/paper.yaml``, schema in its header comment), the
lock of their digests (``config/sources/paper.lock.tsv``: ``id  sha256  bytes  url``, sorted by
id), licences that must be accepted, and local directories holding copies. The transfer itself,
its sha256 check against a known digest and the move into place are pooch's
(:func:`pooch.retrieve` with ``known_hash``; requests underneath), retried here with exponential
backoff.

A file is obtained, in this order, from

1. the destination itself, when it is there and its digest matches the lock (no-op);
2. a local copy, for clusters without internet: each directory given in ``local_dirs`` and
   in the environment variable ``MLIPFT_LOCAL_DATA`` (``os.pathsep``-separated) is searched
   for the source's ``dest`` path, then for its basename; the file is hard-linked (or copied)
   into place; a ``file://`` URL is such a copy too;
3. its URL: :func:`pooch.retrieve` streams it into a temporary file beside the destination and
   checks it against the locked sha256 before keeping it; a failed transfer (connection, 5xx,
   408/425/429, a truncated body, a digest that differs) is tried again, ``retries`` times, after
   ``backoff * 2**k`` seconds; a 4xx answer is not. The checked file is then moved into place
   under the lock's flock.

Nothing is ever left under the final name unless it is complete and matches the lock.

Trust on first use: the lock is filled by the first real download of each source. Until then a
source has no row (the committed lock has none: nothing was downloaded from the machines this
workflow was written on), its first download is checked by nothing but https, and its digest is
recorded from whatever that download returned; from then on every download, local copy or file
already in place must match it. Review the lock rows a first download adds (``git diff``) before
committing them.

Only ``https://`` URLs are fetched (and ``file://`` paths, local files): a source with an
``http://`` (or ``ftp://``, ...) URL is refused, naming its id, when the sources file is read
and again by :func:`fetch` before anything is looked up or downloaded, and a download redirected
to a plain-http address is abandoned before that address is contacted.

Downloaded foundation models are loaded with ``torch.load(..., weights_only=False)``
(:mod:`mlipft.paper`, :mod:`mlipft.train`, mace itself): a MACE ``.model`` file is a pickled
``torch.nn.Module`` that ``weights_only=True`` refuses (``ScaleShiftMACE`` is not an allowed
global), and allow-listing its classes would not make it safe, since its symmetric contractions
are ``torch.fx`` graph modules whose unpickling executes Python source stored in the file. The
integrity of a model therefore rests on https and the sha256 lock.

Command line::

    python -m mlipft.download --sources config/sources/paper.yaml \\
        --lock config/sources/paper.lock.tsv --dest data/paper/raw \\
        [--local-dir DIR ...] [--accept-licences] [--offline] ID [ID ...]

(``--all`` fetches every source, ``--kind KIND`` every source of one kind, ``--list`` prints
the sources, ``--verify`` checks files on disk against the lock.)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Collection, Iterable, Iterator, Mapping, Sequence

import yaml

LOG = logging.getLogger("mlipft.download")

KINDS = ("dataset", "foundation", "replay", "archive")
REQUIRED_KEYS = ("id", "url", "dest", "kind", "licence", "description")
OPTIONAL_KEYS = ("licence_notice", "manual", "instructions")
LOCK_HEADER = ("id", "sha256", "bytes", "url")
LOCAL_DATA_ENV = "MLIPFT_LOCAL_DATA"
#: URL schemes a source may have: https (downloads) and file (a local file, read in place).
SCHEMES = ("https", "file")
ACCEPT_FLAG = "--accept-licences"
ACCEPT_CONFIG_KEY = "accept_licences"
USER_AGENT = "mlipft-download/0.1 (+https://github.com/ACEsuit/mace fine-tuning workflow)"
CHUNK = 1 << 20
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_LFS_POINTER = b"version https://git-lfs.github.com/spec/"


# --------------------------------------------------------------------------- errors


class DownloadError(RuntimeError):
    """A source could not be obtained (network failure after retries, HTTP 4xx, ...)."""


class SourcesError(ValueError):
    """The sources YAML file is malformed; the message names the file and the entry."""


class InsecureSource(DownloadError):
    """A source's URL is not https (nor a local file): refused before any network access."""

    def __init__(self, source_id: str, url: str, problem: str):
        self.source_id = source_id
        self.url = url
        super().__init__(f"source {source_id!r}: refusing {url!r}: {problem}")


def url_problem(url: str) -> str | None:
    """Why ``url`` may not be fetched (None when it may): only ``https://host/...`` and
    ``file:///path`` are allowed; plain http (which anyone on the path can alter, and whose
    first fetch records the digest of the lock) and any other scheme are refused."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https":
        return None if parts.netloc else "an https URL needs a host"
    if scheme == "file":
        return None if parts.path and parts.netloc in ("", "localhost") else "a file URL is file:///absolute/path"
    if scheme == "http":
        return ("plain http is refused (it can be altered in transit, and the first fetch pins the digest); "
                "use the https:// address of the same file")
    return (f"scheme {scheme + '://' if scheme else '(none)'} is refused; only https:// URLs "
            f"and file:// paths (local files) are fetched")


class LockFileError(ValueError):
    """The lock TSV file is malformed."""


class ChecksumMismatch(DownloadError):
    """The obtained file's sha256 differs from the one pinned in the lock file."""

    def __init__(self, source_id: str, path: os.PathLike | str, expected: str, actual: str,
                 origin: str = ""):
        self.source_id = source_id
        self.path = Path(path)
        self.expected = expected
        self.actual = actual
        self.origin = origin
        where = f" (obtained from {origin})" if origin else ""
        super().__init__(
            f"checksum mismatch for source {source_id!r}, file {self.path}{where}: "
            f"expected sha256 {expected}, got {actual}; the file was not put in place. "
            f"If the upstream file changed on purpose, remove the {source_id!r} row from "
            f"the lock file and fetch again."
        )


class LicenceNotAccepted(RuntimeError):
    """The source carries a licence notice that was not accepted."""

    def __init__(self, source: "Source"):
        self.source_id = source.id
        self.notice = source.licence_notice
        super().__init__(
            f"source {source.id!r} is under {source.licence}; its licence notice (printed "
            f"above, also in this exception's .notice) must be accepted before it is fetched. "
            f"To accept, pass {ACCEPT_FLAG} to `python -m mlipft.download`, or set "
            f"`{ACCEPT_CONFIG_KEY}: true` in the workflow config "
            f"(fetch(..., accept_licences=True) from Python)."
        )


class ManualDownloadRequired(DownloadError):
    """The source has no direct URL and no local copy was found."""

    def __init__(self, source: "Source", searched: Sequence[Path]):
        self.source_id = source.id
        self.searched = list(searched)
        dirs = ", ".join(str(d) for d in searched) or "(none given)"
        super().__init__(
            f"source {source.id!r} must be downloaded by hand and no local copy was found "
            f"(searched local dirs: {dirs}; set with --local-dir or {LOCAL_DATA_ENV}).\n"
            f"{source.instructions or 'See ' + source.url}"
        )


# --------------------------------------------------------------------------- sources


@dataclasses.dataclass(frozen=True)
class Source:
    id: str
    url: str
    dest: str
    kind: str
    licence: str
    description: str
    licence_notice: str | None = None
    manual: bool = False
    instructions: str | None = None
    # False when another source in the same file has the same basename: local copies are
    # then only looked up by their dest path (set by load_sources).
    unique_basename: bool = True

    @property
    def basename(self) -> str:
        return Path(self.dest).name

    def path(self, dest_root: os.PathLike | str) -> Path:
        return Path(dest_root) / self.dest


def _entry_name(i: int, entry: object) -> str:
    if isinstance(entry, Mapping) and isinstance(entry.get("id"), str):
        return f"entry #{i + 1} (id {entry['id']!r})"
    return f"entry #{i + 1}"


def load_sources(path: os.PathLike | str) -> dict[str, Source]:
    """Read and validate a sources YAML file; return ``{id: Source}`` in file order.

    Raises :class:`SourcesError` naming the file and the offending entry for: missing or
    unknown keys, empty values, bad ids, kinds, URLs or dest paths, duplicate ids or dests,
    and ``manual: true`` without ``instructions``.
    """
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SourcesError(f"{path}: cannot read sources file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SourcesError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, Mapping) or not isinstance(doc.get("sources"), list):
        raise SourcesError(f"{path}: expected a top-level mapping with a `sources:` list")

    out: dict[str, Source] = {}
    dests: dict[str, str] = {}
    for i, entry in enumerate(doc["sources"]):
        name = _entry_name(i, entry)

        def bad(msg: str) -> SourcesError:
            return SourcesError(f"{path}: {name}: {msg}")

        if not isinstance(entry, Mapping):
            raise bad("expected a mapping of keys")
        missing = [k for k in REQUIRED_KEYS if k not in entry]
        if missing:
            raise bad(f"missing required key(s) {', '.join(repr(k) for k in missing)}")
        unknown = sorted(set(entry) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
        if unknown:
            raise bad(f"unknown key(s) {', '.join(repr(k) for k in unknown)} "
                      f"(allowed: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)})")
        for k in REQUIRED_KEYS + ("licence_notice", "instructions"):
            if k in entry and not (isinstance(entry[k], str) and entry[k].strip()):
                raise bad(f"key {k!r} must be a non-empty string")
        sid = entry["id"]
        if not _ID_RE.match(sid):
            raise bad(f"id {sid!r} may only contain letters, digits, '_', '.', '-'")
        if sid in out:
            raise bad(f"duplicate id {sid!r}")
        problem = url_problem(entry["url"])
        if problem:
            raise bad(f"url {entry['url']!r}: {problem}")
        dest = entry["dest"]
        dpath = Path(dest)
        if dpath.is_absolute() or ".." in dpath.parts or dest.endswith("/") or dest in (".", ""):
            raise bad(f"dest {dest!r} must be a relative file path without '..'")
        norm = dpath.as_posix()
        if norm in dests:
            raise bad(f"dest {dest!r} is also used by id {dests[norm]!r}")
        if entry["kind"] not in KINDS:
            raise bad(f"kind {entry['kind']!r} is not one of {', '.join(KINDS)}")
        manual = entry.get("manual", False)
        if not isinstance(manual, bool):
            raise bad("key 'manual' must be true or false")
        if manual and not entry.get("instructions"):
            raise bad("manual: true needs an 'instructions' text")
        out[sid] = Source(
            id=sid, url=entry["url"], dest=norm, kind=entry["kind"],
            licence=entry["licence"].strip(), description=entry["description"].strip(),
            licence_notice=(entry.get("licence_notice") or None),
            manual=manual, instructions=(entry.get("instructions") or None),
        )
        dests[norm] = sid
    names: dict[str, int] = {}
    for src in out.values():
        names[src.basename] = names.get(src.basename, 0) + 1
    return {sid: (src if names[src.basename] == 1
                  else dataclasses.replace(src, unique_basename=False))
            for sid, src in out.items()}


# --------------------------------------------------------------------------- lock file


@dataclasses.dataclass(frozen=True)
class LockEntry:
    id: str
    sha256: str
    bytes: int
    url: str


def read_lock(lock_path: os.PathLike | str) -> dict[str, LockEntry]:
    """Read the lock TSV; a missing or empty file is an empty lock."""
    lock_path = Path(lock_path)
    if not lock_path.exists():
        return {}
    entries: dict[str, LockEntry] = {}
    for n, line in enumerate(lock_path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if tuple(fields) == LOCK_HEADER:
            continue
        if len(fields) != len(LOCK_HEADER):
            raise LockFileError(f"{lock_path}:{n}: expected {len(LOCK_HEADER)} tab-separated "
                                f"fields ({' '.join(LOCK_HEADER)}), got {len(fields)}")
        sid, sha, size, url = fields
        if not _SHA_RE.match(sha) or not size.isdigit():
            raise LockFileError(f"{lock_path}:{n}: bad sha256 or byte count for {sid!r}")
        if sid in entries:
            raise LockFileError(f"{lock_path}:{n}: duplicate id {sid!r}")
        entries[sid] = LockEntry(sid, sha, int(size), url)
    return entries


def write_lock(lock_path: os.PathLike | str, entries: Mapping[str, LockEntry]) -> None:
    """Write the lock TSV atomically (temp file + os.replace), rows sorted by id."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(LOCK_HEADER)]
    for sid in sorted(entries):
        e = entries[sid]
        lines.append(f"{e.id}\t{e.sha256}\t{e.bytes}\t{e.url}")
    fd, tmp = tempfile.mkstemp(dir=lock_path.parent, prefix=f".{lock_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, 0o644)
        os.replace(tmp, lock_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise read-modify-write of the lock file between processes (flock on its dir)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # pragma: no cover - filesystems without flock
            pass
        yield
    finally:
        os.close(fd)  # releases the flock


# --------------------------------------------------------------------------- helpers


def sha256_file(path: os.PathLike | str) -> tuple[str, int]:
    """Return (hex sha256, size in bytes) of a file."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def local_dirs_from_env() -> list[Path]:
    raw = os.environ.get(LOCAL_DATA_ENV, "")
    return [Path(p) for p in raw.split(os.pathsep) if p]


def find_local(source: Source, local_dirs: Iterable[os.PathLike | str]) -> list[Path]:
    """Candidate local copies of ``source``: ``DIR/dest`` then ``DIR/basename`` per dir.

    The basename is not tried when another source shares it (``source.unique_basename``).
    """
    found: list[Path] = []
    for d in local_dirs:
        d = Path(d)
        names = [source.dest] + ([source.basename] if source.unique_basename else [])
        for cand in (d / n for n in names):
            if cand.is_file() and cand not in found:
                found.append(cand)
    return found


def _licence_accepted(source: Source, accept_licences: bool | Collection[str]) -> bool:
    if not source.licence_notice:
        return True
    if isinstance(accept_licences, bool):
        return accept_licences
    return source.id in accept_licences


def _tmp_name(final: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    os.close(fd)
    return Path(tmp)


def _retryable_http(code: int) -> bool:
    return code >= 500 or code in (408, 425, 429)


class _Refused(Exception):
    """Internal: a download that retrying will not fix (not a ValueError nor a requests error,
    so that pooch never retries it either)."""


def _scheme(url: str) -> str:
    return urllib.parse.urlsplit(url).scheme.lower()


def _https_downloader(timeout: float):
    """pooch's HTTP downloader (requests), kept on https: every response is checked before
    requests follows it (a redirect to a non-https address is refused before that address is
    contacted), and an HTML page or a Git LFS pointer in place of the file is refused."""
    import pooch

    class HttpsDownloader(pooch.HTTPDownloader):
        def __init__(self):
            super().__init__(progressbar=False, chunk_size=CHUNK, timeout=timeout,
                             headers={"User-Agent": USER_AGENT}, hooks={"response": self.check})

        def check(self, response, *args, **kwargs):
            if response.is_redirect:
                target = urllib.parse.urljoin(response.url, response.headers.get("Location", ""))
                if _scheme(target) != "https":
                    raise _Refused(f"{response.url} redirects ({response.status_code}) to {target}, which is "
                                   f"refused: a download is only redirected to another https URL")
                return response
            if _scheme(response.url) != "https":
                raise _Refused(f"the download ended on {response.url}, which is refused: a download stays on https")
            ctype = (response.headers.get("Content-Type") or "").lower()
            if response.ok and ctype.startswith("text/html") and not response.url.lower().endswith((".html", ".htm")):
                raise _Refused(f"{response.url} returned an HTML page (Content-Type {ctype}), not the file; "
                               f"it is probably a landing or login page")
            return response

        def __call__(self, url, output_file, pooch_, check_only=False):
            result = super().__call__(url, output_file, pooch_, check_only=check_only)
            if not check_only:
                with open(output_file, "rb") as fh:
                    head = fh.read(1024)
                if head.startswith(_LFS_POINTER) and len(head) < 1024:
                    raise _Refused(f"{url} returned a Git LFS pointer ({len(head)} bytes), not the file itself")
            return result

    return HttpsDownloader()


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """pooch logs every download to stderr (and, without a known hash, advice meant for pooch's
    own users); this module logs its own lines."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


_POOCH_MISMATCH = re.compile(r"but got ([0-9a-fA-F]{64})")


def _download(source: Source, final: Path, staging: Path, known_sha256: str | None, *, retries: int,
              backoff: float, timeout: float, sleep: Callable[[float], None],
              downloader: Callable | None = None) -> None:
    """``pooch.retrieve(known_hash=...)`` of ``source.url`` into ``staging``, retried.

    pooch writes a temporary file beside ``staging``, checks its sha256 against
    ``known_sha256`` (when given) and only then moves it to ``staging``. Raises
    :class:`ChecksumMismatch` when every attempt returned other bytes than the lock's,
    :class:`DownloadError` otherwise."""
    import pooch
    import requests

    downloader = downloader or _https_downloader(timeout)
    known = f"sha256:{known_sha256}" if known_sha256 else None
    attempts = max(0, int(retries)) + 1
    last: BaseException | None = None
    for attempt in range(attempts):
        if attempt:
            delay = backoff * (2 ** (attempt - 1))
            LOG.warning("%s: attempt %d/%d failed (%s); retrying in %.1f s",
                        source.id, attempt, attempts, last, delay)
            if delay > 0:
                sleep(delay)
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()  # pooch keeps a file already there instead of downloading
        try:
            with _quiet_pooch():
                pooch.retrieve(source.url, known_hash=known, fname=staging.name, path=staging.parent,
                               downloader=downloader)
            return
        except _Refused as exc:
            raise DownloadError(f"source {source.id!r}: {exc}") from exc
        except requests.HTTPError as exc:
            last = exc
            code = exc.response.status_code if exc.response is not None else None
            if code is not None and not _retryable_http(code):
                reason = exc.response.reason if exc.response is not None else ""
                raise DownloadError(f"source {source.id!r}: HTTP {code} {reason} for {source.url}") from exc
        except requests.RequestException as exc:  # connection, timeout, truncated body, ...
            last = exc
        except ValueError as exc:  # pooch: the download's sha256 is not the known one
            if known is None or not _POOCH_MISMATCH.search(str(exc)):
                raise
            last = exc
    if isinstance(last, ValueError) and not isinstance(last, requests.RequestException):
        actual = _POOCH_MISMATCH.search(str(last)).group(1).lower()
        raise ChecksumMismatch(source.id, final, known_sha256, actual, origin=source.url) from last
    raise DownloadError(f"source {source.id!r}: download of {source.url} failed after "
                        f"{attempts} attempt(s): {last}") from last


def _place(source: Source, tmp: Path, final: Path, digest: str, size: int,
           lock_path: Path, origin: str) -> None:
    """Check ``tmp`` against the lock (recording it if new), then move it to ``final``."""
    with _locked(lock_path.parent):
        entries = read_lock(lock_path)
        entry = entries.get(source.id)
        if entry is not None:
            if entry.sha256 != digest:
                raise ChecksumMismatch(source.id, final, entry.sha256, digest, origin)
            if entry.url != source.url:
                LOG.warning("%s: URL changed since the lock was written (%s -> %s); the "
                            "digest still matches", source.id, entry.url, source.url)
        else:
            entries[source.id] = LockEntry(source.id, digest, size, source.url)
            write_lock(lock_path, entries)
            LOG.info("%s: recorded sha256 %s (%d bytes) in %s", source.id, digest, size,
                     lock_path)
        os.replace(tmp, final)


# --------------------------------------------------------------------------- public API


def fetch(source: Source, dest_root: os.PathLike | str, lock_path: os.PathLike | str,
          local_dirs: Iterable[os.PathLike | str] = (), retries: int = 3,
          backoff: float = 2.0, timeout: float = 60.0,
          accept_licences: bool | Collection[str] = False,
          downloader: Callable | None = None, allow_download: bool = True,
          sleep: Callable[[float], None] = time.sleep) -> Path:
    """Make ``dest_root/source.dest`` hold the source's file, checked against the lock.

    Returns the final path. ``retries`` is the number of further attempts after the first
    (waiting ``backoff * 2**k`` seconds before the k-th retry); ``timeout`` is the socket
    timeout in seconds; ``accept_licences`` is True, or a collection of accepted ids;
    ``downloader`` is a pooch downloader (default: pooch's HTTP downloader kept on https);
    ``allow_download=False`` only uses files already in place, in local dirs or at a
    ``file://`` URL.

    A file already at the destination whose digest differs from the lock is moved aside to
    ``<name>.mismatch-<sha12>`` before the file is obtained again; one that is not yet in
    the lock is adopted and its digest recorded.

    A source whose URL is not https (nor a ``file://`` path) is refused first, with
    :class:`InsecureSource` naming its id, before anything is looked up or downloaded.

    Raises :class:`InsecureSource`, :class:`LicenceNotAccepted`, :class:`ChecksumMismatch`,
    :class:`ManualDownloadRequired` or :class:`DownloadError`; on any failure nothing new is
    put under the final name and temporary files are removed.
    """
    problem = url_problem(source.url)
    if problem is not None:
        raise InsecureSource(source.id, source.url, problem)
    dest_root = Path(dest_root)
    lock_path = Path(lock_path)
    final = source.path(dest_root)

    locked = read_lock(lock_path).get(source.id)
    if final.is_file() and locked is not None:
        digest, _ = sha256_file(final)
        if digest == locked.sha256:
            LOG.info("%s: %s is present and matches the lock", source.id, final)
            return final
        aside = final.with_name(f"{final.name}.mismatch-{digest[:12]}")
        os.replace(final, aside)
        LOG.warning("%s: %s does not match the lock (sha256 %s, expected %s); moved it to %s "
                    "and obtaining it again", source.id, final, digest, locked.sha256, aside)

    if not _licence_accepted(source, accept_licences):
        exc = LicenceNotAccepted(source)
        print(f"\nLicence notice for {source.id} ({source.licence}):\n{source.licence_notice}\n",
              file=sys.stderr)
        raise exc

    final.parent.mkdir(parents=True, exist_ok=True)

    if final.is_file() and locked is None:
        # Put there by hand (or by an older run): adopt it and pin its digest.
        digest, size = sha256_file(final)
        LOG.info("%s: %s already present and not yet in the lock; recording it", source.id,
                 final)
        with _locked(lock_path.parent):
            entries = read_lock(lock_path)
            if source.id in entries and entries[source.id].sha256 != digest:
                raise ChecksumMismatch(source.id, final, entries[source.id].sha256, digest,
                                       "the existing file")
            entries.setdefault(source.id, LockEntry(source.id, digest, size, source.url))
            write_lock(lock_path, entries)
        return final

    dirs = [Path(d) for d in local_dirs] + local_dirs_from_env()
    candidates = find_local(source, dirs)
    if _scheme(source.url) == "file":  # the source is a local file itself
        own = Path(urllib.request.url2pathname(urllib.parse.urlsplit(source.url).path))
        if not own.is_file():
            raise DownloadError(f"source {source.id!r}: {source.url} is not a file")
        candidates.append(own)
    mismatch: ChecksumMismatch | None = None
    for cand in candidates:
        if cand.resolve() == final.resolve():
            continue
        tmp = _tmp_name(final)
        try:
            os.unlink(tmp)
            try:
                os.link(cand, tmp)
                how = "hard-linked"
            except OSError:
                shutil.copyfile(cand, tmp)
                how = "copied"
            digest, size = sha256_file(tmp)
            _place(source, tmp, final, digest, size, lock_path, origin=str(cand))
            LOG.info("%s: %s %s -> %s", source.id, how, cand, final)
            return final
        except ChecksumMismatch as exc:
            LOG.warning("%s: local copy %s rejected: %s", source.id, cand, exc)
            mismatch = exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    if _scheme(source.url) == "file":
        raise mismatch or DownloadError(f"source {source.id!r}: {source.url} is its own destination")

    if source.manual:
        if mismatch is not None:
            raise mismatch
        raise ManualDownloadRequired(source, dirs)
    if not allow_download:
        if mismatch is not None:
            raise mismatch
        raise DownloadError(f"source {source.id!r}: not present at {final}, no local copy in "
                            f"{', '.join(map(str, dirs)) or '(no local dirs)'}, and downloads "
                            f"are disabled (offline)")

    LOG.info("%s: downloading %s%s", source.id, source.url,
             "" if locked else " (not in the lock yet: its digest will be recorded from this download)")
    staging = final.with_name(f".{final.name}.{os.getpid()}.download")
    try:
        _download(source, final, staging, locked.sha256 if locked else None, retries=retries,
                  backoff=backoff, timeout=timeout, sleep=sleep, downloader=downloader)
        size = staging.stat().st_size
        digest = locked.sha256 if locked else sha256_file(staging)[0]  # pooch checked a locked one
        _place(source, staging, final, digest, size, lock_path, origin=source.url)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
    LOG.info("%s: saved %s (%d bytes, sha256 %s)", source.id, final, size, digest)
    return final


@dataclasses.dataclass(frozen=True)
class VerifyProblem:
    id: str
    path: Path
    expected: str
    actual: str | None  # None when the file is missing
    reason: str  # "mismatch" | "missing"


def verify(dest_root: os.PathLike | str, lock_path: os.PathLike | str,
           sources: Mapping[str, Source] | Iterable[Source],
           include_missing: bool = False) -> list[VerifyProblem]:
    """Check files on disk against the lock; return those whose digest differs.

    Only sources with a lock entry are checked. Missing files are reported (reason
    ``"missing"``) only with ``include_missing=True``.
    """
    if isinstance(sources, Mapping):
        sources = sources.values()
    entries = read_lock(lock_path)
    problems: list[VerifyProblem] = []
    for src in sources:
        entry = entries.get(src.id)
        if entry is None:
            continue
        path = src.path(dest_root)
        if not path.is_file():
            if include_missing:
                problems.append(VerifyProblem(src.id, path, entry.sha256, None, "missing"))
            continue
        digest, _ = sha256_file(path)
        if digest != entry.sha256:
            problems.append(VerifyProblem(src.id, path, entry.sha256, digest, "mismatch"))
    return problems


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mlipft.download",
        description="Fetch raw sources listed in a sources YAML, pinning sha256 digests in a "
                    "lock file.")
    p.add_argument("ids", nargs="*", metavar="ID", help="source ids to fetch")
    p.add_argument("--sources", required=True, help="sources YAML (config/sources/paper.yaml)")
    p.add_argument("--lock", required=True, help="lock TSV (config/sources/paper.lock.tsv)")
    p.add_argument("--dest", required=True, help="destination root (data/paper/raw)")
    p.add_argument("--local-dir", action="append", default=[], metavar="DIR",
                   help=f"directory holding pre-downloaded files (repeatable; also "
                        f"{LOCAL_DATA_ENV})")
    p.add_argument(ACCEPT_FLAG, dest="accept_licences", action="store_true",
                   help="accept the licence notices of the requested sources")
    p.add_argument("--offline", action="store_true",
                   help="never download; use files in place or in local dirs only")
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--backoff", type=float, default=2.0)
    p.add_argument("--timeout", type=float, default=60.0)
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--all", action="store_true", help="every source")
    sel.add_argument("--kind", choices=KINDS, help="every source of this kind")
    p.add_argument("--list", action="store_true", help="list the sources and exit")
    p.add_argument("--verify", action="store_true",
                   help="check files on disk against the lock instead of fetching")
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        sources = load_sources(args.sources)
        if args.list:
            lock = read_lock(args.lock)
            for s in sources.values():
                flags = "".join([" [manual]" if s.manual else "",
                                 " [licence notice]" if s.licence_notice else "",
                                 " [locked]" if s.id in lock else ""])
                print(f"{s.id}\t{s.kind}\t{s.dest}{flags}")
            return 0
        unknown = [i for i in args.ids if i not in sources]
        if unknown:
            raise SourcesError(f"{args.sources}: unknown source id(s) {', '.join(unknown)}; "
                               f"known: {', '.join(sources)}")
        if args.all:
            chosen = list(sources.values())
        else:
            wanted = set(args.ids)
            chosen = [s for s in sources.values()
                      if s.id in wanted or (args.kind is not None and s.kind == args.kind)]
        if args.verify:
            chosen = chosen if (args.ids or args.all or args.kind) else list(sources.values())
            problems = verify(args.dest, args.lock, chosen, include_missing=bool(args.ids))
            for pr in problems:
                print(f"{pr.reason}\t{pr.id}\t{pr.path}\texpected {pr.expected}\t"
                      f"actual {pr.actual}", file=sys.stderr)
            LOG.info("verified %d source(s): %d problem(s)", len(chosen), len(problems))
            return 1 if problems else 0
        if not chosen:
            raise SourcesError("no source ids given (name IDs, or use --all / --kind)")
        for src in chosen:
            fetch(src, args.dest, args.lock, local_dirs=args.local_dir, retries=args.retries,
                  backoff=args.backoff, timeout=args.timeout,
                  accept_licences=args.accept_licences, allow_download=not args.offline)
    except (DownloadError, SourcesError, LockFileError, LicenceNotAccepted, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
