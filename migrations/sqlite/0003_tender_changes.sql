-- The tender change feed: every registration, amendment and new bid, so that
-- each replica's tender cache can follow it like the credit change feed.
CREATE TABLE tender_changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    tender_id TEXT NOT NULL
);
