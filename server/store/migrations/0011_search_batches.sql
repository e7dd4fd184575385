-- Messages are indexed in batches (server/store/sqlite_search.py), no longer by a trigger
-- in the append's own transaction: FTS5 wrote a small segment at every commit, which
-- nearly doubled the appender's CPU per message. ``search_progress`` holds the largest
-- messages rowid already in ``message_text``; a catch-up indexes the rows after it and
-- moves it on, in one write transaction (so two processes never index a row twice).
-- Messages are never deleted and their rowids only grow, so nothing is skipped.
-- Search runs a catch-up first, so it still finds everything committed before it.
-- 0010 indexed every message there was: start from the last of them (0 when empty).
DROP TRIGGER IF EXISTS message_text_insert;
CREATE TABLE IF NOT EXISTS search_progress (indexed_upto INTEGER NOT NULL);
INSERT INTO search_progress (indexed_upto)
SELECT coalesce(max(rowid), 0) FROM messages WHERE NOT EXISTS (SELECT 1 FROM search_progress);
