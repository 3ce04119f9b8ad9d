"""Tables that fit the terminal (80 columns when piped) without cutting an id or a header.

A table is declared as columns with a priority. When the natural widths do not fit, the
least important columns are left out first; a column of free text may fold onto more lines;
ids, statuses and times are never folded or shortened. `--wide` shows every column in full,
however wide that is (the terminal wraps the lines, nothing is cut). Every command with a
table uses this module, so they all behave alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

WideFlag = Annotated[
    bool, typer.Option("--wide", help="Every column, in full, however wide the table gets.")
]

FOLDED_MIN_WIDTH = 12
"""The narrowest a folding column gets (or its header's width, if wider)."""
COLUMN_GAP = 2


@dataclass(frozen=True, slots=True)
class Column:
    """One column: `priority` 0 is always shown; higher numbers are left out first."""

    header: str
    priority: int = 0
    folds: bool = False
    """Free text that may continue on the next line; everything else keeps its full width."""
    justify: Literal["left", "right"] = "left"


Cell = str | Text


def _natural(column: Column, cells: Sequence[Cell]) -> int:
    return max([len(column.header), *(Text(c).cell_len if isinstance(c, str) else c.cell_len
                                      for c in cells)])


def _needed(column: Column, natural: int) -> int:
    if not column.folds:
        return natural
    return min(natural, max(len(column.header), FOLDED_MIN_WIDTH))


def fitted_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    width: int,
    wide: bool = False,
    title: str | None = None,
) -> tuple[Table, int]:
    """The table with the columns that fit `width`, and the width to render it at (more than
    `width` only when the columns that are always shown need more, or with `wide`)."""
    naturals = [_natural(c, [row[i] for row in rows]) for i, c in enumerate(columns)]
    shown = list(range(len(columns)))

    def total(indexes: list[int], widths: Sequence[int]) -> int:
        return sum(widths[i] for i in indexes) + COLUMN_GAP * (len(indexes) - 1)

    if not wide:
        needed = [_needed(c, n) for c, n in zip(columns, naturals, strict=True)]
        by_priority = sorted(shown, key=lambda i: (columns[i].priority, i))
        while total(shown, needed) > width and columns[by_priority[-1]].priority > 0:
            shown.remove(by_priority.pop())
        render_width = max(width, total(shown, needed))
    else:
        render_width = max(width, total(shown, naturals))
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
        pad_edge=False, padding=(0, COLUMN_GAP - 1, 0, 0),
    )
    for i in shown:
        column = columns[i]
        table.add_column(
            column.header, justify=column.justify, no_wrap=not column.folds,
            overflow="fold", min_width=_needed(column, naturals[i]) if not wide else naturals[i],
        )
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return table, render_width


def print_table(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    wide: bool = False,
    title: str | None = None,
) -> None:
    """Print a fitted table on `console` (its width: the terminal's, or 80 when piped)."""
    table, render_width = fitted_table(
        columns, rows, width=console.width, wide=wide, title=title
    )
    if render_width > console.width:  # rich renders no wider than its console
        console = Console(
            file=console.file, width=render_width, highlight=False,
            color_system=console.color_system,  # type: ignore[arg-type]
            force_terminal=console.is_terminal, no_color=console.no_color,
        )
    console.print(table, crop=False)
