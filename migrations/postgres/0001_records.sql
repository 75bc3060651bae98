-- Every write that changes something creates one data version.
CREATE TABLE data_versions (
    version      BIGINT      PRIMARY KEY,
    recorded_at  TIMESTAMPTZ NOT NULL,
    source       TEXT        NOT NULL,
    record_count BIGINT      NOT NULL
);

-- Every version of every record; rows are only ever inserted.
CREATE TABLE records (
    record_id   TEXT   NOT NULL,
    version     BIGINT NOT NULL REFERENCES data_versions (version),
    kind        TEXT   NOT NULL,
    credit_code TEXT   NOT NULL,
    digest      TEXT   NOT NULL,
    body        TEXT   NOT NULL,
    PRIMARY KEY (record_id, version)
);
CREATE INDEX records_by_code ON records (credit_code, version);

-- The change feed: which credit codes each data version touched.
CREATE TABLE changed_codes (
    version     BIGINT NOT NULL REFERENCES data_versions (version),
    credit_code TEXT   NOT NULL,
    PRIMARY KEY (version, credit_code)
);
