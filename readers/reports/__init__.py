"""HTML reports for inspectors and analysts: lesson reports and teacher portraits (offline, SVG)."""

from readers.reports.data import load_lesson, load_teacher
from readers.reports.render import render_lesson, render_teacher

__all__ = ["load_lesson", "load_teacher", "render_lesson", "render_teacher"]
