"""The ``semsearch`` command line: parse, call the library, print."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, get_args, get_origin

import click

import semsearch  # noqa: F401  (sets the offline environment first)
from semsearch.clustering import (
    DEFAULT_REDUCTION,
    DEFAULT_RESTARTS,
    METHODS,
    PAIRWISE_LIMIT,
    REDUCTIONS,
)
from semsearch.encoder import BACKENDS, POOLING_MODES, PRECISIONS, EncoderNote, Runtime
from semsearch.errors import (
    InputError,
    SemsearchError,
    UsageError,
    damaged_store_error,
    shown_path,
)
from semsearch.readers import DEFAULT_MAX_DOCUMENT_MB, FORMATS, TITLE_SOURCES, ReadOptions
from semsearch.search import (
    DEFAULT_MODE,
    MODES,
    OptionSpec,
    SearchOptions,
    json_safe,
    option_specs,
    parse_where,
)
from semsearch.units import UNIT_CONTEXTS, UNIT_KINDS

if TYPE_CHECKING:
    from semsearch.shards import Runner

PRECISION_ENV = "SEMSEARCH_PRECISION"
BACKEND_ENV = "SEMSEARCH_BACKEND"


class _Group(click.Group):
    """Turn library errors into one-line messages instead of tracebacks."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            raise click.UsageError(str(exc)) from None
        except SemsearchError as exc:
            raise click.ClickException(str(exc)) from None
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # not damage: locked, full, I/O
                raise
            raise click.ClickException(str(damaged_store_error(exc))) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted; committed work is kept") from None


def _open_index(index_name: str | None, timeout: float = 0.0, ray_address: str | None = None,
                **options):
    """Open a named or folder index (sharded or not); the heavy libraries load here, not when
    the CLI starts."""
    from semsearch.service import open_index

    return open_index(index_name, runner=_runner(ray_address), timeout=timeout,
                      runtime=_runtime(), **options)


def _runtime() -> Runtime:
    """The --precision and --backend given to the group, as one value for the library."""
    return click.get_current_context().find_root().obj


def _runner(ray_address: str | None, workers: int | None = None
            ) -> Callable[[], Runner] | None:
    """Shards in this process (None), or on Ray: started when a sharded index is opened, and
    stopped when the command ends."""
    if ray_address is None:
        return None
    context = click.get_current_context()

    def start() -> Runner:
        from semsearch.distributed import ray_runner

        runner = ray_runner(ray_address, workers)
        context.call_on_close(runner.close)
        return runner

    return start


def ray_option(command):
    """--ray [ADDRESS]: run the shards of a sharded index on Ray."""
    def check(ctx, param, value):
        if value is not None and os.path.exists(value):
            raise click.BadParameter(f"took {value!r} as the cluster address; put --ray after"
                                     " the files, or write --ray local")
        return value

    return click.option(
        "--ray", "ray_address", is_flag=False, flag_value="local", default=None,
        metavar="[ADDRESS]", callback=check,
        help="Run the shards on Ray: a cluster ADDRESS (ray://HOST:10001, auto), or none to"
             " start Ray on this machine for the command. Needs semsearch[ray].")(command)


