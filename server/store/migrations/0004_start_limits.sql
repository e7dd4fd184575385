-- Limits on discussion starts per user (settings "limits"): the node counts a user's
-- starts of the last hour and day on every `start`, by creator and time.
CREATE INDEX discussions_by_creator ON discussions (school_id, created_by, created_at);
