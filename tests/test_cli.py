import json
import os

import faiss
import numpy as np
import pytest

from conftest import DATA
from semsearch.checksum import file_sha256
from semsearch.encoder import load_encoder
from semsearch.index import Index
from semsearch.store import Store


def vectors_file(index_dir):
    return index_dir / Index.open(index_dir, verify=False).manifest["vectors_file"]


def test_index_then_query(run, run_json, corpus, indexes_home):
    out = run("index", "--index", "demo", corpus).stdout
    assert "3 added" in out
    result = run("query", "--index", "demo", "which planet is red?", "-k", "2").stdout
    assert "Mars is called the red planet." in result
    hits = run_json("query", "-i", "demo", "which planet is red?", "-k", "2")[0]["hits"]
    assert hits[0]["text"] == "Mars is called the red planet."
    assert hits[0]["document_id"].endswith("space.md") and hits[0]["dense_score"] > 0.5
    doc_text = (corpus / "space.md").read_text()
    assert doc_text[hits[0]["char_start"]:hits[0]["char_end"]] == hits[0]["text"]
    assert (indexes_home / "demo" / "store.db").exists()


def test_queries_from_file_and_stdin(run_json, corpus, tmp_path):
    run_json("index", "-i", "demo", corpus)
    (tmp_path / "q.txt").write_text("red planet\n\nbread oven\n")
    results = run_json("query", "-i", "demo", "--file", tmp_path / "q.txt", "-k", "1")
    assert [r["hits"][0]["text"] for r in results] == [
        "Mars is called the red planet.", "Bake the bread in a hot oven."]
    results = run_json("query", "-i", "demo", "-f", "-", "-k", "1", input="pet bird talking\n")
    assert "parrot" in results[0]["hits"][0]["text"]


def test_reindex_skips_unchanged_and_replaces_changed(run_json, corpus, fake_model):
    first = run_json("index", "-i", "demo", "--model", fake_model, corpus)
    assert first["added"] == 3
    again = run_json("index", "-i", "demo", corpus)
    assert (again["added"], again["replaced"], again["unchanged"], again["units"]) == (0, 0, 3, 0)
    (corpus / "pets.txt").write_text("Hamsters store food in their cheeks.")
    changed = run_json("index", "-i", "demo", corpus)
    assert (changed["added"], changed["replaced"], changed["unchanged"]) == (0, 1, 2)
    texts = [h["text"] for h in run_json("query", "-i", "demo", "cats", "-k", "20")[0]["hits"]]
    assert "Hamsters store food in their cheeks." in texts
    assert not any("Cats" in t for t in texts)
    assert run_json("check", "-i", "demo")["consistent"]


def test_remove_by_path_and_id(run_json, corpus, tmp_path, fake_model):
    run_json("index", "-i", "demo", "--model", fake_model, corpus)
    assert run_json("remove", "-i", "demo", corpus / "pets.txt")["removed"] == 1
    info = run_json("info", "-i", "demo")
    assert (info["documents"], info["vectors"]) == (2, info["units"])
    hits = run_json("query", "-i", "demo", "cats and dogs", "-k", "10")[0]["hits"]
    assert not any(h["document_id"].endswith("pets.txt") for h in hits)
    doc_id = str((corpus / "food.html").resolve())
    assert run_json("remove", "-i", "demo", doc_id)["removed"] == 1
    assert run_json("remove", "-i", "demo", "no-such-doc")["removed"] == 0
    assert run_json("info", "-i", "demo")["documents"] == 1


def test_where_filters_before_ranking(run_json, tmp_path, fake_model):
    records = [{"id": f"cat{i}", "text": f"My cat number {i} loves to sleep.", "lang": "en"}
               for i in range(30)]
    records += [{"id": f"bank{i}", "text": f"Interest rates at bank {i} went up.", "lang": "fr"}
                for i in range(6)]
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    run_json("index", "-i", "mixed", "--model", fake_model, path)
    hits = run_json("query", "-i", "mixed", "sleepy cats", "-k", "5", "--where", "lang=fr")[0]
    assert len(hits["hits"]) == 5
    assert all(h["metadata"]["lang"] == "fr" for h in hits["hits"])
    none = run_json("query", "-i", "mixed", "cats", "--where", "lang=de")[0]["hits"]
    assert none == []