def _print_json(data) -> None:
    """Strict JSON: a NaN that reached a report (from a store written before they were
    refused) is printed as null, never as the bare word no parser takes."""
    click.echo(json.dumps(json_safe(data), indent=2, ensure_ascii=False, default=str,
                          allow_nan=False))


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def _show_encoder_notes() -> None:
    """The library's EncoderNote as one line on stderr, not in Python's warning format."""
    shown = warnings.showwarning
    if getattr(shown, "semsearch_notes", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if issubclass(category, EncoderNote):
            click.echo(f"note: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    show.semsearch_notes = True  # type: ignore[attr-defined]
    warnings.showwarning = show


index_option = click.option(
    "--index", "-i", "index_name", default=None, metavar="NAME|PATH",
    help="Index name (under indexes/, or $SEMSEARCH_INDEXES) or folder path. Default: default.")
model_option = click.option(
    "--model", "-m", default=None, metavar="PATH",
    help="Local sentence-transformers or BERT folder. Default: the bundled all-MiniLM-L6-v2.")
pooling_option = click.option(
    "--pooling", type=click.Choice(POOLING_MODES), default=None,
    help="Pooling over token embeddings. Default: the model's own, or mean for a BERT folder.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
timeout_option = click.option(
    "--timeout", type=click.FloatRange(0), default=0, show_default=True, metavar="SECONDS",
    help="Wait this long for another process writing to the index, then give up.")


SHORT_FLAGS = {"where": "-w", "context": "-C"}


def search_options(*names: str) -> Callable[[Callable], Callable]:
    """Click options for the :class:`SearchOptions` fields ``names`` (all of them when none are
    named): each flag's type, default, bounds and help come from the library's one definition."""
    specs = [spec for spec in option_specs() if not names or spec.name in names]

    def decorate(command: Callable) -> Callable:
        for spec in reversed(specs):
            command = click.option(spec.flag, *filter(None, [SHORT_FLAGS.get(spec.name)]),
                                   spec.name, **_click_settings(spec))(command)
        return command

    return decorate


def _click_settings(spec: OptionSpec) -> dict:
    kind = next(t for t in get_args(spec.type) if t is not type(None)) if spec.optional else (
        spec.type)
    settings: dict = {"help": spec.help, "default": spec.default}
    if spec.choices:
        settings.update(type=click.Choice(spec.choices), show_default=True)
    elif kind is bool:
        settings["is_flag"] = True
    elif get_origin(kind) is dict:
        settings.update(multiple=True, metavar="KEY=VALUE", default=(),
                        help=f"{spec.help} Repeatable.",
                        callback=lambda ctx, param, value: parse_where(value))
    elif kind is int:
        settings.update(type=click.IntRange(_whole(spec.low), _whole(spec.high)),
                        show_default=spec.default is not None)
    elif kind is float:
        bounded = spec.low is not None or spec.high is not None
        settings.update(type=click.FloatRange(spec.low, spec.high, min_open=spec.open_low)
                        if bounded else float, show_default=spec.default is not None)
    elif spec.name == "cluster":
        settings["metavar"] = "[RUN:]ID"
    return settings


def _whole(bound: float | None) -> int | None:
    return None if bound is None else int(bound)


batch_option = click.option(
    "--batch-size", default=32, show_default=True,
    help="Encoder batch: room for this many 128-token texts (batch-size × 128 padded tokens:"
         " more short texts or fewer long ones).")


@click.group(cls=_Group)
@click.version_option(semsearch.__version__, prog_name="semsearch")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None, envvar=PRECISION_ENV,
              help="Encoder precision. Default: auto (fp16 on CUDA, bf16 on CPUs with AMX or"
                   " AVX512-BF16, else fp32); int8 needs --backend onnx. Also"
                   " $SEMSEARCH_PRECISION.")
@click.option("--backend", type=click.Choice(BACKENDS), default=None, envvar=BACKEND_ENV,
              help="Run the encoder on ONNX Runtime (CPU; exported once per model, no torch in"
                   " the process) or torch. Default: auto (ONNX Runtime for queries and small"
                   " updates, torch for bulk indexing). Also $SEMSEARCH_BACKEND.")
@click.pass_context
def cli(ctx, precision, backend):
    """Semantic search over your own text, offline.

    Index files, then ask for the nearest sentences:

        semsearch index docs/
        semsearch query "how do I reset my password"
    """
    ctx.obj = Runtime(precision, backend)
    _show_encoder_notes()


@cli.command()
@click.argument("paths", nargs=-1)
@index_option
@model_option
@pooling_option
@click.option("--unit", type=click.Choice(UNIT_KINDS), default=None,
              help="What gets a vector: each sentence, passages of sentences, or whole documents"
                   " (chunked to the model's limit). Default: sentence.")
@click.option("--passage-tokens", type=click.IntRange(8), default=None,
              help="Token budget of a passage (--unit passage). Default: 128.")
@click.option("--overlap", type=click.IntRange(0), default=None,
              help="Sentences shared by consecutive passages. Default: 1.")
@click.option("--chunk/--no-chunk", default=None,
              help="With --unit document: split documents longer than the model's limit into"
                   " several units (default), or embed each whole, truncated.")
@click.option("--context", type=click.Choice(UNIT_CONTEXTS), default=None,
              help="What is embedded with each unit: nothing but its text, its document's title,"
                   " or the title and the unit's heading path. Default: heading.")
@click.option("--sentence-vectors/--no-sentence-vectors", default=None,
              help="With passage or document units: embed each of a unit's sentences too, and"
                   " score a unit by the mean of its own and its best sentence's similarity"
                   " (default; indexing takes about twice as long).")
@click.option("--document-keywords/--unit-keywords", default=None,
              help="With --unit document: keyword (BM25) scores of whole documents (default),"
                   " or of each chunk.")
@click.option("--faiss", "faiss_factory", default=None, metavar="FACTORY",
              help="FAISS factory string (Flat, HNSW32, IVF1024,SQ8 ...). Default: auto (exact"
                   " below 100k units, IVF above).")
@click.option("--recall", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Recall@10 target of approximate (IVF, HNSW) search; nprobe/efSearch is"
                   " measured to reach it on a sample. Default: 0.95.")
@click.option("--glob", default=None, help="Only files matching this pattern inside folders.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="Input format; auto goes by file extension.")
@click.option("--text-field", default="text", show_default=True, help="JSONL/CSV text field.")
@click.option("--id-field", default=None,
              help="JSONL/CSV field holding a document id. Default: id or _id when present,"
                   " else FILE#LINE.")
@click.option("--title-field", default="title", show_default=True, help="JSONL/CSV title field.")
@click.option("--title-from", type=click.Choice(TITLE_SOURCES), default="front-matter",
              show_default=True,
              help="A note's title (Markdown, notebooks, Word): its title field, else its file name"
                   " (front-matter); its first heading; or its file name alone.")
@click.option("--code/--no-code", default=True, show_default=True,
              help="Index each fenced code block of Markdown and notebooks as one unit.")
@click.option("--encoding", default="utf-8", show_default=True, help="Text encoding of inputs.")
@click.option("--max-document-mb", type=click.FloatRange(0, min_open=True),
              default=DEFAULT_MAX_DOCUMENT_MB, show_default=True, metavar="MB",
              help="Skip (with a warning) any file, record or stdin document larger than this.")
@click.option("--exclude", multiple=True, metavar="PATTERN",
              help="Leave out files and folders matching PATTERN inside the folders given"
                   " (gitignore syntax: '*.tmp', 'drafts/'; repeatable), as a .semsearchignore"
                   " file in a folder does.")
@click.option("--follow-symlinks", is_flag=True,
              help="Follow symbolic links that point outside the folders given (by default they"
                   " are skipped with a warning, so indexing a folder cannot leak other files).")
@click.option("--commit-every", type=click.FloatRange(0), default=60, show_default=True,
              metavar="SECONDS", help="Commit this often: an interrupted run keeps what it did.")
@click.option("--shards", type=click.IntRange(1), default=None,
              help="Create a sharded index of N shards (documents spread by a hash of their id)."
                   " Fixed when the index is created.")
@ray_option
@click.option("--workers", type=click.IntRange(1), default=None,
              help="With --ray: embedding actors. Default: one per GPU, else one per 2 CPUs.")
@click.option("--prepare", is_flag=True,
              help="Make the model's ONNX export, which lets queries run without torch (every"
                   " index run makes it; this is for an index from an older version or a cache"
                   " that was read-only). PATHS may be left out.")
@click.option("--watch", "watch", is_flag=True,
              help="After indexing, keep watching PATHS: each change is indexed (and committed)"
                   " as it happens, a deleted file's documents removed, one line per change,"
                   " until Ctrl+C.")
@batch_option
@timeout_option
@json_option
def index(paths, index_name, model, pooling, unit, passage_tokens, overlap, chunk, context,
          sentence_vectors, document_keywords, faiss_factory, recall, glob, fmt, text_field,
          id_field, title_field, title_from, code, encoding, max_document_mb, exclude,
          follow_symlinks, commit_every, shards, ray_address, workers, prepare, watch,
          batch_size, timeout, as_json):
    """Add files, folders (recursively) or - (stdin) to an index.

    Unchanged documents are skipped, changed ones replaced. Formats: .txt, .md (YAML front
    matter becomes metadata), .html, .jsonl and .csv/.tsv (one document per record; other
    fields become metadata).

    With --watch the index follows the files: edit, add, rename or delete one and a search in
    another process (query, serve) finds the change a moment later, read with the same rules
    (exclusions, formats) as the first pass. Ctrl+C or SIGTERM stops it; what was done is kept.
    """
    if watch and as_json:
        raise click.UsageError("--watch prints a line per change; leave out --json")
    if not paths and not prepare:
        raise click.UsageError("give the files or folders to index (or --prepare)")
    from tqdm import tqdm

    from semsearch.service import index_files, open_or_create, prepare_queries

    if not paths:  # --prepare alone
        idx = _open_index(index_name, timeout)
        recipe = prepare_queries(idx)
        if as_json:
            _print_json({"index": str(idx.path), "export": str(recipe)})
        else:
            click.echo(f"{shown_path(idx.path)}: queries run without torch (export in"
                       f" {shown_path(recipe.parent)})")
        return

    options = ReadOptions(text_field=text_field, id_field=id_field, title_field=title_field,
                          encoding=encoding, format=fmt, glob=glob,
                          max_document_mb=max_document_mb, exclude=exclude,
                          follow_symlinks=follow_symlinks, title_from=title_from, code=code)
    settings = {"unit": unit, "faiss": faiss_factory, "passage_tokens": passage_tokens,
                "overlap": overlap, "chunk": chunk, "context": context,
                "sentence_vectors": sentence_vectors, "document_keywords": document_keywords}
    idx = open_or_create(index_name, shards=shards, model=model, pooling=pooling,
                         settings={key: value for key, value in settings.items()
                                   if value is not None},
                         runner=_runner(ray_address, workers), runtime=_runtime(),
                         timeout=timeout)
    if prepare:
        prepare_queries(idx)

    def first_pass() -> None:
        with tqdm(desc="indexing", unit="doc", disable=None, file=sys.stderr) as bar:
            result = index_files(idx, paths, options, batch_size=batch_size,
                                 commit_seconds=commit_every, recall=recall,
                                 progress=bar.update, warn=_warn)
        if as_json:
            _print_json({"index": str(idx.path), **result.to_dict()})
        else:
            click.echo(f"{idx.path}: {result.added} added, {result.replaced} replaced,"
                       f" {result.skipped} unchanged ({result.units} units embedded in"
                       f" {result.seconds:.1f}s)")

    if not watch:
        first_pass()
        return
    import contextlib
    import signal

    from semsearch.watch import watch as watch_paths

    # Stopped as Ctrl+C stops it, by SIGTERM too, and by SIGINT even where it was started with
    # SIGINT ignored (as a shell starts a background job, a parent passes it on).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    # Stopping rolls back the batch being written; every one before it is committed.
    with contextlib.suppress(KeyboardInterrupt):
        watch_paths(idx, list(paths), options, report=click.echo, warn=_warn,
                    first_pass=first_pass, batch_size=batch_size, commit_seconds=commit_every)
    click.echo(f"stopped watching; {idx.path} holds every change indexed so far", err=True)


@cli.command()
@click.argument("queries", nargs=-1)
@index_option
@click.option("--file", "-f", "query_file", type=click.File("r"), default=None,
              help="Read queries one per line from a file (- for stdin).")
@search_options()
@click.option("--mmap", is_flag=True,
              help="Map the vector file instead of reading it (indexes larger than memory).")
@model_option
@ray_option
@json_option
def query(queries, index_name, query_file, mmap, model, ray_address, as_json, **options):
    """Print the units that best match each QUERY.

    Hybrid mode (the default) fuses the embedding ranking with a full-text BM25 ranking, so
    both paraphrases and exact rare terms are found."""
    queries = list(queries)
    if query_file is not None:
        queries += [line.strip() for line in query_file if line.strip()]
    if not queries:
        raise click.UsageError("give a query, or --file with one query per line")
    search = SearchOptions(**options)  # checked before the model loads
    idx = _open_index(index_name, ray_address=ray_address, model=model, mmap=mmap)
    results = idx.search(queries, search)
    if as_json:
        _print_json([{"query": q, "hits": [hit.to_dict() for hit in hits]}
                     for q, hits in zip(queries, results, strict=True)])
        return
    for number, (text, hits) in enumerate(zip(queries, results, strict=True)):
        if number:
            click.echo()
        _print_hits(text, hits, idx.manifest["unit"])


def _print_hits(text: str, hits, unit: str) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"query: {text}", title_justify="left", box=None, show_edge=False,
                  pad_edge=False)
    table.add_column("#", justify="right")
    scores = [name for name, attribute in (("cosine", "dense_score"), ("bm25", "keyword_score"))
              if any(getattr(hit, attribute) is not None for hit in hits)]
    for name in scores:
        table.add_column(name, justify="right")
    table.add_column(unit)
    table.add_column("document")
    for hit in hits:
        lines = [(hit.ordinal, " ".join(hit.text.split()), "bold" if hit.context else "")]
        lines += [(c["ordinal"], f"[{c['ordinal'] - hit.ordinal:+d}] {' '.join(c['text'].split())}",
                   "dim") for c in hit.context]
        cell = Text()
        for _, line, style in sorted(lines):
            cell.append(line + "\n", style=style)
        cell.rstrip()
        where = "\n".join(part for part in (
            hit.title or Path(hit.document_id).name, hit.heading and f"› {hit.heading}",
            f"{unit} {hit.ordinal + 1}" + (f", p. {hit.page}" if hit.page else "")) if part)
        values = [hit.dense_score if name == "cosine" else hit.keyword_score for name in scores]
        table.add_row(str(hit.rank), *("-" if v is None else f"{v:.3f}" for v in values), cell,
                      where)
    console = Console(soft_wrap=False)
    console.print(table if hits else f"query: {text}\n(no hits)")


@cli.command()
@click.argument("documents", nargs=-1, required=True)
@index_option
@timeout_option
@json_option
def remove(documents, index_name, timeout, as_json):
    """Delete documents (by id, or by the file they came from) and their vectors.

    The space they took is reused by later documents; `semsearch compact` gives it back."""
    from semsearch.service import remove_documents

    removed = remove_documents(_open_index(index_name, timeout), documents)
    if as_json:
        _print_json({"removed": removed})
    else:
        click.echo(f"removed {removed} document{'s' * (removed != 1)}")


@cli.command()
@index_option
@json_option
def info(index_name, as_json):
    """Show an index's counts, model, pooling, FAISS type and size on disk."""
    data = _open_index(index_name, verify=False).info()
    if as_json:
        _print_json(data)
        return
    width = max(map(len, data))
    for key, value in data.items():
        if key == "files":
            value = ", ".join(f"{name} ({size:,} B)" for name, size in value.items())
        elif key == "bytes":
            value = f"{value:,}"
        elif key == "encoder":
            value = f"{value['backend']} {value['precision']} on {value['device']} (this machine)"
        click.echo(f"{key:<{width}}  {value}")


@cli.command(name="list")
@json_option
def list_indexes(as_json):
    """List the indexes under indexes/ (or $SEMSEARCH_INDEXES)."""
    from semsearch.index import indexes_home
    from semsearch.service import list_indexes as indexes

    rows = indexes()
    if as_json:
        _print_json(rows)
        return
    if not rows:
        click.echo(f"no indexes under {indexes_home()}")
    for row in rows:
        if "error" in row:
            click.echo(f"{row['name']:<20} error: {row['error']}")
        else:
            click.echo(f"{row['name']:<20} {row['documents']:>8} docs {row['units']:>9} units"
                       f"  {row['model']}  {row['bytes'] / 1e6:.1f} MB")


@cli.command()
@index_option
@click.option("--repair", is_flag=True, help="Re-embed missing vectors, drop stray ones, rebuild"
                                             " the keyword index.")
@batch_option
@timeout_option
@json_option
def check(index_name, repair, batch_size, timeout, as_json):
    """Verify that the store, keyword index and vectors agree (and their checksums)."""
    report = _open_index(index_name, timeout, verify=False).check(
        repair=repair, batch_size=batch_size)
    if as_json:
        _print_json(report)
    else:
        click.echo("\n".join(_check_lines(report)))
    if not report["consistent"]:
        sys.exit(1)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _check_lines(report: dict) -> list[str]:
    """What `check` says: the state in one line, then what to do about it."""
    repaired = report.get("repaired")
    salvage = repaired if isinstance(repaired, dict) and "salvaged_documents" in repaired else None
    if salvage:
        lost, from_units = salvage["lost_documents"], salvage["from_units"]
        details = [f"{_count(salvage['reembedded'], 'unit')} embedded"]
        details += [f"{_count(lost, 'document')} lost"] if lost else []
        details += [f"{from_units} put back together from their units without title, source or"
                    " metadata"] if from_units else []
        return [f"{report['index']}: repaired — rebuilt from the"
                f" {_count(salvage['salvaged_documents'], 'document')} its damaged store still"
                f" held ({', '.join(details)}); the damaged store is kept as"
                f" {salvage['damaged_store_kept']}"
                + ("; index the lost documents' files again" if lost else "")]
    if "readable_documents" in report:
        readable = report["readable_documents"]
        of = f" of {report['documents']}" if report.get("documents") is not None else ""
        line = (f"{report['index']}: DAMAGED — the store cannot be read in full"
                f" ({report.get('store_error', 'a shard is damaged')}); {readable}{of}"
                f" document{'' if report.get('documents', readable) == 1 else 's'} can be read,"
                f" {_count(report['vectors'], 'vector')}, vectors file {report['vectors_file']}")
        if not readable:
            return [line, "no document can be read: rebuild the index from your files into a"
                          " new --index"]
        return [line, f"run `semsearch check --repair` to rebuild the index from"
                      f" {'that' if readable == 1 else 'those'} {_count(readable, 'document')}"
                      " (the damaged store is kept)"]
    state = "repaired" if repaired else (
        "consistent" if report["consistent"] else "INCONSISTENT")
    lines = [f"{report['index']}: {state} — {report['units']} units, {report['vectors']}"
             f" vectors, {report['missing']} missing, {report['extra']} extra, store"
             f" {'ok' if report['store_ok'] else 'damaged'}, keyword index"
             f" {'ok' if report['keywords_ok'] else 'damaged'}, vectors file"
             f" {report['vectors_file']}"]
    if not report["consistent"]:
        lines += [report[key] for key in ("vectors_error", "keywords_error") if key in report]
        lines.append("run `semsearch check --repair` to fix it")
    return lines


@cli.command()
@index_option
@timeout_option
@json_option
def compact(index_name, timeout, as_json):
    """Give back the disk space of removed documents.

    Rebuilds the vector file from the vectors that stay, rebuilds the keyword index and
    VACUUMs the store. Readers keep working meanwhile."""
    sizes = _open_index(index_name, timeout).compact()
    if as_json:
        _print_json(sizes)
    else:
        click.echo(f"{sizes['bytes_before']:,} B -> {sizes['bytes_after']:,} B")


class _ClusterK(click.ParamType):
    name = "N|auto"

    def convert(self, value, param, ctx):
        if value is None or value == "auto" or isinstance(value, int):
            return None if value == "auto" else value
        try:
            return click.IntRange(1).convert(value, param, ctx)
        except click.BadParameter:
            self.fail(f"{value!r} is neither a number of clusters nor 'auto'", param, ctx)


output_options = [
    click.option("--plot", type=click.Path(dir_okay=False), default=None,
                 help="Draw a 2-D map of the clusters to this PNG."),
    click.option("--export", type=click.Path(dir_okay=False), default=None,
                 help="Write every item with its cluster to this CSV."),
]


@cli.command()
@index_option
@click.option("--method", type=click.Choice(METHODS), default="kmeans", show_default=True,
              help="kmeans (FAISS, any size); agglomerative, hdbscan, community (paraphrase"
              f" groups) compare all pairs and stop at {PAIRWISE_LIMIT:,} items.")
@click.option("-k", "k", type=_ClusterK(), default="auto", show_default=True,
              help="Number of clusters (kmeans, agglomerative); auto: kmeans picks it (by"
              " the eigengap of the reduction's neighbour graph), agglomerative cuts at"
              " --threshold.")
@click.option("--by-document", is_flag=True, help="Cluster documents (mean of their units).")
@click.option("--threshold", type=click.FloatRange(-1, 1), default=None,
              help="Cosine similarity that joins items (agglomerative: 0.25, community: 0.75).")
@click.option("--min-size", type=click.IntRange(1), default=None,
              help="Smallest cluster (hdbscan: 5, community: 3).")
@click.option("--reduce-outliers", is_flag=True,
              help="Give outliers (cluster -1) to their nearest cluster.")
@click.option("--reduce", "reduction", type=click.Choice(REDUCTIONS), default=DEFAULT_REDUCTION,
              show_default=True,
              help="kmeans: run on a 10-d UMAP reduction (fitted on up to 20,000 items) or on"
              " the vectors themselves (none; faster on very large indexes).")
@click.option("--restarts", type=click.IntRange(1), default=DEFAULT_RESTARTS, show_default=True,
              help="kmeans runs; the one with the best objective is kept.")
@click.option("--seed", default=0, show_default=True, help="Same seed and items, same clusters.")
@output_options[0]
@output_options[1]
@timeout_option
@json_option
def cluster(index_name, method, k, by_document, threshold, min_size, reduce_outliers, reduction,
            restarts, seed, plot, export, timeout, as_json):
    """Group the index's units (or documents) and name each group.

    The run is stored in the index: see it again with `semsearch clusters`, search inside a
    cluster with `semsearch query --cluster`."""
    from semsearch.service import cluster as cluster_run

    idx = _open_index(index_name, timeout)
    run = cluster_run(idx, method=method, by_document=by_document, k=k, seed=seed,
                      restarts=restarts, threshold=threshold, min_size=min_size,
                      reduce_outliers=reduce_outliers, reduction=reduction)
    _show_run(idx, run, plot, export, as_json)


@cli.command()
@click.argument("run_id", metavar="[RUN]", type=int, required=False)
@index_option
@output_options[0]
@output_options[1]
@json_option
def clusters(run_id, index_name, plot, export, as_json):
    """List the stored cluster runs, or show RUN."""
    idx = _open_index(index_name)
    if run_id is None and not (plot or export):
        runs = idx.store.cluster_runs()
        if as_json:
            _print_json(runs)
        elif not runs:
            click.echo("no cluster runs yet; run `semsearch cluster`")
        for run in [] if as_json else runs:
            parameters = " ".join(f"{key}={value}" for key, value in run["parameters"].items()
                                  if key != "method")
            click.echo(f"run {run['id']}  {run['created']}  {run['method']} over {run['items']}"
                       f" {run['target']}s: {run['clusters']} clusters, {run['outliers']}"
                       f" outliers  ({parameters})")
        return
    _show_run(idx, idx.store.cluster_run(run_id), plot, export, as_json)


def _show_run(idx, run: dict, plot: str | None, export: str | None, as_json: bool) -> None:
    from semsearch.service import draw_run

    run = draw_run(idx, run, plot=plot, export=export)
    if as_json:
        _print_json(run)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"run {run['id']}: {run['method']} over {run['items']} {run['target']}s,"
                  f" {run['clusters']} clusters, {run['outliers']} outliers", box=None,
                  title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("cluster", justify="right")
    table.add_column("size", justify="right")
    table.add_column("keywords")
    table.add_column("nearest the centre")
    for c in run["cluster_list"]:
        nearest = c["representatives"][0]["text"] if c["representatives"] else ""
        table.add_row(str(c["cluster"]), str(c["size"]), " ".join(c["keywords"]),
                      " ".join(nearest.split())[:90])
    Console(soft_wrap=False).print(table)
    if plot:
        click.echo(f"map ({run['plot']['projection']}): {plot}")
    if export:
        click.echo(f"{run['export']['rows']} rows: {export}")


@cli.command()
@index_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but localhost makes the index reachable from"
                   " other machines.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--allow-writes", is_flag=True,
              help="Accept POST /documents and DELETE /documents/ID (with the bearer token).")
@click.option("--token", envvar="SEMSEARCH_TOKEN", default=None, metavar="TOKEN",
              help="Bearer token that writes must carry. Default: $SEMSEARCH_TOKEN.")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Log every request.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Another name or address that requests may carry in their Host header"
                   " (repeatable); this machine's own names and addresses are always allowed.")
