-- Information broadcasts and polls (G8). Counters on the broadcast row and per-choice
-- counts in poll_counts are updated in the same transaction as the recipient's row,
-- so that the author's figures are exact at every version.

CREATE TABLE broadcasts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    school_id     TEXT NOT NULL REFERENCES schools(id),
    author        TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('information', 'poll')),
    title         TEXT NOT NULL,
    body          TEXT NOT NULL,
    audience      TEXT NOT NULL,          -- JSON {roles, classes, users}, as the author gave it
    ack_requested INTEGER NOT NULL DEFAULT 0,
    questions     TEXT NOT NULL DEFAULT '[]',  -- JSON, polls
    anonymous     INTEGER NOT NULL DEFAULT 0,
    deadline      TEXT,                   -- polls
    created_at    TEXT NOT NULL,
    publish_at    TEXT NOT NULL,          -- when it is (or was) to be published
    expires_at    TEXT,
    status        TEXT NOT NULL CHECK (status IN ('scheduled', 'published', 'dropped')),
    claimed_at    TEXT,                   -- a node is publishing it (scheduled only)
    published_at  TEXT,
    dropped_code  TEXT,
    dropped_message TEXT,
    reminded_at   TEXT,                   -- the last reminder
    version       INTEGER NOT NULL DEFAULT 1,
    n_recipients  INTEGER NOT NULL DEFAULT 0,
    n_received    INTEGER NOT NULL DEFAULT 0,
    n_read        INTEGER NOT NULL DEFAULT 0,
    n_acknowledged INTEGER NOT NULL DEFAULT 0,
    n_answered    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (school_id, author, client_id)
);
CREATE INDEX broadcasts_by_author ON broadcasts (school_id, author, id);
CREATE INDEX broadcasts_due ON broadcasts (status, publish_at);

CREATE TABLE broadcast_recipients (
    broadcast_id    INTEGER NOT NULL REFERENCES broadcasts(id),
    school_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    received_at     TEXT,
    read_at         TEXT,
    acknowledged_at TEXT,
    answered_at     TEXT,
    answers         TEXT,                 -- JSON, one answer per question
    reminded_at     TEXT,
    PRIMARY KEY (broadcast_id, user_id)
);
CREATE INDEX broadcast_recipients_by_user ON broadcast_recipients (school_id, user_id, broadcast_id);

CREATE TABLE poll_counts (
    broadcast_id INTEGER NOT NULL REFERENCES broadcasts(id),
    question     INTEGER NOT NULL,
    choice       INTEGER NOT NULL,
    votes        INTEGER NOT NULL,
    PRIMARY KEY (broadcast_id, question, choice)
);