def test_by_document_min_score_and_context(run_json, corpus, fake_model):
    run_json("index", "-i", "demo", "--model", fake_model, corpus)
    hits = run_json("query", "-i", "demo", "animals", "-k", "3", "--by-document")[0]["hits"]
    assert len({h["document_id"] for h in hits}) == len(hits) == 3
    strict = run_json("query", "-i", "demo", "red planet", "--min-score", "0.5")[0]["hits"]
    assert strict and all(h["dense_score"] >= 0.5 for h in strict)
    hit = run_json("query", "-i", "demo", "red planet", "-k", "1", "-C", "1")[0]["hits"][0]
    assert [c["text"] for c in hit["context"]] == ["Space\n\nThe Moon orbits the Earth.",
                                                    "Astronauts live on the International Space"
                                                    " Station."]


def test_passage_units_and_stdin(run_json, fake_model):
    text = " ".join(f"Fact {i} is about the ocean and its tides." for i in range(40))
    result = run_json("index", "-i", "passages", "--model", fake_model, "--unit", "passage",
                      "--passage-tokens", "40", "-", input=text)
    assert 1 < result["units"] < 40
    info = run_json("info", "-i", "passages")
    assert info["unit"] == "passage" and info["documents"] == 1


def test_info_list_and_help(run, run_json, corpus):
    run_json("index", "-i", "one", corpus)
    info = run_json("info", "-i", "one")
    assert info["model"] == "all-MiniLM-L6-v2" and info["pooling"] == "mean"
    assert info["dimension"] == 384 and info["faiss_built"] == "Flat" and info["bytes"] > 0
    listed = run_json("list")
    assert [row["name"] for row in listed] == ["one"]
    assert "one" in run("list").stdout
    assert "--where" in run("query", "--help").stdout


def test_mismatched_model_is_refused_and_bert_folder_works(run, run_json, corpus, tiny_bert):
    run_json("index", "-i", "demo", corpus)
    err = run("query", "-i", "demo", "x", "--model", tiny_bert, expect=1).stderr
    assert "was built with model all-MiniLM-L6-v2" in err and "Traceback" not in err
    run("index", "-i", "demo", "--model", tiny_bert, corpus, expect=1)
    run("index", "-i", "demo", "--unit", "document", corpus, expect=1)
    result = run_json("index", "-i", "tiny", "--model", tiny_bert, "--pooling", "cls", corpus)
    assert result["added"] == 3
    info = run_json("info", "-i", "tiny")
    assert (info["dimension"], info["pooling"]) == (32, "cls")
    assert run_json("query", "-i", "tiny", "moon")[0]["hits"]


def test_binary_file_is_skipped(run, corpus, fake_model):
    (corpus / "blob.txt").write_bytes(bytes(range(256)) * 4)
    result = run("index", "-i", "demo", "--model", fake_model, corpus)
    assert "blob.txt: skipped, looks like a binary file" in result.stderr
    assert "3 added" in result.stdout


def test_missing_input_and_missing_index_are_one_line_errors(run, tmp_path, fake_model):
    err = run("index", "-i", "demo", "--model", fake_model, tmp_path / "missing.txt",
              expect=1).stderr
    assert "no such file" in err and err.count("\n") == 1
    err = run("query", "-i", "nothing-here", "hello", expect=1).stderr
    assert "no index at" in err and err.count("\n") == 1


def test_empty_corpus_and_damaged_store_are_one_line_errors(run, tmp_path, indexes_home,
                                                            fake_model):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blank.txt").write_text("   \n")
    err = run("index", "-i", "demo", "--model", fake_model, tmp_path / "empty", expect=1).stderr
    assert "no documents found" in err
    for leftover in (indexes_home / "demo").glob("store.db-*"):
        leftover.unlink()
    (indexes_home / "demo" / "store.db").write_bytes(b"this is not a database" * 100)
    err = run("info", "-i", "demo", expect=1).stderr
    assert "is not a semsearch store" in err and err.count("\n") == 1