@click.option("--mmap", is_flag=True, help="Map the vector file instead of reading it.")
@ray_option
def serve(index_name, host, port, allow_writes, token, access_log, allowed_hosts, mmap,
          ray_address):
    """Serve an index over HTTP: a JSON API (schema at /openapi.json) and a search page at /.

    The model and the index stay loaded, so a query costs milliseconds, not a model load. On a
    CPU queries run on ONNX Runtime and large writes on torch (--backend torch for torch only)."""
    try:
        import uvicorn

        from semsearch.server import LOCAL_HOSTS, UVICORN_LIMITS, create_app
    except ImportError:
        raise InputError("semsearch serve needs FastAPI and uvicorn: pip install"
                         " 'semsearch[serve]'") from None
    from semsearch.service import open_for_serving

    idx = open_for_serving(index_name, runtime=_runtime(), mmap=mmap,
                           runner=_runner(ray_address))
    app = create_app(idx, allow_writes=allow_writes, token=token, host=host,
                     allowed_hosts=allowed_hosts)
    if host not in LOCAL_HOSTS:
        _warn(f"listening on {host}: anyone who can reach this machine can search the index"
              + (" (and write to it with the token)" if allow_writes else ""))
    shown = f"[{host}]" if ":" in host else host
    encoder = idx.encoder
    click.echo(f"serving {idx.path} ({idx.manifest['documents']} documents, encoder"
               f" {encoder.backend} {encoder.precision}) on http://{shown}:{port}/"
               f" (writes {'on' if allow_writes else 'off'}); Ctrl+C stops", err=True)
    # uvicorn logs requests at level info: below it, --access-log would print nothing
    uvicorn.run(app, host=host, port=port, access_log=access_log,
                log_level="info" if access_log else "warning", **UVICORN_LIMITS)


