#!/usr/bin/env python3
"""The baseline of the import benchmarks: a plain Python sqlite3 bulk insert.

    python3 examples/import_bench/raw.py rows.csv /tmp/raw.db

The same CSV rows, each turned into a JSON body and its SHA-256, inserted by
`executemany` into a table with the store's columns, key and code index,
under the store's pragmas (WAL, synchronous=FULL), in one transaction; then
the change feed from the code index. Round 4's baseline (docs/benchmarks-history.md).
"""
import csv, hashlib, json, sqlite3, sys, time

src, db = sys.argv[1], sys.argv[2]
con = sqlite3.connect(db, isolation_level=None)
con.execute("PRAGMA journal_mode=WAL"); con.execute("PRAGMA synchronous=FULL")
con.execute("CREATE TABLE records (record_id TEXT NOT NULL, version INTEGER NOT NULL, kind TEXT NOT NULL, "
            "credit_code TEXT NOT NULL, digest TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (record_id, version))")
con.execute("CREATE INDEX records_by_code ON records (credit_code, version)")
con.execute("CREATE TABLE changed_codes (version INTEGER NOT NULL, credit_code TEXT NOT NULL, PRIMARY KEY (version, credit_code))")
start = time.time()
def rows():
    with open(src, newline="") as f:
        for r in csv.DictReader(f):
            body = json.dumps(dict(r, type="evaluation"), ensure_ascii=False, sort_keys=True)
            yield (f"eval:{r['issuer']}:{r['domain']}:{r['year']}:{r['credit_code']}", 1, "evaluation",
                   r["credit_code"], hashlib.sha256(body.encode()).hexdigest(), body)
con.execute("BEGIN")
con.executemany("INSERT INTO records VALUES (?,?,?,?,?,?)", rows())
con.execute("INSERT INTO changed_codes SELECT DISTINCT 1, credit_code FROM records")
con.execute("COMMIT")
n = con.execute("SELECT COUNT(*) FROM records").fetchone()[0]
elapsed = time.time() - start
print(f"{n} rows in {elapsed:.2f} s: {n / elapsed:,.0f} rows/s")
