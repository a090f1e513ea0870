"""The rolling summary a conversation carries across continue-as-new (bounded, deterministic)."""

from __future__ import annotations

from typing import Any

MAX_SUMMARY_CHARS = 1500
MAX_LINE_CHARS = 200
RECENT_LINES = 8


def transcript_line(author: str, text: str) -> str:
    """One short line of the transcript."""
    flat = " ".join(text.split())
    if len(flat) > MAX_LINE_CHARS:
        flat = flat[: MAX_LINE_CHARS - 1] + "…"
    return f"{author}: {flat}"


def summarize(previous: str, new_lines: list[str], fields: dict[str, Any], stage: str | None) -> str:
    """Stage and fields first (they matter most), then the older lines, then this turn's; oldest drop first."""
    head = []
    if stage:
        head.append(f"stage={stage}")
    if fields:
        head.append("fields: " + ", ".join(f"{k}={v}" for k, v in sorted(fields.items())))
    lines = new_lines[-RECENT_LINES:]
    older = [line for line in previous.split("\n") if line and not line.startswith(("stage=", "fields: "))]
    body = [*older, *lines]
    out = [*head, *body]
    while len("\n".join(out)) > MAX_SUMMARY_CHARS and len(out) > len(head) + 1:
        out.pop(len(head))
    return "\n".join(out)[:MAX_SUMMARY_CHARS]