@cli.command(name="mcp")
@click.option("--index", "-i", "index_names", multiple=True, metavar="NAME|PATH",
              help="An index to serve (repeatable): the tools take its name (a path's folder"
                   " name) as their `index` argument, the first by default. Default: default.")
@click.option("--allow-writes", is_flag=True,
              help="Offer the add_documents and remove_documents tools (over --http they need"
                   " the bearer token).")
@click.option("--http", "http", is_flag=True,
              help="Serve streamable HTTP at http://127.0.0.1:PORT/mcp instead of stdio.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="With --http: the port to listen on. Default: 8765.")
@click.option("--token", envvar="SEMSEARCH_TOKEN", default=None, metavar="TOKEN",
              help="With --http --allow-writes: the bearer token that writes must carry."
                   " Default: $SEMSEARCH_TOKEN.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="With --http: another name requests may carry in their Host header"
                   " (repeatable); this machine's own names and addresses are always allowed.")
@click.option("--mmap", is_flag=True, help="Map the vector files instead of reading them.")
def mcp(index_names, allow_writes, http, port, token, allowed_hosts, mmap):
    """Serve indexes to AI agents and editors over the Model Context Protocol.

    Over stdio by default, as agent clients start a server: register `semsearch mcp --index
    NAME` with the client (docs/mcp.md). Tools: search, get_document, list_indexes,
    index_info, list_clusters, cluster_members, and with --allow-writes add_documents and
    remove_documents; each document is a resource, semsearch://INDEX/DOCUMENT_ID. The model
    and the indexes stay loaded, so a search costs milliseconds. Needs semsearch[mcp]."""
    if not http and (port is not None or allowed_hosts):
        raise click.UsageError("--port and --allowed-host go with --http")
    try:
        from semsearch.mcp_server import (
            DEFAULT_PORT,
            HOST,
            Catalogue,
            create_server,
            run_http,
            run_stdio,
            served_names,
        )
    except ImportError as exc:
        if not (exc.name or "").startswith(("mcp", "jsonschema")):
            raise
        raise InputError("semsearch mcp needs the MCP SDK: pip install 'semsearch[mcp]'"
                         ) from None
    from semsearch.service import open_for_serving

    names = served_names(index_names or ("default",))
    if http:
        from semsearch.server.guard import write_token

        token = write_token(allow_writes, token)  # refused before the indexes load
        port = port or DEFAULT_PORT
    catalogue = Catalogue({name: open_for_serving(given, runtime=_runtime(), mmap=mmap)
                           for name, given in names.items()},
                          allow_writes=allow_writes, token=token if http else None)
    served = ", ".join(f"{s.name} ({shown_path(s.index.path)}, {s.index.manifest['documents']}"
                       " documents)" for s in catalogue.served)
    encoder = catalogue.served[0].index.encoder
    where = f"http://{HOST}:{port}/mcp; Ctrl+C stops" if http else (
        "stdio; the client stops it")
    click.echo(f"serving {served} over MCP (encoder {encoder.backend} {encoder.precision},"
               f" writes {'on' if allow_writes else 'off'}) on {where}", err=True)
    server = create_server(catalogue)
    if http:
        run_http(server, port, allowed_hosts)
    else:
        run_stdio(server)


@cli.group(name="eval", cls=_Group)
def evaluate():
    """Measure quality: STS, BEIR retrieval, labelled clustering."""


@evaluate.command(name="sts")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@model_option
@pooling_option
@batch_option
@json_option
def eval_sts(file, model, pooling, batch_size, as_json):
    """Spearman ×100 of cosine similarity vs gold scores (STS Benchmark layout)."""
    from semsearch.evaluation import evaluate_sts

    result = evaluate_sts(file, model=model, pooling=pooling, batch_size=batch_size,
                          runtime=_runtime())
    if as_json:
        _print_json(result)
    else:
        click.echo(f"STS {Path(file).name}: Spearman {result['spearman']:.2f}"
                   f" (Pearson {result['pearson']:.2f}) over {result['pairs']} pairs")


@evaluate.command(name="retrieval")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--split", default="test", show_default=True, help="qrels/<split>.tsv to use.")
@click.option("--unit", type=click.Choice(UNIT_KINDS), default="document", show_default=True)
@click.option("--chunk/--no-chunk", default=True, show_default=True,
              help="Split long documents into several units (scored by the best one).")
@click.option("--sentence-vectors/--no-sentence-vectors", default=True, show_default=True,
              help="Score each unit with its best sentence too (as `index` does).")
@click.option("--document-keywords/--unit-keywords", default=True, show_default=True,
              help="With --unit document: BM25 of whole documents, or of each chunk.")
@click.option("--hold-out", type=click.FloatRange(0, 0.9), default=0.0,
              help="Score only the queries that `semsearch train --hold-out` held back.")
@click.option("--mode", "modes", type=click.Choice(MODES), multiple=True,
              help=f"Search mode to score (repeatable; one index serves all). Default:"
              f" {DEFAULT_MODE}.")
@search_options("fusion", "rrf_k", "alpha")
@model_option
@pooling_option
@batch_option
@json_option
def eval_retrieval(folder, split, unit, chunk, sentence_vectors, document_keywords, hold_out,
                   modes, fusion, rrf_k, alpha, model, pooling, batch_size, as_json):
    """nDCG@10, MRR@10 and Recall@100 on a BEIR folder (corpus, queries, qrels)."""
    from tqdm import tqdm

    from semsearch.evaluation import evaluate_retrieval

    with tqdm(desc="indexing corpus", unit="doc", disable=None, file=sys.stderr) as bar:
        result = evaluate_retrieval(
            folder, split=split, modes=modes or (DEFAULT_MODE,),
            fusion=SearchOptions(fusion=fusion, rrf_k=rrf_k, alpha=alpha), model=model,
            pooling=pooling, unit=unit, chunk=chunk, sentence_vectors=sentence_vectors,
            document_keywords=document_keywords, batch_size=batch_size, hold_out=hold_out,
            progress=bar.update, runtime=_runtime())
    if as_json:
        _print_json(result)
        return
    click.echo(f"{Path(folder).name} ({split}, {result['queries']} queries,"
               f" {result['documents']} documents)")
    for row in result["results"]:
        click.echo(f"  {row['mode']:<8} nDCG@10 {row['ndcg@10']:.2f}  MRR@10 {row['mrr@10']:.2f}"
                   f"  Recall@100 {row['recall@100']:.2f}")


@evaluate.command(name="clustering")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--text-field", default="text", show_default=True)
@click.option("--label-field", default="label", show_default=True)
@click.option("--method", type=click.Choice(METHODS), default="kmeans", show_default=True)
@click.option("-k", "k", type=click.IntRange(1), default=None,
              help="Clusters (kmeans, agglomerative). Default for kmeans: the number of labels.")
@click.option("--threshold", type=click.FloatRange(-1, 1), default=None)
@click.option("--min-size", type=click.IntRange(1), default=None)
@click.option("--reduce", "reduction", type=click.Choice(REDUCTIONS), default=DEFAULT_REDUCTION,
              show_default=True,
              help="kmeans: run on a 10-d UMAP reduction (fitted on up to 20,000 items) or on"
              " the vectors themselves (none; faster on very large indexes).")
@click.option("--restarts", type=click.IntRange(1), default=DEFAULT_RESTARTS, show_default=True)
@click.option("--seeds", type=click.IntRange(1), default=10, show_default=True,
              help="Runs to average over (seeds 0..N-1).")
@model_option
@pooling_option
@batch_option
@json_option
def eval_clustering(files, text_field, label_field, method, k, threshold, min_size, reduction,
                    restarts, seeds, model, pooling, batch_size, as_json):
    """V-measure, NMI and ARI of clustering labelled texts (CSV, TSV or JSONL FILES)."""
    from semsearch.evaluation import evaluate_clustering

    options = {"restarts": restarts, "reduction": reduction} if method == "kmeans" else {}
    options.update({key: value for key, value in (("threshold", threshold),
                                                   ("min_size", min_size)) if value is not None})
    result = evaluate_clustering(files, text_field=text_field, label_field=label_field,
                                 method=method, k=k, seeds=seeds, model=model, pooling=pooling,
                                 batch_size=batch_size, runtime=_runtime(), **options)
    if as_json:
        _print_json(result)
        return
    click.echo(f"{result['items']} texts, {result['labels']} labels, {method}"
               f"{' k=' + str(result['k']) if result['k'] else ''}, {seeds} seeds:")
    for name, title in (("v_measure", "V-measure"), ("nmi", "NMI"), ("ari", "ARI"),
                        ("clusters", "clusters"), ("outliers", "outliers")):
        click.echo(f"  {title:<10} {result[name]['mean']:.4f} ± {result[name]['std']:.4f}")


@cli.command()
@click.argument("data", type=click.Path(exists=True))
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False),
              help="Folder for the trained model (checkpoints go in its checkpoints/).")
