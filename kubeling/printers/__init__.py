"""Tables like Kubernetes prints them: server-side Tables (to_table) and the
text kubectl renders from them (render_table, TableWriter)."""
from kubeling.printers.table import INCLUDE_OBJECT_VALUES, column_definitions, to_table
from kubeling.printers.text import TableWriter, format_cell, render_table

__all__ = ["INCLUDE_OBJECT_VALUES", "TableWriter", "column_definitions", "format_cell",
           "render_table", "to_table"]
