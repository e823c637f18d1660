"""The default clustering against plain scikit-learn k-means, on every labelled corpus we have.

    python benchmarks/clustering_corpora.py ../shared/data --corpora results/corpora
        [--seeds 10] [--json out.json]

Corpora (JSONL with text and label, written to --corpora and reused):
- sib200: SIB-200 English, all 1,004 sentences, 7 topics (DATA/sib200).
- stsb-genre: 3,000 distinct STS Benchmark sentences labelled by genre: captions, news, forums
  (DATA/stsb; a seeded sample).
- debian-long / debian-short: 1,712 Debian bookworm packages from 8 sections (games, sound,
  graphics, mail, database, editors, hamradio, science; one package per source, at most 250 a
  section), as the synopsis plus the first paragraph of the description, and as the synopsis
  alone. Read from apt's lists (`apt-get update -o Acquire::Languages=en` fetches the
  descriptions); skipped when they are not there.

Each corpus is embedded once with the default model; every method clusters the same vectors
with k = the number of labels, seeds 0..N-1: scikit-learn's KMeans (its defaults), semsearch
`--reduce none` (20 spherical restarts on the vectors) and semsearch's default (k-means on a
10-d UMAP reduction). The margin is (default − scikit-learn) in scikit-learn standard
deviations; `k auto` is the default method with `-k auto`, per seed.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import semsearch  # noqa: F401  (offline environment)
from _common import report
from semsearch.clustering import cluster_vectors
from semsearch.encoder import load_encoder

DEBIAN_SECTIONS = ("games", "sound", "graphics", "mail", "database", "editors", "hamradio",
                   "science")
APT_LISTS = Path("/var/lib/apt/lists")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def sib200(data: Path) -> list[dict]:
    rows = []
    for split in ("train", "dev", "test"):
        with open(data / "sib200" / f"{split}.tsv", encoding="utf-8", newline="") as handle:
            rows += [{"text": r["text"], "label": r["category"]}
                     for r in csv.DictReader(handle, delimiter="\t")]
    return rows


def stsb_genre(data: Path, size: int = 3000) -> list[dict]:
    seen, rows = set(), []
    for split in ("train", "dev", "test"):
        lines = (data / "stsb" / f"sts-{split}.csv").read_text(encoding="utf-8").splitlines()
        for line in lines:
            fields = line.split("\t")
            for sentence in fields[5:7]:
                if sentence not in seen:
                    seen.add(sentence)
                    rows.append({"text": sentence, "label": fields[0].removesuffix("s") + "s"})
    random.Random(0).shuffle(rows)
    return rows[:size]


def stanzas(text: str) -> list[dict]:
    """Debian control stanzas as dicts; continuation lines are joined to their field."""
    found = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line.startswith(" ") and key:
                fields[key] += "\n" + line[1:]
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            found.append(fields)
    return found


def apt_list(pattern: str) -> str | None:
    files = sorted(APT_LISTS.glob(pattern))
    if not files:
        return None
    return subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(files[0])],
                          capture_output=True, text=True, errors="replace", check=True).stdout


def debian(per_section: int = 250) -> tuple[list[dict], list[dict]] | None:
    packages = apt_list("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages*")
    translation = apt_list("deb.debian.org_debian_dists_bookworm_main_i18n_Translation-en*")
    if not packages or not translation:
        return None
    descriptions = {s["Description-md5"]: s["Description-en"] for s in stanzas(translation)
                    if "Description-md5" in s and "Description-en" in s}
    by_section: dict[str, list[dict]] = defaultdict(list)
    sources = set()
    for stanza in stanzas(packages):
        name, section = stanza.get("Package", ""), stanza.get("Section", "")
        if section not in DEBIAN_SECTIONS or name.endswith(("-data", "-doc", "-dbg", "-common",
                                                            "-dev")):
            continue
        source = stanza.get("Source", name).split(" ")[0]
        text = descriptions.get(stanza.get("Description-md5", ""))
        if source in sources or not text:
            continue
        synopsis, _, body = text.partition("\n")
        paragraph = body.split("\n.\n")[0].replace("\n", " ").strip()
        if len(paragraph) < 40:
            continue
        sources.add(source)
        by_section[section].append({"short": synopsis.strip(), "label": section,
                                    "long": f"{synopsis.strip()}. {paragraph}"})
    rng = random.Random(0)
    chosen = []
    for section in DEBIAN_SECTIONS:
        rng.shuffle(by_section[section])
        chosen += by_section[section][:per_section]
    rng.shuffle(chosen)
    return ([{"text": r["long"], "label": r["label"]} for r in chosen],
            [{"text": r["short"], "label": r["label"]} for r in chosen])


def build(data: Path, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    corpora = {"sib200": lambda: sib200(data), "stsb-genre": lambda: stsb_genre(data)}
    if not (folder / "debian-long.jsonl").exists():
        built = debian()
        if built:
            write_jsonl(folder / "debian-long.jsonl", built[0])
            write_jsonl(folder / "debian-short.jsonl", built[1])
    for name, make in corpora.items():
        if not (folder / f"{name}.jsonl").exists():
            write_jsonl(folder / f"{name}.jsonl", make())
    return sorted(folder.glob("*.jsonl"))


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.pstdev(values)


def main() -> None:
    from sklearn.cluster import KMeans
    from sklearn.metrics import v_measure_score

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with sib200/ and stsb/")
    parser.add_argument("--corpora", type=Path, default=Path("results/corpora"))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    encoder = load_encoder(None, None)
    rows = []
    for path in build(args.data, args.corpora):
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        labels = [r["label"] for r in records]
        k = len(set(labels))
        cached = path.with_suffix(".npy")
        if cached.exists():
            vectors = np.load(cached)
        else:
            vectors = encoder.encode([r["text"] for r in records], batch_size=32)
            np.save(cached, vectors)
        seeds = range(args.seeds)
        started = time.perf_counter()
        plain = [v_measure_score(labels, KMeans(k, random_state=s).fit_predict(vectors))
                 for s in seeds]
        plain_s = (time.perf_counter() - started) / args.seeds
        scores, seconds = {}, {}
        for name, reduction in (("none", "none"), ("default", "umap")):
            started = time.perf_counter()
            scores[name] = [v_measure_score(labels, cluster_vectors(
                vectors, k=k, seed=s, reduction=reduction).labels) for s in seeds]
            seconds[name] = (time.perf_counter() - started) / args.seeds
        auto = [cluster_vectors(vectors, k=None, seed=s).n_clusters for s in seeds]
        (sk_mean, sk_sd), (nn_mean, nn_sd), (d_mean, d_sd) = (
            mean_sd(plain), mean_sd(scores["none"]), mean_sd(scores["default"]))
        within = sum(abs(a - k) <= 0.3 * k for a in auto)
        rows.append({
            "corpus": path.stem, "items": len(records), "labels": k,
            "sklearn k-means": f"{sk_mean:.4f} ± {sk_sd:.4f}",
            "--reduce none": f"{nn_mean:.4f} ± {nn_sd:.4f}",
            "default (umap)": f"{d_mean:.4f} ± {d_sd:.4f}",
            "margin (sklearn sd)": round((d_mean - sk_mean) / max(sk_sd, 1e-9), 1),
            "k auto (per seed)": " ".join(map(str, auto)),
            "k auto within 30%": f"{within} of {len(auto)}",
            "s a run (sklearn / none / default)":
                f"{plain_s:.2f} / {seconds['none']:.2f} / {seconds['default']:.2f}"})
        print(rows[-1], flush=True)
    report("Clustering: V-measure over seeds, k = number of labels", rows, args.json_path,
           {"seeds": args.seeds, "data": str(args.data)})


if __name__ == "__main__":
    main()
