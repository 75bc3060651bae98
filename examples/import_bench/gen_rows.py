#!/usr/bin/env python3
"""Rows for `credit-tender import` benchmarks: one 2025 evaluation per firm.

    python3 examples/import_bench/gen_rows.py 1000000 rows1m-random.csv --order random
    python3 examples/import_bench/gen_rows.py 1000000 rows1m-asc.csv --order ascending
    python3 examples/import_bench/gen_rows.py 1000000 national.csv --per-firm 5  # 5,000,000 rows

Credit codes are valid (GB 32100 check digit), unique, across three cities
(Shenzhen 440300, Shanghai 310100, Beijing 110105), each graded by its own
province's issuer. `--order random` writes them in random order, as result
tables sorted by grade, score or name arrive; `--order ascending` writes the
same rows (same seed) sorted by credit code. `--per-firm K` gives each firm
K evaluations (domains and years differ; one annual grade per issuer, domain
and year), so N firms make N×K rows. Deterministic for a given seed.
"""
import argparse
import random

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CITIES = [("440300", "440000"), ("310100", "310000"), ("110105", "110000")]
GRADES = ["AA", "A", "B", "C"]
DOMAINS = ["highway_construction", "highway_design", "waterway_construction", "waterway_design"]
# (domain, year) of a firm's k-th evaluation.
SLOTS = [(d, y) for y in (2025, 2024, 2023) for d in DOMAINS]


def code(region: str, n: int) -> str:
    s = "91%sMA%07d" % (region, n)
    total = sum(ALPHABET.index(c) * pow(3, i, 31) for i, c in enumerate(s))
    return s + ALPHABET[(31 - total % 31) % 31]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("rows", type=int, help="firms (rows, unless --per-firm)")
    p.add_argument("out")
    p.add_argument("--order", choices=["random", "ascending"], default="random")
    p.add_argument("--seed", type=int, default=25)
    p.add_argument("--per-firm", type=int, default=1, choices=range(1, len(SLOTS) + 1))
    a = p.parse_args()
    rng = random.Random(a.seed)
    # Distinct serial numbers per city, drawn at random from 10^7.
    per_city = -(-a.rows // len(CITIES))
    rows = []
    for region, issuer in CITIES:
        for n in rng.sample(range(10**7), per_city):
            c = code(region, n)
            rows.extend((c, issuer, rng.choice(GRADES), k) for k in range(a.per_firm))
            if len(rows) == a.rows * a.per_firm:
                break
    if a.order == "random":
        rng.shuffle(rows)
    else:
        rows.sort()
    with open(a.out, "w", encoding="utf-8", newline="") as f:
        f.write("credit_code,entity_name,domain,issuer,year,grade,score,valid_from,valid_to\n")
        for c, issuer, grade, k in rows:
            domain, year = SLOTS[k]
            f.write(f"{c},测试{c[8:17]},{domain},{issuer},{year},{grade},,{year + 1}-03-01,{year + 2}-02-28\n")


if __name__ == "__main__":
    main()
