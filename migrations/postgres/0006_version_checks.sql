-- Every row of records and changed_codes names a data version that exists.
-- That was a foreign key, which PostgreSQL checks with a query per inserted
-- row: in an import of 200,000 records, the check took two fifths of the
-- time (BENCHMARKS.md, Import). The same rule is now checked once per
-- statement, over all the rows the statement inserted, and a data version,
-- once written, can be neither removed nor renumbered (what the foreign key
-- also kept: its rows point at it).
ALTER TABLE records DROP CONSTRAINT records_version_fkey;
ALTER TABLE changed_codes DROP CONSTRAINT changed_codes_version_fkey;

CREATE FUNCTION refuse_unknown_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing BIGINT;
BEGIN
    SELECT n.version INTO missing
    FROM (SELECT DISTINCT version FROM inserted) n
    WHERE NOT EXISTS (SELECT 1 FROM data_versions d WHERE d.version = n.version)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% on %: data version % does not exist', TG_OP, TG_TABLE_NAME, missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER records_version_exists AFTER INSERT ON records
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION refuse_unknown_data_version();
CREATE TRIGGER changed_codes_version_exists AFTER INSERT ON changed_codes
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION refuse_unknown_data_version();
-- An UPDATE (or an upsert's DO UPDATE) that moves a row to another version
-- is checked the same way, as the foreign key checked it. (A transition
-- table may not be given with an UPDATE OF column list, so every UPDATE.)
CREATE TRIGGER records_version_exists_after_update AFTER UPDATE ON records
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION refuse_unknown_data_version();
CREATE TRIGGER changed_codes_version_exists_after_update AFTER UPDATE ON changed_codes
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION refuse_unknown_data_version();

CREATE FUNCTION refuse_data_version_removal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% of data_versions refused: data versions are never removed or renumbered', TG_OP
        USING ERRCODE = 'foreign_key_violation';
END
$$;

CREATE TRIGGER data_versions_kept BEFORE DELETE OR UPDATE OF version OR TRUNCATE ON data_versions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_data_version_removal();
