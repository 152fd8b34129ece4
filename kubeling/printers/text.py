"""Text rendering of Tables the way kubectl prints them.

kubectl writes each cell followed by a tab into a tabwriter with min width 6,
padding 3, pad character ' ' and remembered column widths (so `get -w` rows stay
aligned with the header). The last cell of a line is not padded. Columns with
priority > 0 appear only with -o wide; -A adds NAMESPACE first, --show-labels
adds LABELS last.
"""
from __future__ import annotations

from typing import Any

from kubeling.printers.access import format_labels

MIN_WIDTH = 6
PADDING = 3


def format_cell(value: Any) -> str:
    """A cell as Go's fmt.Fprint shows a JSON-decoded value."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, list):
        return "[" + " ".join(format_cell(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{format_cell(value[k])}" for k in sorted(value, key=str)) + "]"
    return str(value)


def _metadata(row: dict) -> dict | None:
    obj = row.get("object")
    if not isinstance(obj, dict):
        return None
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else None


class TableWriter:
    """Renders successive Tables as one aligned listing (for `get -w`).

    The header is written once, with the first Table that has rows, and again
    only when the column definitions or the kind change (then widths start
    over too, as kubectl takes a new printer per kind). Tables without column
    definitions (watch events with noHeaders) reuse the last ones seen. Column
    widths only grow, so later rows line up with earlier ones as far as they can.
    """

    def __init__(self, *, wide: bool = False, with_namespace: bool = False,
                 show_labels: bool = False, no_headers: bool = False,
                 with_kind: str | None = None) -> None:
        self.wide = wide
        self.with_namespace = with_namespace
        self.show_labels = show_labels
        self.no_headers = no_headers
        self.with_kind = with_kind  # e.g. "pod": first cell printed as "pod/<name>"
        self._columns: list[dict] | None = None
        self._printed_header = False
        self._widths: list[int] = []
        self._kind = with_kind

    def write(self, table: dict, *, with_kind: str | None = None) -> str:
        """The text for this Table's rows (header included when due).

        with_kind overrides the writer's kind prefix for this Table, for
        `get svc,cm`, where kubectl prints every kind through one writer.
        """
        kind = with_kind or self.with_kind
        columns = table.get("columnDefinitions") if isinstance(table, dict) else None
        if isinstance(columns, list) and columns and columns != self._columns:
            self._columns = columns
            self._start_section()
        if kind != self._kind:
            self._kind = kind
            self._start_section()
        columns = self._columns or []
        rows = table.get("rows") if isinstance(table, dict) else None
        rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
        if not rows:
            return ""

        shown = [i for i, c in enumerate(columns)
                 if isinstance(c, dict) and (self.wide or not _priority(c))]
        lines: list[list[str]] = []
        if not self.no_headers and not self._printed_header:
            header = [str(columns[i].get("name", "")).upper() for i in shown]
            lines.append(self._decorate(header, "NAMESPACE", "LABELS"))
            self._printed_header = True
        for row in rows:
            cells = row.get("cells") if isinstance(row.get("cells"), list) else []
            texts = [format_cell(cells[i]) if i < len(cells) else "" for i in shown]
            if kind and texts:
                texts[0] = f"{kind}/{texts[0]}"
            metadata = _metadata(row)
            namespace = ""
            labels = ""
            if metadata is not None:
                ns = metadata.get("namespace")
                namespace = ns if isinstance(ns, str) else ""
                labels = format_labels(metadata.get("labels"))
            lines.append(self._decorate(texts, namespace, labels))
        return self._format(lines)

    def _start_section(self) -> None:
        # kubectl uses a fresh printer per kind: new header, widths start over.
        self._printed_header = False
        self._widths = []

    def _decorate(self, cells: list[str], namespace: str, labels: str) -> list[str]:
        if self.with_namespace:
            cells = [namespace] + cells
        if self.show_labels:
            cells = cells + [labels]
        return cells

    def _format(self, lines: list[list[str]]) -> str:
        # Only tab-terminated cells (all but the last of a line) are aligned.
        for line in lines:
            for j, cell in enumerate(line[:-1]):
                width = max(len(cell) + PADDING, MIN_WIDTH)
                if j >= len(self._widths):
                    self._widths.append(width)
                elif width > self._widths[j]:
                    self._widths[j] = width
        out = []
        for line in lines:
            padded = [cell.ljust(self._widths[j]) for j, cell in enumerate(line[:-1])]
            out.append("".join(padded) + (line[-1] if line else "") + "\n")
        return "".join(out)


def _priority(column: dict) -> int:
    value = column.get("priority")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def render_table(table: dict, *, wide: bool = False, with_namespace: bool = False,
                 show_labels: bool = False, no_headers: bool = False,
                 with_kind: str | None = None) -> str:
    """kubectl's text for one Table; '' when it has no rows (kubectl then says
    "No resources found" on stderr, which is the caller's business)."""
    return TableWriter(wide=wide, with_namespace=with_namespace, show_labels=show_labels,
                       no_headers=no_headers, with_kind=with_kind).write(table)
