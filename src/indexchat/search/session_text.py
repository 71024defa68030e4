"""Full-text search over chat sessions' texts (``session_texts``: titles, prompts, answers).

One function per dialect: FTS5 ranked by BM25 on SQLite, stored ``tsvector`` entries under a
GIN index ranked by ``ts_rank`` on PostgreSQL. Every word of the query must match, the last one as a
prefix too, since the page searches as the user types. A session ranks by its best text; a
title counts ``TITLE_BOOST`` times as much, so a chat named for the words comes first.
Matches are marked ``«…»`` in snippets.

Ranking costs time for every matching text, and a common word matches tens of thousands, so
only the ``CANDIDATES`` newest matching texts are ranked: for such a word the best of recent
chats come first, and a search costs about the same however many sessions there are. When
those hold less than a page of the caller's project (other projects' texts among them, or the
last page), the search runs again over every match.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from indexchat.search.store import query_terms

TITLE_BOOST = 3.0
MARK_START, MARK_END = "«", "»"
MAX_TERMS = 16
CANDIDATES = 2_000


@dataclass(frozen=True)
class SessionHit:
    session_id: str
    score: float  # higher is better; comparable only within one query
    text_id: int  # the best matching text
    seq: int  # the event it came from


def search(
    connection: Connection,
    project_id: str,
    query: str,
    *,
    after: tuple[float, str] | None,
    limit: int,
) -> list[SessionHit]:
    """Matching sessions of the project, best first, strictly after ``after`` (score, id)."""
    terms = query_terms(query, MAX_TERMS)
    if not terms:
        return []
    sqlite = connection.dialect.name == "sqlite"
    sql = _SQLITE_SEARCH if sqlite else _POSTGRES_SEARCH
    params = {
        "query": _fts5_match(terms) if sqlite else _tsquery(terms),
        "candidates": CANDIDATES,
        "project": project_id,
        "boost": TITLE_BOOST,
        "score": float("inf") if after is None else after[0],
        "session": "" if after is None else after[1],
        "limit": limit,
    }
    statement = sql if sqlite else _pyformat(sql)
    rows = connection.exec_driver_sql(statement, params).all()
    if len(rows) < limit:
        params["candidates"] = -1 if sqlite else None  # no limit
        rows = connection.exec_driver_sql(statement, params).all()
    return [SessionHit(r[0], float(r[1]), int(r[2]), int(r[3])) for r in rows]


def snippets(connection: Connection, query: str, text_ids: Sequence[int]) -> dict[int, str]:
    """The matching part of each text, its matches marked: text id → snippet."""
    terms = query_terms(query, MAX_TERMS)
    if not terms or not text_ids:
        return {}
    if connection.dialect.name == "sqlite":
        # Cut here: FTS5's snippet() reads the query's whole doclists again for every text,
        # which for a common word cost more than the search itself (BENCHMARKS.md).
        marks = ", ".join("?" for _ in text_ids)
        rows = connection.exec_driver_sql(
            f"SELECT id, text FROM session_texts WHERE id IN ({marks})", tuple(text_ids)
        ).all()
        return {int(r[0]): cut_snippet(r[1], terms) for r in rows}
    rows = connection.exec_driver_sql(
        "SELECT id, ts_headline('english', text, to_tsquery('english', %s), "
        f"'StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=16, MinWords=6, "
        "MaxFragments=1') FROM session_texts WHERE id = ANY(%s)",
        (_tsquery(terms), list(text_ids)),
    ).all()
    return {int(r[0]): r[1] for r in rows}


_TOKEN = re.compile(r"\w+", re.UNICODE)
SNIPPET_WORDS = 24


def cut_snippet(text: str, terms: list[str]) -> str:
    """About ``SNIPPET_WORDS`` words of ``text`` around the most query words, each marked.
    A word matches a term it starts with, or the term's stem (so "walked" matches "walk" and
    "walking"); the last term also matches as a prefix, as in the search."""
    words = list(_TOKEN.finditer(text))
    roots = [_root(t) for t in terms]
    if not words:
        return text
    hits = [i for i, w in enumerate(words) if _matches(w.group().lower(), terms, roots)]
    best = _most_distinct(words, hits)
    start = max(0, min(best - 6, len(words) - SNIPPET_WORDS))
    end = min(len(words), start + SNIPPET_WORDS)
    pieces, at, marked = [], words[start].start(), set(hits)
    for i in range(start, end):
        if i in marked:
            word = words[i]
            pieces += [text[at : word.start()], MARK_START, word.group(), MARK_END]
            at = word.end()
    pieces.append(text[at : words[end - 1].end()])
    cut = " ".join("".join(pieces).split())
    return ("…" if start > 0 else "") + cut + ("…" if end < len(words) else "")


def _root(term: str) -> str:
    return term[:-2] if len(term) > 5 else term[:-1] if len(term) > 3 else term


def _matches(word: str, terms: list[str], roots: list[str]) -> bool:
    if word.startswith(terms[-1]):
        return True
    return any(word.startswith(r) and len(word) - len(r) <= 4 for r in roots)


def _most_distinct(words: list[re.Match[str]], hits: list[int]) -> int:
    """The hit whose snippet (starting near it) would show the most different matched words,
    the first one on ties. One pass over the hits with a sliding window: a long answer can
    match thousands of times, and counting each hit's window afresh is quadratic."""
    span = SNIPPET_WORDS - 6
    seen: Counter[str] = Counter()
    best, most, end = 0, 0, 0
    for at in hits:
        while end < len(hits) and hits[end] < at + span:
            seen[words[hits[end]].group().lower()] += 1
            end += 1
        if len(seen) > most:
            best, most = at, len(seen)
        word = words[at].group().lower()
        seen[word] -= 1
        if not seen[word]:
            del seen[word]
    return best