@model_option
@pooling_option
@click.option("--loss", type=click.Choice(["auto", "cosent", "cosine", "angle", "mnrl"]),
              default="auto", show_default=True,
              help="auto: CoSENT for scored pairs, MultipleNegativesRankingLoss otherwise.")
@click.option("--split", default="train", show_default=True, help="qrels split of a BEIR folder.")
@click.option("--hold-out", type=click.FloatRange(0, 0.9), default=0.0, show_default=True,
              help="Fraction of BEIR queries never trained on (a stable split by query id).")
@click.option("--hard-negatives", type=click.IntRange(0), default=0, show_default=True,
              help="Hard negatives per pair, mined from the corpus with the starting model.")
@click.option("--dev", type=click.Path(exists=True), default=None,
              help="STS file or BEIR folder scored after each epoch; the best checkpoint wins.")
@click.option("--dev-split", default="dev", show_default=True, help="qrels split of --dev.")
@click.option("--eval-steps", type=click.IntRange(1), default=None,
              help="Evaluate (and checkpoint) every N steps instead of every epoch.")
@click.option("--epochs", type=click.FloatRange(0, min_open=True), default=None,
              help="Default by data kind: 2 (scored pairs and query-document pairs).")
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help="Examples per training step (MNRL's in-batch negatives come from these)."
                   " Default: 16 for scored pairs, 32 otherwise.")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=None,
              help="Peak learning rate. Default: 2e-5 for scored pairs, 5e-5 otherwise.")
