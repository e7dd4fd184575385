-- Préau schema, version 1. Every table carries its establishment (school_id) so
-- that the data can later be sharded by school.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE schools (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    settings   TEXT NOT NULL,            -- JSON, see server/settings.py
    version    INTEGER NOT NULL,         -- bumped by every directory, settings or preference change
    directory_version INTEGER NOT NULL DEFAULT 1,  -- bumped by directory imports only
    created_at TEXT NOT NULL
);

CREATE TABLE profiles (
    school_id TEXT NOT NULL REFERENCES schools(id),
    id        TEXT NOT NULL,
    name      TEXT NOT NULL,
    active    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (school_id, id)
);

CREATE TABLE classes (
    school_id TEXT NOT NULL REFERENCES schools(id),
    id        TEXT NOT NULL,
    name      TEXT NOT NULL,
    level     TEXT NOT NULL DEFAULT '',
    active    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (school_id, id)
);

CREATE TABLE users (
    school_id   TEXT NOT NULL REFERENCES schools(id),
    id          TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('teacher', 'staff', 'student', 'parent')),
    first_name  TEXT NOT NULL,
    last_name   TEXT NOT NULL,
    profile     TEXT NOT NULL,
    class_id    TEXT,                    -- students
    children    TEXT NOT NULL DEFAULT '[]',  -- JSON list of user ids (parents)
    delegate_of TEXT NOT NULL DEFAULT '[]',  -- JSON list of class ids (parents)
    teaches     TEXT NOT NULL DEFAULT '[]',  -- JSON list of class ids (teachers)
    admin       INTEGER NOT NULL DEFAULT 0,  -- staff
    preferences TEXT,                    -- JSON, NULL = defaults
    active      INTEGER NOT NULL DEFAULT 1,  -- 0 = absent from the last import; kept for history
    PRIMARY KEY (school_id, id)
);

CREATE TABLE audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    school_id TEXT NOT NULL REFERENCES schools(id),
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    field     TEXT NOT NULL,
    old       TEXT,                      -- JSON
    new       TEXT                       -- JSON
);
CREATE INDEX audit_by_school ON audit (school_id, id);

CREATE TABLE discussions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    school_id       TEXT NOT NULL REFERENCES schools(id),
    subject         TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    members_version INTEGER NOT NULL DEFAULT 1,
    last_seq        INTEGER NOT NULL DEFAULT 0,
    last_at         TEXT NOT NULL
);
CREATE INDEX discussions_by_school ON discussions (school_id, id);

CREATE TABLE participants (
    school_id     TEXT NOT NULL,
    discussion_id INTEGER NOT NULL REFERENCES discussions(id),
    user_id       TEXT NOT NULL,
    invited_by    TEXT,                  -- NULL for the creator
    joined_at     TEXT NOT NULL,
    left_at       TEXT,
    left_seq      INTEGER,               -- last message seq visible after leaving (history bound)
    read_seq      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (discussion_id, user_id)
);
CREATE INDEX participants_by_user ON participants (school_id, user_id);

CREATE TABLE messages (
    school_id     TEXT NOT NULL,
    discussion_id INTEGER NOT NULL REFERENCES discussions(id),
    seq           INTEGER NOT NULL,
    sender        TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    body          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (discussion_id, seq),
    UNIQUE (discussion_id, sender, client_id)
);
-- A retried start finds the discussion its first message created.
CREATE INDEX messages_by_client ON messages (school_id, sender, client_id);

-- Messages written outside the allowed hours in defer mode (G3), delivered at the
-- opening after a fresh policy check. claimed_at marks the node processing one, so
-- that a node dying mid-way only delays it (append is idempotent by client_id).
CREATE TABLE held (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    school_id     TEXT NOT NULL,
    sender        TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    discussion_id INTEGER,               -- NULL for a held start
    subject       TEXT,                  -- a held start
    recipients    TEXT,                  -- a held start: JSON list of user ids
    body          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    release_at    TEXT NOT NULL,
    claimed_at    TEXT,
    UNIQUE (school_id, sender, client_id)
);
CREATE INDEX held_due ON held (release_at);
