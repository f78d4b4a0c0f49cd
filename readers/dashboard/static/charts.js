// Inline-SVG charts of the detail view: the classic S-T diagram and attention over the lesson.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // S-T diagram: every 30 s sample steps one unit right (T, teacher) or up (S, students);
  // the slope shows who holds the lesson. Both axes share a scale, as in the classic plot.
  function stCurve(svg, codes, t) {
    svg.replaceChildren();
    const size = 320, pad = 34, span = size - 2 * pad;
    const n = Math.max(codes.length, 10);
    const step = span / n;
    const x0 = pad, y0 = size - pad;
    for (let i = 0; i <= 5; i++) {
      const v = Math.round((n * i) / 5), off = (span * i) / 5;
      svg.append(el("line", { x1: x0 + off, y1: y0, x2: x0 + off, y2: pad, class: "grid" }));
      svg.append(el("line", { x1: x0, y1: y0 - off, x2: size - pad, y2: y0 - off, class: "grid" }));
      svg.append(el("text", { x: x0 + off, y: y0 + 14, class: "tick", "text-anchor": "middle" }, v));
      svg.append(el("text", { x: x0 - 5, y: y0 - off + 4, class: "tick", "text-anchor": "end" }, v));
    }
    svg.append(el("line", { x1: x0, y1: y0, x2: size - pad, y2: pad, class: "ref" }));
    svg.append(el("text", { x: size - pad, y: size - 4, class: "axis", "text-anchor": "end" }, t.tAxis));
    svg.append(el("text", { x: 4, y: pad - 10, class: "axis" }, t.sAxis));
    if (!codes.length) {
      svg.append(el("text", { x: size / 2, y: size / 2, class: "empty", "text-anchor": "middle" }, t.noData));
      return;
    }
    let x = 0, y = 0;
    const pts = [`${x0},${y0}`];
    for (const c of codes) {
      if (c === "T") x += 1; else y += 1;
      pts.push(`${(x0 + x * step).toFixed(1)},${(y0 - y * step).toFixed(1)}`);
    }
    svg.append(el("polyline", { points: pts.join(" "), class: "st-line" }));
  }

  // Attention per 10 s window, 0–100 %, x in minutes since the lesson started.
  function attention(svg, points, startedAt, t) {
    svg.replaceChildren();
    const w = 520, h = 180, pl = 38, pr = 10, pt = 10, pb = 26;
    const iw = w - pl - pr, ih = h - pt - pb;
    for (const pct of [0, 25, 50, 75, 100]) {
      const y = pt + ih - (ih * pct) / 100;
      svg.append(el("line", { x1: pl, y1: y, x2: w - pr, y2: y, class: pct === 0 ? "axisline" : "grid" }));
      svg.append(el("text", { x: pl - 5, y: y + 4, class: "tick", "text-anchor": "end" }, pct + "%"));
    }
    const yLow = pt + ih - ih * 0.6;
    svg.append(el("line", { x1: pl, y1: yLow, x2: w - pr, y2: yLow, class: "threshold" }));
    if (!points.length) {
      svg.append(el("text", { x: w / 2, y: h / 2, class: "empty", "text-anchor": "middle" }, t.noData));
      return;
    }
    const t0 = startedAt || points[0][0];
    const tEnd = Math.max(points[points.length - 1][0] + 10000, t0 + 5 * 60000);
    const sx = (ms) => pl + (iw * (ms - t0)) / (tEnd - t0);
    const sy = (v) => pt + ih - ih * Math.max(0, Math.min(1, v));
    const totalMin = (tEnd - t0) / 60000;
    const every = totalMin > 60 ? 15 : totalMin > 20 ? 10 : 5;
    for (let m = 0; m <= totalMin; m += every) {
      const x = sx(t0 + m * 60000);
      if (x > w - pr - 40) break;  // leave room for the unit label
      svg.append(el("text", { x, y: h - 8, class: "tick", "text-anchor": "middle" }, m));
    }
    svg.append(el("text", { x: w - pr, y: h - 8, class: "tick", "text-anchor": "end" }, t.minutes));
    const line = points.map(([ms, v]) => `${sx(ms).toFixed(1)},${sy(v).toFixed(1)}`);
    const first = points[0][0], last = points[points.length - 1][0];
    const area = `${sx(first).toFixed(1)},${sy(0)} ${line.join(" ")} ${sx(last).toFixed(1)},${sy(0)}`;
    svg.append(el("polygon", { points: area, class: "att-area" }));
    svg.append(el("polyline", { points: line.join(" "), class: "att-line" }));
  }

  window.Charts = { stCurve, attention };
})();
