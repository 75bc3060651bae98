-- Every policy version ever loaded, so tenders bound to an old digest can
-- still be assessed after the file changed.
CREATE TABLE policies (
    digest    TEXT NOT NULL PRIMARY KEY,
    policy_id TEXT NOT NULL,
    source    TEXT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL
);

-- Tender versions; an amendment adds a row.
CREATE TABLE tenders (
    tender_id           TEXT    NOT NULL,
    version             BIGINT  NOT NULL,
    title               TEXT    NOT NULL,
    domain              TEXT    NOT NULL,
    region              TEXT    NOT NULL,
    bid_deadline        TIMESTAMPTZ    NOT NULL,
    estimated_price_fen BIGINT  NOT NULL,
    nominal_deposit_fen BIGINT  NOT NULL,
    evaluation_method   TEXT    NOT NULL,
    policy_id           TEXT    NOT NULL,
    policy_digest       TEXT    NOT NULL REFERENCES policies (digest),
    registered_at       TIMESTAMPTZ    NOT NULL,
    PRIMARY KEY (tender_id, version)
);

CREATE TABLE bids (
    tender_id     TEXT    NOT NULL,
    sequence      BIGINT  NOT NULL,
    bidder        TEXT    NOT NULL,
    registered_at TIMESTAMPTZ    NOT NULL,
    PRIMARY KEY (tender_id, sequence),
    UNIQUE (tender_id, bidder)
);
