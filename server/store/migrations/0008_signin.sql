-- Sign-in through a school's identity provider (server/signin/): the short-lived grants
-- of one sign-in, kept in the database so that any node may answer any step.
--   kind 'pending': a sign-in sent to the provider, keyed by the state Préau gave it;
--   kind 'code': a one-time Préau code handed to an app, keyed by its SHA-256.
-- A grant is taken (read and deleted) in one statement: a replay finds nothing.
CREATE TABLE signin_grants (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    school_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX signin_grants_by_expiry ON signin_grants (expires_at);
