-- The tender change feed: every registration, amendment and new bid, so that
-- each replica's tender cache can follow it like the credit change feed.
-- Writers hold the write lock, so sequence order is commit order.
CREATE TABLE tender_changes (
    seq       BIGSERIAL PRIMARY KEY,
    tender_id TEXT NOT NULL
);
