-- Committee access: a platform grants one member one tender until expires_at.
-- The link and the session are kept only as SHA-256 digests; a link is used
-- once (used_at), and a grant can be revoked (revoked_at).
CREATE TABLE committee_grants (
    grant_id       TEXT NOT NULL PRIMARY KEY,
    tender_id      TEXT NOT NULL,
    member_ref     TEXT NOT NULL,
    granted_by     TEXT NOT NULL,
    granted_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    link_sha256    TEXT NOT NULL UNIQUE,
    used_at        TEXT,
    session_sha256 TEXT UNIQUE,
    revoked_at     TEXT
);
