-- A start is unique by (school, creator, client id) in the database itself, so that two
-- nodes (or two connections) handling the same start at once create one discussion:
-- the second insert waits for the first's transaction, then does nothing
-- (server/store/contract.py, AlreadyStarted). NULL for a discussion created without a
-- first message. Set once at the insert and never updated: the messages' updates of
-- last_seq and last_at stay heap-only (HOT), whatever this index.
ALTER TABLE discussions ADD COLUMN start_client_id text;

-- Existing starts keep being found by their retries: the client id of the first message
-- where the creator sent it (what find_started matched until now)...
UPDATE discussions d SET start_client_id = m.client_id
FROM messages m
WHERE m.school_id = d.school_id AND m.discussion_id = d.id AND m.seq = 1
  AND m.sender = d.created_by;
-- ...kept on the earliest discussion only, where the race this migration closes already
-- created two: the others stay as they are, their retries answered with the first.
UPDATE discussions d SET start_client_id = NULL
WHERE d.start_client_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM discussions e
    WHERE e.school_id = d.school_id AND e.created_by = d.created_by
      AND e.start_client_id = d.start_client_id AND e.id < d.id);

CREATE UNIQUE INDEX discussions_by_start ON discussions (school_id, created_by, start_client_id)
    WHERE start_client_id IS NOT NULL;
