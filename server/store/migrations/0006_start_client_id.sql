-- A start is unique by (school, creator, client id) in the database itself, so that two
-- nodes (or two connections) handling the same start at once create one discussion:
-- the second insert conflicts and its transaction is undone (server/store/contract.py,
-- AlreadyStarted). NULL for a discussion created without a first message.
ALTER TABLE discussions ADD COLUMN start_client_id TEXT;

-- Existing starts keep being found by their retries: the client id of the first message
-- where the creator sent it (what find_started matched until now)...
UPDATE discussions SET start_client_id = (
    SELECT m.client_id FROM messages m
    WHERE m.discussion_id = discussions.id AND m.seq = 1 AND m.sender = discussions.created_by);
-- ...kept on the earliest discussion only, where the race this migration closes already
-- created two: the others stay as they are, their retries answered with the first.
UPDATE discussions SET start_client_id = NULL
WHERE start_client_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM discussions e
    WHERE e.school_id = discussions.school_id AND e.created_by = discussions.created_by
      AND e.start_client_id = discussions.start_client_id AND e.id < discussions.id);

CREATE UNIQUE INDEX discussions_by_start ON discussions (school_id, created_by, start_client_id)
    WHERE start_client_id IS NOT NULL;