def _fts5_match(terms: list[str]) -> str:
    quoted = ['"' + t.replace('"', '""') + '"' for t in terms]
    quoted[-1] += "*"
    return " ".join(quoted)


def _tsquery(terms: list[str]) -> str:
    # Quoted lexemes: any characters are literal inside to_tsquery.
    quoted = ["'" + t.replace("'", "''").replace("\\", "\\\\") + "'" for t in terms]
    quoted[-1] += ":*"
    return " & ".join(quoted)


def _pyformat(sql: str) -> str:
    """The named-parameter SQL in psycopg's ``%(name)s`` style."""
    for name in ("query", "candidates", "project", "boost", "score", "session", "limit"):
        sql = sql.replace(f":{name}", f"%({name})s")
    return sql


# bm25() is allowed only in the full-text query itself, hence the materialized step. SQLite's
# max() with bare columns takes them from the row holding the maximum.
_SQLITE_SEARCH = (
    "WITH m AS MATERIALIZED (SELECT rowid AS id, -bm25(session_text_search) AS rank "
    "FROM session_text_search WHERE session_text_search MATCH :query "
    "ORDER BY rowid DESC LIMIT :candidates) "
    "SELECT session_id, score, text_id, seq FROM ("
    "SELECT t.session_id AS session_id, "
    "max(m.rank * CASE t.kind WHEN 'title' THEN :boost ELSE 1.0 END) AS score, "
    "t.id AS text_id, t.seq AS seq "
    "FROM m JOIN session_texts t ON t.id = m.id WHERE t.project_id = :project "
    "GROUP BY t.session_id) "
    "WHERE score < :score OR (score = :score AND session_id > :session) "
    "ORDER BY score DESC, session_id LIMIT :limit"
)
# "id + 0": the newest candidates by a sort of the index's matches, not by walking the primary
# key backwards and testing every row.
_POSTGRES_SEARCH = (
    "WITH c AS MATERIALIZED (SELECT s.id, s.terms FROM session_text_search s, "
    "to_tsquery('english', :query) q WHERE s.terms @@ q AND s.project_id = :project "
    "ORDER BY s.id + 0 DESC LIMIT :candidates) "
    "SELECT session_id, score, text_id, seq FROM ("
    "SELECT DISTINCT ON (t.session_id) t.session_id, (ts_rank(c.terms, q, 1) "
    "* CASE WHEN t.kind = 'title' THEN :boost ELSE 1.0 END)::float8 AS score, "
    "t.id AS text_id, t.seq FROM c JOIN session_texts t ON t.id = c.id, "
    "to_tsquery('english', :query) q WHERE t.project_id = :project "
    "ORDER BY t.session_id, score DESC, t.id) best "
    "WHERE score < :score OR (score = :score AND session_id > :session) "
    "ORDER BY score DESC, session_id LIMIT :limit"
)