@click.option("--max-seq-length", type=click.IntRange(8), default=None,
              help="Truncate training texts to this many tokens.")
@click.option("--seed", default=42, show_default=True, help="Same seed, same model.")
@click.option("--resume", is_flag=True, help="Carry on from the last checkpoint in --output.")
@json_option
def train(data, output, model, pooling, loss, split, hold_out, hard_negatives, dev, dev_split,
          eval_steps, epochs, batch_size, lr, max_seq_length, seed, resume, as_json):
    """Fine-tune the encoder on DATA (SBERT-style siamese training).

    DATA is an STS file or CSV/JSONL of (sentence1, sentence2, score) pairs, CSV/JSONL of
    (anchor, positive[, negative]), or a BEIR folder (queries paired with relevant documents).
    The result is a model folder for --model.
    """
    try:
        from semsearch.training import dev_evaluator, read_training_data
        from semsearch.training import train as run_training
    except ImportError as exc:
        raise click.ClickException(
            f"training needs extra packages ({exc.name}): pip install 'semsearch[train]'"
        ) from None

    examples = read_training_data(data, split=split, hold_out=hold_out)
    evaluator = None
    if dev:
        same = Path(dev).resolve() == Path(data).resolve()
        evaluator = dev_evaluator(dev, split=split if same else dev_split,
                                  hold_out=hold_out if same else 0.0)

    def report(scores: dict) -> None:
        click.echo(f"epoch {scores['epoch']:.2f} (step {scores['step']}):"
                   f" {evaluator.primary_metric} {100 * scores['score']:.2f}", err=True)

    result = run_training(
        examples, output, model=model, pooling=pooling, loss=loss, epochs=epochs,
        batch_size=batch_size, lr=lr, max_seq_length=max_seq_length, seed=seed,
        hard_negatives=hard_negatives, dev=evaluator, eval_steps=eval_steps, resume=resume,
        progress=sys.stderr.isatty(), on_evaluate=report)
    if result.kept_start:
        _warn("no checkpoint beat the starting model on dev; the output is the starting model")
    if as_json:
        _print_json(asdict(result))
    else:
        best = "" if result.best_dev is None else (
            f", dev {100 * result.start_dev:.2f} before, best {100 * result.best_dev:.2f}")
        click.echo(f"trained on {result.examples} {examples.kind} with {result.loss} loss"
                   f" ({result.epochs:g} epochs, batch {result.batch_size}, lr {result.lr:g}):"
                   f" {result.steps} steps in {result.seconds:.0f}s{best}; model saved to"
                   f" {result.output}")
