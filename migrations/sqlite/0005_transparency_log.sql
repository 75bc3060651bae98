-- The transparency log of issued statements (RFC 6962 / 9162 Merkle tree).
-- log_leaves: each signed statement, as its DSSE envelope in compact JSON,
-- at its index; log_hashes: the tree's stored hashes in tlog order
-- (stored_hash_index), about two per leaf; log_checkpoints: every signed
-- checkpoint (C2SP tlog-checkpoint) ever published. Rows are only added.
CREATE TABLE log_leaves (
    idx       INTEGER NOT NULL PRIMARY KEY,
    leaf_hash BLOB NOT NULL,
    leaf      BLOB NOT NULL
);
CREATE INDEX log_leaves_by_hash ON log_leaves (leaf_hash);
CREATE TABLE log_hashes (
    idx  INTEGER NOT NULL PRIMARY KEY,
    hash BLOB NOT NULL
);
CREATE TABLE log_checkpoints (
    size         INTEGER NOT NULL PRIMARY KEY,
    root         BLOB NOT NULL,
    note         TEXT NOT NULL,
    published_at TEXT NOT NULL
);
