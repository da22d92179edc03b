"""`tawasul faq`: ask, evaluate, reload, and teach the knowledge base."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import click

from bot import kb_edit
from bot.config import Config
from bot.faq_eval import FOLDS, CasesError, measure, read_cases
from bot.knowledge import E5Embedder, ensure_faq_file, read_knowledge
from conversations.faq import FaqEntry, FaqError
from conversations.faq_index import FaqIndex


def _config(ctx: click.Context) -> Config:
    state = ctx.find_root().obj
    return state.config  # type: ignore[no-any-return]


def _knowledge(config: Config, kb: Path | None) -> tuple[tuple[FaqEntry, ...], tuple[str, ...]]:
    """The entries and out-of-scope examples of ``kb``, else of the configured file."""
    try:
        return read_knowledge(kb or config.knowledge.faq_path)
    except FaqError as exc:
        raise click.ClickException(str(exc)) from None


def _index(config: Config, kb: Path | None) -> FaqIndex:
    entries, outside = _knowledge(config, kb)
    embedder = E5Embedder(config.knowledge.cache_dir)
    index = FaqIndex(entries, embedder, out_of_scope=outside)
    embedder.save()
    return index


@click.group()
def faq() -> None:
    """The knowledge base of answers (FAQ)."""


@faq.command()
@click.argument("text")
@click.option(
    "--kb",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Knowledge-base file (default: the configured one).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def ask(ctx: click.Context, text: str, kb: Path | None, as_json: bool) -> None:
    """Show what the bot decides for a question, with the scores."""
    decision = _index(_config(ctx), kb).decide(text)
    data: dict[str, Any] = {
        "decision": decision.outcome.value,
        "answer": decision.entry.id if decision.entry else None,
        "suggestions": [e.id for e in decision.suggestions],
        "out_of_scope": decision.outside,
        "lang": decision.lang,
        "score": round(decision.score, 4),
        "margin": round(decision.margin, 4),
        "confidence": round(decision.confidence, 4),
        "ranked": [
            {
                "id": s.entry.id,
                "score": round(s.score, 4),
                "words": round(s.words, 4),
                "chars": round(s.chars, 4),
                "dense": round(s.dense, 4),
            }
            for s in decision.ranked
        ],
    }
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    what = data["answer"] or ", ".join(data["suggestions"])
    what = what or (
        "out of scope (an out-of-scope example came closest)" if decision.outside else "—"
    )
    click.echo(
        f"{data['decision']}: {what}"
        f"  (score {data['score']}, margin {data['margin']}, confidence {data['confidence']})"
    )
    for row in data["ranked"]:
        click.echo(
            f"  {row['score']:.3f}  {row['id']}  words {row['words']:.2f} "
            f"chars {row['chars']:.2f} dense {row['dense']:.2f}"
        )


@faq.command("eval")
@click.option(
    "--kb",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Knowledge-base file (default: the configured one).",
)
@click.option(
    "--cases",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help='JSON lines: {"text": "...", "expect": "entry-id" or null}.',
)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of figures.")
@click.pass_context
def eval_command(ctx: click.Context, kb: Path | None, cases: Path, as_json: bool) -> None:
    """Measure the answers on labelled questions: failures, then a summary."""
    config = _config(ctx)
    entries, outside = _knowledge(config, kb)
    embedder = E5Embedder(config.knowledge.cache_dir)
    try:
        labelled = read_cases(cases)
        report, known = measure(entries, outside, embedder, labelled)
    except CasesError as exc:
        raise click.ClickException(str(exc)) from None
    embedder.save()
    if known:
        # Scored by the index that stores them, they would all be answered at once.
        click.echo(
            f"{known} of the {len(labelled)} cases are stored in the knowledge base: the "
            f"cases are scored in {FOLDS} parts, each by an index built without its texts."
        )
    for failure in report.failures:
        click.echo(
            f"line {failure['line']}: expected {failure['expect'] or 'no answer'}, got "
            f"{failure['answer'] or failure['outcome']} (confidence {failure['confidence']})  "
            f"{failure['top']}  "
            f"{failure['text']}"
        )
    summary = report.summary()
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    else:
        click.echo(
            f"{summary['cases']} cases: accuracy {summary['accuracy']:.1%}, wrong answers "
            f"{summary['wrong_answers']:.1%}, p50 {summary['p50_ms']} ms, "
            f"p99 {summary['p99_ms']} ms"
        )


@faq.command()
@click.pass_context
def reload(ctx: click.Context) -> None:
    """Check the knowledge-base file; a running server picks up a good one within seconds."""
    config = _config(ctx)
    path = config.knowledge.faq_path
    if path is None or not path.exists():
        raise click.ClickException(f"no knowledge-base file at {path}; `tawasul serve` creates it")
    index = _index(config, path)
    os.utime(path)
    click.echo(
        f"{path}: {len(index.entries)} entries, good. The server reloads it within "
        f"{config.knowledge.reload_seconds:g} s, without a restart."
    )


@faq.command()
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def misses(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Questions the bot could not answer, newest first, to teach it."""
    rows = asyncio.run(_misses(_config(ctx), limit))
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("No unanswered questions.")
        return
    for row in rows:
        click.echo(f"#{row['id']}  {row['at']}  [{row['lang']}]  {row['text']}")
    click.echo("\nTeach one with: tawasul faq teach MISS_ID ENTRY_ID")


async def _misses(config: Config, limit: int) -> list[dict[str, Any]]:
    from bot.cli import opened_database, riyadh

    async with opened_database(config) as database:
        rows = await kb_edit.misses(database, limit)
    # Shown in the association's time, as every other list is.
    return [{"id": r.id, "text": r.text, "lang": r.lang, "at": riyadh(r.at, config)} for r in rows]


@faq.command()
@click.argument("miss_id", type=int)
@click.argument("entry_id")
@click.option(
    "--as",
    "wording",
    default="",
    help="Teach this wording instead of the question as it came (without a personal detail).",
)
@click.pass_context
def teach(ctx: click.Context, miss_id: int, entry_id: str, wording: str) -> None:
    """Add an unanswered question as a new way of asking an existing entry."""
    config = _config(ctx)
    path = config.knowledge.faq_path
    if path is None:
        raise click.ClickException("set knowledge.faq_path to the association's knowledge base")
    if ensure_faq_file(path):
        click.echo(f"Created {path} from the default knowledge base.", err=True)
    miss = asyncio.run(_take_miss(config, miss_id, entry_id, path, wording))
    click.echo(f"Taught: «{miss}» now answers {entry_id}. The server reloads {path} by itself.")


async def _take_miss(config: Config, miss_id: int, entry_id: str, path: Path, wording: str) -> str:
    from bot.cli import opened_database

    async with opened_database(config) as database:
        try:
            return await kb_edit.teach(
                database, path, miss_id, entry_id, actor="cli", wording=wording
            )
        except (LookupError, FaqError) as exc:
            raise click.ClickException(str(exc)) from None
