-- Sign-in sessions (server/sessions.py): one per sign-in, ended at logout, at the
-- provider's back-channel logout, when the directory deactivates the user, or when a
-- refresh token is used twice (reuse detection). Kept once ended: revoked_at says when.
CREATE TABLE sessions (
    id               text PRIMARY KEY,        -- random, in the access tokens' "sid"
    school_id        text NOT NULL REFERENCES schools (id),
    user_id          text NOT NULL,
    provider         text NOT NULL,           -- how it was opened: demo, oidc, cas...
    provider_session text,                    -- the provider's sid / CAS ticket
    created_at       timestamptz NOT NULL,
    last_used_at     timestamptz NOT NULL,    -- the last refresh
    revoked_at       timestamptz,
    revoked_reason   text
);
CREATE INDEX sessions_by_user ON sessions (school_id, user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_by_provider ON sessions (school_id, provider, provider_session)
    WHERE provider_session IS NOT NULL AND revoked_at IS NULL;

-- Refresh tokens: only a SHA-256 of each (hex), never the token. Each use rotates it: the
-- used one stays (used_at set) for a day, so that its reuse is recognised; then it, and
-- every expired token or token of an ended session, is removed (prune_refresh_tokens).
CREATE TABLE refresh_tokens (
    hash        text PRIMARY KEY,
    session_id  text NOT NULL REFERENCES sessions (id),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_by_use ON refresh_tokens (used_at) WHERE used_at IS NOT NULL;
