// The inspection grid: one keyed DOM node per classroom, updated in place from the SSE stream.
// Incoming cards are queued and applied once per animation frame, and only changed fields are
// written, so 2,000 classrooms updating every few seconds stay smooth. A classroom is
// (school_id, classroom_id): room numbers repeat across schools, so every map is keyed by both.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "classtrace.token", LANG_KEY = "classtrace.lang";
  const rooms = new Map();          // key "school\u0000classroom" → {el, f: field nodes, data, key}
  const order = [];                 // sorted keys, parallel to the grid
  const pending = new Map();        // key → newest card not yet drawn
  const schools = new Set(), subjects = new Set();
  let lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
  let t = window.I18N[lang];
  let token = "", source = null, frame = 0, detailId = null, detailTimer = 0, lastDetail = 0;
  const filter = { school: "", subject: "", mode: "", alerts: false };

  // -- token -------------------------------------------------------------------------------
  function takeToken() {
    const url = new URL(location.href);
    const given = url.searchParams.get("token");
    if (given) {
      sessionStorage.setItem(TOKEN_KEY, given);
      url.searchParams.delete("token");       // keep the secret out of history and screenshots
      history.replaceState(null, "", url.pathname + url.search + url.hash);
    }
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function showLogin(error) {
    $("login").hidden = false;
    $("filters").hidden = true;
    $("login-error").textContent = error ? t.badToken : "";
    setConn("off", "connecting");
  }

  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token-input").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    connect();
  });

  // -- stream ------------------------------------------------------------------------------
  function setConn(cls, key) {
    const c = $("conn");
    c.className = "conn " + cls;
    c.dataset.i18n = key;
    c.textContent = t[key];
  }

  function connect() {
    if (source) source.close();
    $("login").hidden = true;
    source = new EventSource("/v1/live/stream?token=" + encodeURIComponent(token));
    source.addEventListener("snapshot", (ev) => {
      const msg = JSON.parse(ev.data);
      $("filters").hidden = false;
      setScope(msg.scope);
      setConn("on", "live");
      const seen = new Set(msg.classrooms.map(keyOf));
      for (const id of [...rooms.keys()]) if (!seen.has(id)) removeRoom(id);
      queue(msg.classrooms, false);
    });
    source.addEventListener("update", (ev) => queue(JSON.parse(ev.data).classrooms, true));
    source.addEventListener("revoked", () => {
      source.close();
      sessionStorage.removeItem(TOKEN_KEY);
      setConn("off", "revoked");
      showLogin(true);
    });
    source.onerror = () => {
      setConn("off", "reconnecting");
      if (source.readyState === EventSource.CLOSED) checkToken();
    };
  }

  // The browser closes an EventSource for good on a 401: ask why before retrying.
  async function checkToken() {
    const r = await fetch("/v1/live/classrooms?limit=0", { headers: auth() }).catch(() => null);
    if (r && r.status === 401) { sessionStorage.removeItem(TOKEN_KEY); showLogin(true); return; }
    setTimeout(connect, 2000);
  }

  function auth() { return { Authorization: "Bearer " + token }; }

  function setScope(scope) {
    $("scope").textContent = scope ? `${t.scopeSchool} ${scope}` : t.allSchools;
    $("scope").dataset.scope = scope || "";
  }

  // -- grid --------------------------------------------------------------------------------
  function queue(cards, flash) {
    for (const c of cards) { c._flash = flash; pending.set(keyOf(c), c); }
    if (!frame) frame = requestAnimationFrame(flush);
  }

  function flush() {
    frame = 0;
    let newFilterOptions = false;
    for (const card of pending.values()) {
      const room = rooms.get(keyOf(card)) || addRoom(card);
      draw(room, card);
      if (card._flash) room.el.animate([{ boxShadow: "0 0 0 2px #f0c36d" }, { boxShadow: "0 0 0 0 #f0c36d00" }], 800);
      if (!schools.has(card.school_id)) { schools.add(card.school_id); newFilterOptions = true; }
      if (card.subject && !subjects.has(card.subject)) { subjects.add(card.subject); newFilterOptions = true; }
      if (room.key === detailId) refreshDetail();
    }
    pending.clear();
    if (newFilterOptions) fillFilterOptions();
    stats();
  }

  function keyOf(c) { return c.school_id + "\u0000" + c.classroom_id; }

  function addRoom(card) {
    const el = $("card-tpl").content.firstElementChild.cloneNode(true);
    const f = {};
    for (const n of el.querySelectorAll("[class]")) f[n.classList[0]] = n;
    f.barFill = el.querySelector(".bar i");
    const key = keyOf(card);
    el.dataset.id = card.school_id + "/" + card.classroom_id;  // ids never contain "/"
    el.addEventListener("click", () => openDetail(key));
    el.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openDetail(key); });
    let lo = 0, hi = order.length;       // binary search: keep the grid sorted by school, room
    while (lo < hi) { const mid = (lo + hi) >> 1; if (order[mid] < key) lo = mid + 1; else hi = mid; }
    const before = lo < order.length ? rooms.get(order[lo]).el : null;
    $("grid").insertBefore(el, before);
    order.splice(lo, 0, key);
    const room = { el, f, data: {}, key };
    rooms.set(key, room);
    labels(room);
    return room;
  }

  function removeRoom(key) {
    const room = rooms.get(key);
    if (!room) return;
    room.el.remove();
    order.splice(order.indexOf(key), 1);
    rooms.delete(key);
    if (key === detailId) closeDetail();
  }

  function set(node, text) { if (node.textContent !== text) node.textContent = text; }
  const pct = (v) => (v === null || v === undefined ? "—" : Math.round(v * 100) + "%");
  const num = (v) => (v === null || v === undefined ? "—" : v.toFixed(2));
  const hasLesson = (c) => Boolean(c.lesson_id);
  const subjectName = (s) => (s && t.subjects[s]) || s || "";
  const gradeName = (g) => {
    const m = /^G?(\d+)$/.exec(g || "");
    return m ? t.gradeOf.replace("{}", m[1]) : g || "";
  };

  function labels(room) {
    set(room.f["l-attention"], t.attention);
    set(room.f["l-participation"], t.participation);
    set(room.f["l-accuracy"], t.accuracy);
    set(room.f["l-hands"], t.hands);
  }

  function draw(room, c) {
    const f = room.f, lesson = hasLesson(c);
    room.data = c;
    set(f.room, c.classroom_id);
    set(f.school, c.school_id);
    set(f.subject, subjectName(c.subject));
    set(f.grade, gradeName(c.grade));
    set(f.status, lesson ? (c.live ? t.inProgress : t.ended) : t.noLesson);
    f.status.className = "status " + (c.live ? "live" : "done");
    const mode = lesson && c.teaching_mode ? c.teaching_mode : "";
    set(f.mode, mode ? t["mode_" + mode] || mode : t.noLesson);
    f.mode.className = "badge mode " + (mode || "none");
    set(f.st_rt, lesson ? num(c.st_rt) : "—");
    set(f.st_ch, lesson ? num(c.st_ch) : "—");
    set(f.attention, lesson ? pct(c.attention_rate) : "—");
    set(f.participation, lesson ? pct(c.participation_rate) : "—");
    set(f.accuracy, lesson && c.answers ? pct(c.answer_accuracy) : "—");
    set(f.hands, lesson ? String(c.hand_raises) : "—");
    f.barFill.style.width = lesson ? Math.round((c.attention_rate || 0) * 100) + "%" : "0";
    f.barFill.className = c.alerts.includes("low_attention") ? "low" : "";
    const alertText = c.alerts.map((a) => a === "device_offline"
      ? `${t.device_offline} ×${c.devices_offline.length}` : t[a] || a).join(" · ");
    set(f.alerts, alertText);
    room.el.classList.toggle("alerting", c.alerts.length > 0);
    room.el.classList.toggle("idle", !c.live);
    room.el.hidden = !matches(c);
  }

  function matches(c) {
    if (filter.school && c.school_id !== filter.school) return false;
    if (filter.subject && c.subject !== filter.subject) return false;
    if (filter.mode) {
      const mode = hasLesson(c) ? c.teaching_mode || "none" : "none";
      if (mode !== filter.mode) return false;
    }
    return !(filter.alerts && !c.alerts.length);
  }

  function applyFilters() {
    for (const room of rooms.values()) room.el.hidden = !matches(room.data);
    stats();
  }

  function fillFilterOptions() {
    for (const [id, values, name] of [["f-school", schools, (s) => s], ["f-subject", subjects, subjectName]]) {
      const sel = $(id), keep = sel.value;
      sel.replaceChildren(sel.options[0]);
      for (const v of [...values].sort()) sel.append(new Option(name(v), v));
      sel.value = keep;
    }
  }

  function stats() {
    let live = 0, alerts = 0, shown = 0;
    for (const room of rooms.values()) {
      if (room.data.live) live++;
      if (room.data.alerts.length) alerts++;
      if (!room.el.hidden) shown++;
    }
    set($("stat-rooms"), String(rooms.size));
    set($("stat-live"), String(live));
    set($("stat-alerts"), String(alerts));
    set($("stat-shown"), String(shown));
  }

  for (const [id, field, prop] of [["f-school", "school", "value"], ["f-subject", "subject", "value"],
    ["f-mode", "mode", "value"], ["f-alerts", "alerts", "checked"]]) {
    $(id).addEventListener("change", (ev) => { filter[field] = ev.target[prop]; applyFilters(); });
  }

  // -- detail ------------------------------------------------------------------------------
  function openDetail(key) {
    detailId = key;
    $("detail").hidden = false;
    lastDetail = 0;
    refreshDetail();
  }

  function closeDetail() { detailId = null; $("detail").hidden = true; }
  $("d-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeDetail(); });

  // At most one detail fetch per second, however often the classroom changes.
  function refreshDetail() {
    if (detailTimer) return;
    const wait = Math.max(0, lastDetail + 1000 - Date.now());
    detailTimer = setTimeout(async () => {
      detailTimer = 0;
      lastDetail = Date.now();
      const key = detailId;
      const room = key && rooms.get(key);
      if (!room) return;
      const { school_id: school, classroom_id: classroom } = room.data;
      const url = "/v1/live/classrooms/" + encodeURIComponent(school) + "/" + encodeURIComponent(classroom);
      const r = await fetch(url, { headers: auth() });
      if (r.ok && key === detailId) renderDetail(await r.json());
    }, wait);
  }

  function renderDetail(d) {
    const lesson = hasLesson(d);
    set($("d-title"), `${d.classroom_id} · ${lesson ? t["mode_" + d.teaching_mode] || "" : t.noLesson}`);
    const started = d.started_at ? new Date(d.started_at).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB") : "";
    set($("d-sub"), [d.school_id, subjectName(d.subject), gradeName(d.grade), d.teacher_id && `${t.teacher} ${d.teacher_id}`,
      started && `${t.startedAt} ${started}`, lesson && (d.live ? t.inProgress : t.ended)].filter(Boolean).join(" · "));
    const rows = [["Rt", num(d.st_rt)], ["Ch", num(d.st_ch)], [t.samples, String(d.st_samples ?? "—")],
      [t.attention, pct(d.attention_rate)], [t.participation, pct(d.participation_rate)],
      [t.accuracy, d.answers ? pct(d.answer_accuracy) : "—"], [t.answers, String(d.answers ?? "—")],
      [t.hands, String(d.hand_raises ?? "—")], [t.enrolled, String(d.enrolled ?? "—")]];
    $("d-metrics").replaceChildren(...rows.flatMap(([k, v]) => {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = k; dd.textContent = lesson ? v : "—";
      return [dt, dd];
    }));
    window.Charts.stCurve($("st-curve"), lesson ? d.st_codes : "", t);
    // 10 s windows when the worker emits them, else the lesson's running attention rate
    const series = d.series || {};
    const windows = series.attention_rate && series.attention_rate.length ? series.attention_rate : null;
    window.Charts.attention($("attention-chart"), windows || series.attention_lesson || [], d.started_at, t);
    $("d-devices").replaceChildren(...d.device_list.map((dev) => {
      const tr = document.createElement("tr");
      if (dev.offline) tr.className = "offline";
      const seen = dev.last_heartbeat ? new Date(dev.last_heartbeat).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB") : "—";
      for (const text of [dev.device_id, dev.kind, dev.offline ? t.offline : t.online,
        `${t.battery} ${Math.round(dev.battery_pct)}%`, `${t.lastHeartbeat} ${seen}`]) {
        const td = document.createElement("td"); td.textContent = text; tr.append(td);
      }
      return tr;
    }));
    renderAlerts(d.alert_history || []);
  }

  // The worker's alerts for this classroom, latest raised first (text only: no markup from data).
  function renderAlerts(history) {
    const time = (ms) => ms ? new Date(ms).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB") : "";
    const items = history.map((a) => {
      const li = document.createElement("li");
      if (a.state === "raised") li.className = "raised";
      const span = a.cleared_at ? `${time(a.raised_at)}–${time(a.cleared_at)}` : time(a.raised_at);
      li.textContent = [t[a.kind] || a.kind, a.device_id || a.lesson_id, t[a.state] || a.state, span]
        .filter(Boolean).join(" · ");
      return li;
    });
    if (!items.length) {
      const li = document.createElement("li"); li.textContent = t.noAlerts; items.push(li);
    }
    $("d-alerts").replaceChildren(...items);
  }

  // -- language ----------------------------------------------------------------------------
  function applyLang() {
    t = window.I18N[lang];
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = (lang === "zh" ? "线上巡课" : "Class inspection") + " · classtrace";
    for (const n of document.querySelectorAll("[data-i18n]")) n.textContent = t[n.dataset.i18n];
    $("lang").textContent = t.lang;
    setScope($("scope").dataset.scope);
    for (const room of rooms.values()) { labels(room); if (room.data.classroom_id) draw(room, room.data); }
    fillFilterOptions();
    if (detailId) { lastDetail = 0; refreshDetail(); }
  }

  $("lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG_KEY, lang);
    applyLang();
  });

  applyLang();
  token = takeToken();
  if (token) connect(); else showLogin(false);
})();
