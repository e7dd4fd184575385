-- Search in one's own discussions (docs/protocol.md, "search"): full-text indexes of
-- message text, subjects and people's names. FTS5 with "external content": the index
-- keeps only the words, the text stays in its table. unicode61 with remove_diacritics 2
-- folds case and accents, so « eleve » finds « élève ».
--
-- The triggers keep the indexes in step whatever the path that writes (an append, the
-- first message of a start, the group commit, a store copy). Messages and subjects are
-- never rewritten nor deleted, so inserting is enough; names change at imports.
-- Everything here may run again over itself (IF NOT EXISTS, and a rebuild is a rebuild).
-- The indexes point at rows by rowid: after a VACUUM (which may renumber the rowids of
-- messages and users), rebuild them (docs/operating.md).

CREATE VIRTUAL TABLE IF NOT EXISTS message_text USING fts5(
    body, content = 'messages', tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO message_text (message_text) VALUES ('rebuild');
CREATE TRIGGER IF NOT EXISTS message_text_insert AFTER INSERT ON messages BEGIN
    INSERT INTO message_text (rowid, body) VALUES (new.rowid, new.body);
END;

CREATE VIRTUAL TABLE IF NOT EXISTS discussion_text USING fts5(
    subject, content = 'discussions', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO discussion_text (discussion_text) VALUES ('rebuild');
CREATE TRIGGER IF NOT EXISTS discussion_text_insert AFTER INSERT ON discussions BEGIN
    INSERT INTO discussion_text (rowid, subject) VALUES (new.id, new.subject);
END;

CREATE VIRTUAL TABLE IF NOT EXISTS user_text USING fts5(
    first_name, last_name, content = 'users', tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO user_text (user_text) VALUES ('rebuild');
CREATE TRIGGER IF NOT EXISTS user_text_insert AFTER INSERT ON users BEGIN
    INSERT INTO user_text (rowid, first_name, last_name)
    VALUES (new.rowid, new.first_name, new.last_name);
END;
CREATE TRIGGER IF NOT EXISTS user_text_delete AFTER DELETE ON users BEGIN
    INSERT INTO user_text (user_text, rowid, first_name, last_name)
    VALUES ('delete', old.rowid, old.first_name, old.last_name);
END;
-- One trigger, the old words out before the new ones in (an unchanged name too).
CREATE TRIGGER IF NOT EXISTS user_text_update AFTER UPDATE OF first_name, last_name ON users BEGIN
    INSERT INTO user_text (user_text, rowid, first_name, last_name)
    VALUES ('delete', old.rowid, old.first_name, old.last_name);
    INSERT INTO user_text (rowid, first_name, last_name)
    VALUES (new.rowid, new.first_name, new.last_name);
END;
