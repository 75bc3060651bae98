#!/usr/bin/env python3
"""The rows of a gen_rows.py file as `credit-tender import` stores them, for COPY.

Fills a PostgreSQL store for read benchmarks (national scale) faster than the
import, which checks each row: the canonical JSON body and its SHA-256 digest
are written as the import writes them for these files (no score, document_ref
"x"). Only for files from gen_rows.py, into a store whose data version VERSION
exists:

    python3 examples/import_bench/pg_bulk.py 2 n1m.csv | psql -h 127.0.0.1 -U postgres ct_n1m -c \\
        '\\copy records (record_id, version, kind, credit_code, digest, body) from stdin (format csv)'
    psql -h 127.0.0.1 -U postgres ct_n1m -c 'insert into changed_codes select distinct 2, credit_code from records where version = 2' \\
        -c 'analyze records, changed_codes'
"""
import hashlib
import sys


def main() -> None:
    version, path = sys.argv[1], sys.argv[2]
    out = sys.stdout
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            code, name, domain, issuer, year, grade, _score, valid_from, valid_to = line.rstrip("\n").split(",")
            rid = f"eval:{issuer}:{domain}:{year}:{code}"
            body = (
                '{"type":"evaluation","id":"%s","document_ref":"x","credit_code":"%s","entity_name":"%s","domain":"%s",'
                '"issuer":"%s","year":%s,"grade":"%s","valid_from":"%s","valid_to":"%s","evaluation_kind":"annual","status":"published"}'
                % (rid, code, name, domain, issuer, year, grade, valid_from, valid_to)
            )
            digest = hashlib.sha256(body.encode()).hexdigest()
            out.write('"%s",%s,"evaluation","%s","%s","%s"\n' % (rid, version, code, digest, body.replace('"', '""')))


if __name__ == "__main__":
    main()
