"""A short-document retrieval corpus in BEIR layout: Debian package descriptions.

    python benchmarks/debian_beir.py results/debian-beir [--documents 5000]

Each query is a package's synopsis (its one-line summary), its one relevant document that
package's long description (a few sentences; the package name as title). Packages come from
Debian bookworm main as apt lists them (`apt-get update -o Acquire::Languages=en` fetches the
descriptions): one package per source, no -dev/-doc/-dbg/-data/-common packages, descriptions of
at least two sentences and at most 1,500 characters, synopses of three words or more, each
synopsis and description once; a seeded sample. Then, for example:

    python benchmarks/retrieval_defaults.py results/debian-beir --split test
        --index results/debian-index
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from clustering_corpora import apt_list, stanzas


def packages() -> list[dict]:
    listing = apt_list("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages*")
    translation = apt_list("deb.debian.org_debian_dists_bookworm_main_i18n_Translation-en*")
    if not listing or not translation:
        raise SystemExit("no apt lists with English descriptions: run"
                         " `apt-get update -o Acquire::Languages=en` first")
    descriptions = {s["Description-md5"]: s["Description-en"] for s in stanzas(translation)
                    if "Description-md5" in s and "Description-en" in s}
    sources, synopses, bodies, found = set(), set(), set(), []
    for stanza in stanzas(listing):
        name = stanza.get("Package", "")
        source = stanza.get("Source", name).split(" ")[0]
        text = descriptions.get(stanza.get("Description-md5", ""))
        if (not text or source in sources or name.endswith(
                ("-data", "-doc", "-dbg", "-common", "-dev"))):
            continue
        synopsis, _, body = text.partition("\n")
        synopsis = synopsis.strip()
        paragraphs = [" ".join(line.strip() for line in part.splitlines() if line.strip() != ".")
                      for part in body.split("\n.\n")]
        body = "\n\n".join(p for p in paragraphs if p)
        if (len(synopsis.split()) < 3 or not 40 <= len(body) <= 1500 or body.count(". ") < 1
                or synopsis in synopses or body in bodies):
            continue
        sources.add(source)
        synopses.add(synopsis)
        bodies.add(body)
        found.append({"name": name, "synopsis": synopsis, "body": body})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--documents", type=int, default=5000)
    args = parser.parse_args()
    chosen = packages()
    random.Random(0).shuffle(chosen)
    chosen = chosen[:args.documents]
    folder = Path(args.folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as corpus, \
            open(folder / "queries.jsonl", "w", encoding="utf-8") as queries:
        for row in chosen:
            corpus.write(json.dumps({"_id": row["name"], "title": row["name"],
                                     "text": row["body"]}) + "\n")
            queries.write(json.dumps({"_id": f"q-{row['name']}", "text": row["synopsis"]}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q-{row['name']}\t{row['name']}\t1\n" for row in chosen))
    print(f"wrote {len(chosen)} documents and queries to {folder}")


if __name__ == "__main__":
    main()
