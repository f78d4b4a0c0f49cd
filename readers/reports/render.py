"""Self-contained HTML reports (zh-CN by default, English with ``lang="en"``).

One Jinja2 template (``templates/report.html``, autoescaped) with inline CSS and inline SVG
charts (:mod:`readers.reports.svg`): the file opens offline, by e-mail or on an inspector's laptop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from readers.reports.data import LessonData, TeacherData
from readers.reports.svg import bar_stack, line_chart, st_curve

__all__ = ["LANGS", "render_lesson", "render_teacher"]

MODES = ("lecture", "practice", "dialogue", "mixed")
LANGS: dict[str, dict[str, str]] = {
    "zh": {
        "html_lang": "zh-CN",
        "generated": "生成于",
        "footer": "伴随式数据采集 · 教育大数据中心",
        "lesson_title": "课堂报告",
        "teacher_title": "教师数字画像",
        "lecture": "讲授型",
        "practice": "练习型",
        "dialogue": "对话型",
        "mixed": "混合型",
        "mode": "教学模式",
        "st_rt": "教师占有率 Rt",
        "st_ch": "师生转换率 Ch",
        "attention": "专注度",
        "participation": "参与率",
        "accuracy": "答题正确率",
        "answers": "作答数",
        "hand_raises": "举手次数",
        "lessons": "课时数",
        "st_curve": "S-T 曲线",
        "st_note": "每 30 秒采样一次：T 向上，S 向右。",
        "attention_curve": "课堂专注度变化",
        "hand_raising": "举手（摄像头）",
        "mode_mix": "教学模式分布（按周）",
        "weekly": "每周指标",
        "recent": "近期课堂",
        "week": "周",
        "lesson": "课堂",
        "subject": "学科",
        "started": "开始时间",
        "no_series": "暂无时间序列数据。",
        "na": "—",
    },
    "en": {
        "html_lang": "en",
        "generated": "generated",
        "footer": "accompanying data collection",
        "lesson_title": "Lesson report",
        "teacher_title": "Teacher digital portrait",
        "lecture": "lecture",
        "practice": "practice",
        "dialogue": "dialogue",
        "mixed": "mixed",
        "mode": "Teaching mode",
        "st_rt": "Teacher occupancy Rt",
        "st_ch": "Conversion ratio Ch",
        "attention": "Attention",
        "participation": "Participation",
        "accuracy": "Answer accuracy",
        "answers": "Answers",
        "hand_raises": "Hand raises",
        "lessons": "Lessons",
        "st_curve": "S-T curve",
        "st_note": "One sample every 30 s: T steps up, S steps right.",
        "attention_curve": "Attention over the lesson",
        "hand_raising": "Hand raising (camera)",
        "mode_mix": "Teaching-mode mix per week",
        "weekly": "Weekly metrics",
        "recent": "Recent lessons",
        "week": "Week",
        "lesson": "Lesson",
        "subject": "Subject",
        "started": "Started",
        "no_series": "No time series yet.",
        "na": "—",
    },
}

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class _Table:
    head: list[str]
    rows: list[list[str]]


@dataclass
class _Section:
    title: str
    chart: str = ""
    table: _Table | None = None
    note: str = ""


def _pct(value: Any, t: dict[str, str]) -> str:
    return t["na"] if value is None else f"{float(value) * 100:.1f}%"


def _num(value: Any, t: dict[str, str], digits: int = 2) -> str:
    return t["na"] if value is None else f"{float(value):.{digits}f}"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else str(value)


def _page(
    t: dict[str, str], title: str, subtitle: str, kpis: list[tuple[str, str]], sections: list[_Section]
) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    template = _ENV.get_template("report.html")
    return template.render(t=t, title=title, subtitle=subtitle, generated=now, kpis=kpis, sections=sections)


def render_lesson(data: LessonData, lang: str = "zh") -> str:
    """The lesson report: KPIs, the S-T curve, attention and hand raising over the lesson."""
    t = LANGS[lang]
    s = data.summary
    kpis = [
        (t["mode"], t.get(s["teaching_mode"], s["teaching_mode"])),
        (t["st_rt"], _num(s["st_rt"], t)),
        (t["st_ch"], _num(s["st_ch"], t)),
        (t["attention"], _pct(s["attention_rate"], t)),
        (t["participation"], _pct(s["participation_rate"], t)),
        (t["accuracy"], _pct(s["answer_accuracy"], t)),
        (t["answers"], str(s["answers"])),
        (t["hand_raises"], str(s["hand_raises"])),
    ]
    sections = [_Section(t["st_curve"], st_curve(s["st_codes"], t["st_curve"]), note=t["st_note"])]
    if data.attention or data.hand_raising:
        times = sorted({w for w, _ in data.attention} | {w for w, _ in data.hand_raising})
        att = dict(data.attention)
        sections.append(
            _Section(
                t["attention_curve"],
                line_chart(
                    [w.strftime("%H:%M") for w in times],
                    {t["attention"]: [att.get(w) for w in times]},
                    y_max=1.0,
                ),
            )
        )
        if data.hand_raising:
            hr = dict(data.hand_raising)
            sections.append(
                _Section(
                    t["hand_raising"],
                    line_chart(
                        [w.strftime("%H:%M") for w in times], {t["hand_raising"]: [hr.get(w) for w in times]}
                    ),
                )
            )
    else:
        sections.append(_Section(t["attention_curve"], note=t["no_series"]))
    parts = (s["school_id"], s["classroom_id"], s["teacher_id"], f"{s['subject']} {s['grade']}")
    subtitle = " · ".join((*parts, _when(s["started_at"])))
    return _page(t, f"{t['lesson_title']} {s['lesson_id']}", subtitle, kpis, sections)


def render_teacher(data: TeacherData, lang: str = "zh") -> str:
    """The teacher portrait: weekly mode mix, Rt/Ch, attention and accuracy, recent lessons."""
    t = LANGS[lang]
    weeks = data.weeks
    labels = [f"{w['iso_year']}-W{int(w['iso_week']):02d}" for w in weeks]
    total = sum(int(w["lessons"]) for w in weeks)
    last = weeks[-1]
    kpis = [
        (t["lessons"], str(total)),
        (t["st_rt"], _num(last["avg_st_rt"], t)),
        (t["st_ch"], _num(last["avg_st_ch"], t)),
        (t["attention"], _pct(last["avg_attention"], t)),
        (t["accuracy"], _pct(last["avg_accuracy"], t)),
    ]
    mix = {t[m]: [float(w[f"{m}_lessons"]) for w in weeks] for m in MODES}
    trends = {
        t["st_rt"]: [_opt(w["avg_st_rt"]) for w in weeks],
        t["st_ch"]: [_opt(w["avg_st_ch"]) for w in weeks],
        t["attention"]: [_opt(w["avg_attention"]) for w in weeks],
        t["accuracy"]: [_opt(w["avg_accuracy"]) for w in weeks],
    }
    weekly = _Table(
        [t["week"], t["lessons"], t["st_rt"], t["st_ch"], t["attention"], t["accuracy"]],
        [
            [lab, str(w["lessons"]), _num(w["avg_st_rt"], t), _num(w["avg_st_ch"], t),
             _pct(w["avg_attention"], t), _pct(w["avg_accuracy"], t)]
            for lab, w in zip(labels, weeks, strict=True)
        ],
    )  # fmt: skip
    recent = _Table(
        [t["lesson"], t["subject"], t["started"], t["mode"], t["st_rt"], t["attention"], t["accuracy"]],
        [
            [r["lesson_id"], f"{r['subject']} {r['grade']}", _when(r["started_at"]),
             t.get(r["teaching_mode"], r["teaching_mode"]), _num(r["st_rt"], t),
             _pct(r["attention_rate"], t), _pct(r["answer_accuracy"], t)]
            for r in data.lessons
        ],
    )  # fmt: skip
    sections = [
        _Section(t["mode_mix"], bar_stack(labels, mix, t["mode_mix"])),
        _Section(t["weekly"], line_chart(labels, trends, t["weekly"], y_max=1.0), weekly),
        _Section(t["recent"], table=recent),
    ]
    return _page(t, f"{t['teacher_title']} {data.teacher_id}", data.school_id, kpis, sections)


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)
