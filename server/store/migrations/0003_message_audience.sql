-- Who must never receive a message (docs/policy.md, "The invariant"): the present
-- participants the gatekeeper skipped when it was posted (switched off, or gone from
-- the directory), as a JSON list of user ids. NULL, the usual case, is "nobody": the
-- hot path writes and reads nothing more.
ALTER TABLE messages ADD COLUMN hidden_from TEXT;

-- Counting a reader's hidden messages (unread) touches only the rare rows that have some.
CREATE INDEX messages_hidden ON messages (discussion_id, seq) WHERE hidden_from IS NOT NULL;
