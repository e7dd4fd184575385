-- A scheduled broadcast whose own time has come but which waits for the allowed hours
-- (defer mode): 1 when publish_at is an opening of the window, not a time the author
-- chose. The window may open earlier than that (the admin widens the hours); such a
-- broadcast is then due at once, while one scheduled by its author keeps its time.

ALTER TABLE broadcasts ADD COLUMN held_for_hours INTEGER NOT NULL DEFAULT 0;