def test_truncated_vector_file_is_detected_and_repaired(run, run_json, corpus, indexes_home,
                                                        fake_model):
    run_json("index", "-i", "demo", "--model", fake_model, corpus)
    before = run_json("query", "-i", "demo", "red planet", "-k", "3")
    path = vectors_file(indexes_home / "demo")
    path.write_bytes(path.read_bytes()[:100])
    err = run("query", "-i", "demo", "red planet", expect=1).stderr
    assert str(path) in err and "checksum" in err and "check --repair" in err
    report = json.loads(run("check", "-i", "demo", "--json", expect=1).stdout)
    assert not report["consistent"]
    repaired = run_json("check", "-i", "demo", "--repair")
    assert repaired["repaired"]["reembedded"] == repaired["units"]
    assert run_json("query", "-i", "demo", "red planet", "-k", "3") == before


def test_store_vector_mismatch_is_detected_and_repaired(run, run_json, corpus, indexes_home,
                                                        fake_model):
    run_json("index", "-i", "demo", "--model", fake_model, corpus)
    before = run_json("query", "-i", "demo", "bread", "-k", "4")
    path = vectors_file(indexes_home / "demo")
    vectors = faiss.read_index(str(path))
    vectors.remove_ids(np.array([0, 1], dtype=np.int64))
    faiss.write_index(vectors, str(path))
    store = Store(indexes_home / "demo" / "store.db")  # a file that passes its checksum
    with store.db.atomic():
        store.set_manifest({"vectors_sha256": file_sha256(path)})
    err = run("query", "-i", "demo", "bread", expect=1).stderr
    assert "check --repair" in err
    assert run_json("check", "-i", "demo", "--repair")["repaired"]["reembedded"] == 2
    assert run_json("query", "-i", "demo", "bread", "-k", "4") == before


def test_bit_flip_in_the_vector_file_is_caught(run, run_json, corpus, indexes_home, fake_model):
    run_json("index", "-i", "demo", "--model", fake_model, corpus)
    before = run_json("query", "-i", "demo", "bread", "-k", "4")
    path = vectors_file(indexes_home / "demo")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # inside the vectors: faiss alone would load it silently
    path.write_bytes(bytes(data))
    err = run("query", "-i", "demo", "bread", expect=1).stderr
    assert err.count("\n") == 1 and "checksum" in err and path.name in err
    run_json("check", "-i", "demo", "--repair")
    assert run_json("query", "-i", "demo", "bread", "-k", "4") == before


@pytest.mark.parametrize("factory", ["HNSW32", "IVF4,Flat"])
def test_other_faiss_types(run_json, tmp_path, factory, fake_model):
    lines = [json.dumps({"id": f"d{i}", "text": f"Note {i}: item {i % 7} is stored in box {i}.",
                         "shelf": str(i % 3)}) for i in range(200)]
    (tmp_path / "notes.jsonl").write_text("\n".join(lines))
    run_json("index", "-i", "ann", "--model", fake_model, "--faiss", factory,
             tmp_path / "notes.jsonl")
    info = run_json("info", "-i", "ann")
    assert info["faiss_built"] == factory and info["vectors"] == 200
    assert info["search_effort"] >= 1 and info["measured_recall"] >= 0.95
    run_json("index", "-i", "ann", "--recall", "0.99", tmp_path / "notes.jsonl")
    info = run_json("info", "-i", "ann")
    assert info["recall_target"] == 0.99 and info["measured_recall"] >= 0.99
    assert run_json("remove", "-i", "ann", "d0", "d1")["removed"] == 2
    hits = run_json("query", "-i", "ann", "box 42", "-k", "5", "-w", "shelf=1")[0]["hits"]
    assert len(hits) == 5 and all(h["metadata"]["shelf"] == "1" for h in hits)
    mapped = run_json("query", "-i", "ann", "box 42", "--mmap", "--effort", "64")[0]["hits"]
    assert [h["unit_id"] for h in mapped] == [h["unit_id"] for h in run_json(
        "query", "-i", "ann", "box 42", "--effort", "64")[0]["hits"]]
    assert run_json("check", "-i", "ann")["consistent"]


def test_bad_faiss_string(run, corpus, fake_model):
    assert "not a FAISS factory string" in run(
        "index", "-i", "x", "--model", fake_model, "--faiss", "Nonsense42", corpus,
        expect=1).stderr


