-- Search in one's own discussions (docs/protocol.md, "search"; SQLite's 0010).
--
-- preau_search: French, with accents and case folded (unaccent, then the French
-- stemmer), so « eleve » finds « élève » and « élèves ». unaccent ships with PostgreSQL
-- (postgresql-contrib) and is a trusted extension: a database owner may create it
-- (docs/operating.md). Everything here may run again over itself.
CREATE EXTENSION IF NOT EXISTS unaccent;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'preau_search') THEN
        CREATE TEXT SEARCH CONFIGURATION preau_search (COPY = pg_catalog.french);
        ALTER TEXT SEARCH CONFIGURATION preau_search
            ALTER MAPPING FOR hword, hword_part, word WITH unaccent, french_stem;
    END IF;
END $$;

-- Message text, indexed by expression: no column nor trigger, so the append (one
-- statement, the group commit's too) only adds the index entry. GIN's pending list
-- (fastupdate, the default) keeps that entry cheap; the search merges the list.
-- Subjects and names are matched without an index, among the user's own discussions.
CREATE INDEX IF NOT EXISTS messages_text ON messages
    USING gin (to_tsvector('preau_search'::regconfig, body));