def test_eval_sts_matches_plain_sentence_transformers(run_json):
    from scipy.stats import spearmanr

    # fp32 on both sides: bf16 (auto on some CPUs) rounds by batch shape
    encoder = load_encoder(precision="fp32", backend="torch")
    result = run_json("--precision", "fp32", "eval", "sts", DATA / "sts-mini.csv")
    rows = [line.split("\t") for line in (DATA / "sts-mini.csv").read_text().splitlines()]
    a = encoder.model.encode([r[5] for r in rows], normalize_embeddings=True)
    b = encoder.model.encode([r[6] for r in rows], normalize_embeddings=True)
    expected = spearmanr([float(r[4]) for r in rows], (a * b).sum(axis=1)).statistic
    assert result["pairs"] == 20
    assert result["spearman"] == round(100 * expected, 2)
    assert result["spearman"] > 70


def test_eval_retrieval(run, run_json):
    result = run_json("eval", "retrieval", DATA / "beir-mini", "--mode", "dense", "--mode",
                      "keyword", "--mode", "hybrid")
    assert result["queries"] == 5 and result["documents"] == 10
    assert [row["mode"] for row in result["results"]] == ["dense", "keyword", "hybrid"]
    for row in result["results"]:
        assert row["ndcg@10"] > 80 and row["recall@100"] == 100
    assert "nDCG@10" in run("eval", "retrieval", DATA / "beir-mini").stdout
    from semsearch.evaluation import held_out

    held = run_json("eval", "retrieval", DATA / "beir-mini", "--hold-out", "0.5", "--no-chunk")
    assert held["queries"] == sum(held_out(f"q{i}", 0.5) for i in range(1, 6))
    assert result["sentence_vectors"] and result["document_keywords"]
    plain = run_json("eval", "retrieval", DATA / "beir-mini", "--no-sentence-vectors",
                     "--unit-keywords")
    assert not (plain["sentence_vectors"] or plain["document_keywords"])


def test_precision_is_chosen_from_the_hardware_and_can_be_forced(run, run_json, corpus):
    from semsearch.encoder import TORCH_FROM_TOKENS, cpu_has_fast_bf16, default_device

    run_json("index", "-i", "p", corpus)
    expected = "bf16" if cpu_has_fast_bf16() else "fp32"
    assert run_json("info", "-i", "p")["encoder"] == {
        "backend": "auto", "device": default_device(), "precision": expected,
        "queries": f"onnx fp32 (cpu), torch {expected} from {TORCH_FROM_TOKENS[expected]} tokens"}
    assert run_json("--backend", "torch", "info", "-i", "p")["encoder"] == {
        "backend": "torch", "device": default_device(), "precision": expected}
    fp32 = run_json("--precision", "fp32", "query", "-i", "p", "red planet", "--mode", "dense")
    bf16 = run_json("--precision", "bf16", "query", "-i", "p", "red planet", "--mode", "dense")
    assert os.environ.get("SEMSEARCH_PRECISION") is None  # the setting ends with the command
    assert [h["unit_id"] for h in bf16[0]["hits"][:3]] == [h["unit_id"] for h in
                                                           fp32[0]["hits"][:3]]
    assert fp32[0]["hits"][0]["text"] == "Mars is called the red planet."
    assert abs(bf16[0]["hits"][0]["score"] - fp32[0]["hits"][0]["score"]) < 0.02
    assert "precision" in run("--precision", "int4", "info", "-i", "p", expect=2).stderr


def test_compact_gives_back_the_space_of_removed_documents(run, run_json, tmp_path, fake_model):
    lines = [json.dumps({"id": f"d{i}", "text": f"Record {i} describes part {i * 7} in detail. "
                         * 5}) for i in range(300)]
    (tmp_path / "parts.jsonl").write_text("\n".join(lines))
    run_json("index", "-i", "parts", "--model", fake_model, tmp_path / "parts.jsonl")
    assert run_json("remove", "-i", "parts", *[f"d{i}" for i in range(20, 300)])["removed"] == 280
    sizes = run_json("compact", "-i", "parts")
    assert sizes["bytes_after"] < 0.5 * sizes["bytes_before"]
    assert run_json("check", "-i", "parts")["consistent"]
    hits = run_json("query", "-i", "parts", "part 70", "-k", "30", "--by-document")[0]["hits"]
    assert len(hits) == 20 and hits[0]["document_id"] == "d10"
