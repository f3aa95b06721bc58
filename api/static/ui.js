// inferq dashboard: polls the /v1 JSON API with the key typed in the page. No framework, no build step.
// Every string from the server goes into the DOM through textContent, never as HTML.
"use strict";

(function () {
  const POLL_MS = 2000;
  const RATE_WINDOW_MS = 20000; // per-job rate: records finished over the last 20 s
  const CHART_WINDOW_MS = 5 * 60 * 1000;
  const KEY_STORAGE = "inferq.apiKey";
  const LIVE = new Set(["queued", "running", "finalizing", "cancelling"]);
  const CANCELLABLE = new Set(["queued", "running", "finalizing"]);
  const STATUSES = new Set(["queued", "running", "finalizing", "succeeded", "failed", "cancelling", "cancelled", "expired"]);

  const $ = (id) => document.getElementById(id);
  const state = {
    key: "",
    timer: null,
    polling: false,
    rows: new Map(), // job id -> {tr, cells}
    history: new Map(), // job id -> [{t, done}] for per-job rates
    lastDone: null, // Map job id -> done at the previous poll, for the chart
    lastPollAt: 0,
    samples: [], // [{t, rate}] for the chart
    eventsJob: null,
  };

  // ---- small DOM helpers ------------------------------------------------------------------------

  function el(tag, opts, children) {
    const node = document.createElement(tag);
    if (opts) {
      if (opts.cls) node.className = opts.cls;
      if (opts.text !== undefined && opts.text !== null) node.textContent = String(opts.text);
      if (opts.title) node.title = String(opts.title);
      if (opts.attrs) for (const [k, v] of Object.entries(opts.attrs)) node.setAttribute(k, String(v));
    }
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  function setText(node, text) {
    const value = text === undefined || text === null ? "" : String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  function notice(message, kind) {
    const box = $("notice");
    box.textContent = message;
    box.className = "notice " + (kind || "info");
    box.hidden = false;
  }

  function clearNotice() {
    $("notice").hidden = true;
  }

  function setConn(text, kind) {
    const conn = $("conn");
    conn.textContent = text;
    conn.className = "conn " + kind;
  }

  // ---- formatting -------------------------------------------------------------------------------

  function formatCount(n) {
    return Number(n).toLocaleString("en-US");
  }

  function formatRate(rate) {
    if (rate === null || !isFinite(rate)) return "—";
    return (rate >= 100 ? rate.toFixed(0) : rate.toFixed(1)) + " /s";
  }

  function formatDuration(seconds) {
    if (seconds === null || !isFinite(seconds) || seconds < 0) return "—";
    const s = Math.round(seconds);
    if (s < 60) return s + "s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + "m " + String(s % 60).padStart(2, "0") + "s";
    return Math.floor(m / 60) + "h " + String(m % 60).padStart(2, "0") + "m";
  }

  function formatTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    const sameDay = d.toDateString() === new Date().toDateString();
    return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
  }

  // An event's data as `key=value` pairs; numbers with a fraction keep 4 significant digits.
  function formatData(data) {
    if (!data || typeof data !== "object") return "";
    return Object.entries(data)
      .map(([k, v]) => {
        let value;
        if (typeof v === "number") value = Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
        else if (v !== null && typeof v === "object") value = JSON.stringify(v);
        else value = String(v);
        return k + "=" + value;
      })
      .join("  ·  ");
  }

  function formatBytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " kB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  // ---- API --------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, { raw = false } = {}) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: { Authorization: "Bearer " + state.key, Accept: "application/json" },
        cache: "no-store",
      });
    } catch (e) {
      throw new ApiError(0, "unreachable", "the server cannot be reached");
    }
    if (!response.ok) {
      let code = "http_" + response.status;
      let message = response.statusText || "request failed";
      try {
        const body = await response.json();
        if (body && body.error) {
          code = body.error.code || code;
          message = body.error.message || message;
        }
      } catch (e) {
        // not a JSON error body: keep the status line
      }
      throw new ApiError(response.status, code, message);
    }
    return raw ? response : response.json();
  }

  // ---- rates ------------------------------------------------------------------------------------

  function doneOf(job) {
    const p = job.progress || {};
    return (p.completed || 0) + (p.failed || 0);
  }

  function jobRate(job, now) {
    let points = state.history.get(job.id);
    if (!points) {
      points = [];
      state.history.set(job.id, points);
    }
    points.push({ t: now, done: doneOf(job) });
    while (points.length > 2 && now - points[0].t > RATE_WINDOW_MS) points.shift();
    if (points.length < 2) return null;
    const first = points[0];
    const last = points[points.length - 1];
    const dt = (last.t - first.t) / 1000;
    return dt > 0 ? Math.max(0, last.done - first.done) / dt : null;
  }

  function recordThroughput(jobs, now) {
    const done = new Map(jobs.map((j) => [j.id, doneOf(j)]));
    if (state.lastDone !== null && now > state.lastPollAt) {
      let delta = 0;
      for (const [id, value] of done) {
        // a job seen for the first time has no baseline: its earlier work is not this interval's
        if (state.lastDone.has(id)) delta += Math.max(0, value - state.lastDone.get(id));
      }
      const rate = delta / ((now - state.lastPollAt) / 1000);
      state.samples.push({ t: now, rate });
      while (state.samples.length && now - state.samples[0].t > CHART_WINDOW_MS) state.samples.shift();
      setText($("rate-now"), formatRate(rate));
    }
    state.lastDone = done;
    state.lastPollAt = now;
  }

  // ---- jobs table -------------------------------------------------------------------------------

  function button(label, cls, onClick) {
    const b = el("button", { cls: "small " + (cls || ""), text: label, attrs: { type: "button" } });
    b.addEventListener("click", onClick);
    return b;
  }

  function createRow(job) {
    const fill = el("div", { cls: "fill" });
    const bar = el("div", {
      cls: "bar",
      attrs: { role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0 },
    }, [fill]);
    const cells = {
      id: el("code", { text: job.id }),
      what: el("div", { cls: "nowrap" }),
      model: el("div", { cls: "muted nowrap" }),
      status: el("span", { cls: "badge" }),
      bar,
      fill,
      progressText: el("div", { cls: "progress-text muted" }),
      rate: el("td", { cls: "num rate" }),
      eta: el("td", { cls: "num eta" }),
      created: el("td", { cls: "muted nowrap" }),
      events: button("Events", "secondary events-btn", () => openEvents(job.id)),
      results: button("Results", "results-btn", () => download(job.id, "results")),
      errors: button("Errors", "secondary errors-btn", () => download(job.id, "errors")),
      cancel: button("Cancel", "danger cancel-btn", () => cancel(job.id)),
    };
    const tr = el("tr", { attrs: { "data-job-id": job.id } }, [
      el("td", null, [cells.id]),
      el("td", null, [cells.what, cells.model]),
      el("td", null, [cells.status]),
      el("td", { cls: "progress-col" }, [bar, cells.progressText]),
      cells.rate,
      cells.eta,
      cells.created,
      el("td", { cls: "actions" }, [cells.events, cells.results, cells.errors, cells.cancel]),
    ]);
    return { tr, cells };
  }

  function updateRow(row, job, rate) {
    const c = row.cells;
    const status = STATUSES.has(job.status) ? job.status : "unknown";
    const p = job.progress || {};
    const done = doneOf(job);
    const total = typeof p.total === "number" ? p.total : null;
    let pct = total ? Math.min(100, (100 * done) / total) : 0;
    if (status === "succeeded") pct = 100;

    row.tr.dataset.status = status;
    setText(c.what, job.type === "predict" ? job.task : job.type + " · " + job.task);
    setText(c.model, job.model || "from scratch");
    setText(c.status, job.status);
    c.status.className = "badge status-" + status;
    c.status.title = job.error ? job.error.code + ": " + job.error.message : "";

    c.fill.style.width = pct.toFixed(1) + "%";
    c.fill.className = "fill status-" + status;
    c.bar.setAttribute("aria-valuenow", pct.toFixed(0));
    let text = total === null ? formatCount(done) + " / ? (planning)" : formatCount(done) + " / " + formatCount(total) + " · " + pct.toFixed(0) + "%";
    if (p.failed) text += " · " + formatCount(p.failed) + " failed";
    setText(c.progressText, text);

    const live = LIVE.has(status);
    setText(c.rate, live ? formatRate(rate) : "—");
    let eta = "—";
    if (status === "succeeded") eta = "done";
    else if (live && total !== null && rate) eta = formatDuration((total - done) / rate);
    setText(c.eta, eta);
    setText(c.created, formatTime(job.created_at));
    c.created.title = job.created_at || "";
    c.id.title = "input " + (job.input_file || "—");

    c.results.disabled = !job.output_file;
    c.errors.disabled = !job.error_file;
    c.cancel.disabled = !CANCELLABLE.has(status);
  }

  function renderJobs(jobs, now) {
    const body = $("jobs-body");
    const seen = new Set();
    jobs.forEach((job, index) => {
      seen.add(job.id);
      let row = state.rows.get(job.id);
      if (!row) {
        row = createRow(job);
        state.rows.set(job.id, row);
      }
      updateRow(row, job, jobRate(job, now));
      if (body.children[index] !== row.tr) body.insertBefore(row.tr, body.children[index] || null);
    });
    for (const [id, row] of state.rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        state.rows.delete(id);
        state.history.delete(id);
      }
    }
    $("jobs-empty").hidden = jobs.length > 0;
  }

  // ---- events -----------------------------------------------------------------------------------

  function openEvents(jobId) {
    state.eventsJob = jobId;
    setText($("events-job"), jobId);
    $("events").hidden = false;
    loadEvents();
    $("events").scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  function closeEvents() {
    state.eventsJob = null;
    $("events").hidden = true;
  }

  async function loadEvents() {
    const jobId = state.eventsJob;
    if (!jobId) return;
    let body;
    try {
      body = await api("GET", "/v1/jobs/" + encodeURIComponent(jobId) + "/events?limit=1000");
    } catch (e) {
      notice("Events of " + jobId + ": " + e.message, "error");
      return;
    }
    if (state.eventsJob !== jobId) return;
    const rows = body.data.map((ev) => {
      const change = ev.from_status || ev.to_status ? (ev.from_status || "·") + " → " + (ev.to_status || "·") : "";
      let message = ev.message || "";
      const data = formatData(ev.data);
      const msgCell = el("td", null, [el("div", { text: message })]);
      if (data) msgCell.appendChild(el("div", { cls: "muted mono", text: data }));
      return el("tr", { attrs: { "data-event-id": ev.id } }, [
        el("td", { cls: "muted nowrap", text: formatTime(ev.created_at), title: ev.created_at }),
        el("td", null, [el("span", { cls: "kind", text: ev.kind })]),
        el("td", { cls: "nowrap", text: change }),
        msgCell,
      ]);
    });
    $("events-body").replaceChildren(...rows);
    $("events-empty").hidden = rows.length > 0;
  }

  // ---- actions ----------------------------------------------------------------------------------

  function extensionFor(contentType) {
    if (contentType.includes("parquet")) return ".parquet";
    if (contentType.includes("csv")) return ".csv";
    return ".jsonl";
  }

  async function download(jobId, kind) {
    try {
      const response = await api("GET", "/v1/jobs/" + encodeURIComponent(jobId) + "/" + kind, { raw: true });
      const blob = await response.blob();
      const name = jobId + "-" + kind + extensionFor(response.headers.get("Content-Type") || "");
      const url = URL.createObjectURL(blob);
      const link = el("a", { attrs: { href: url, download: name } });
      link.hidden = true;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      notice("Saved " + name + " (" + formatBytes(blob.size) + ")", "ok");
    } catch (e) {
      notice("Download of " + kind + " for " + jobId + " failed: " + e.message, "error");
    }
  }

  async function cancel(jobId) {
    if (!window.confirm("Cancel job " + jobId + "? Finished parts stay downloadable.")) return;
    try {
      const job = await api("POST", "/v1/jobs/" + encodeURIComponent(jobId) + "/cancel");
      notice("Job " + jobId + " is " + job.status, "ok");
    } catch (e) {
      notice("Cancel of " + jobId + " failed: " + e.message, "error");
    }
    poll();
  }

  // ---- chart ------------------------------------------------------------------------------------

  function niceCeil(value) {
    if (value <= 1) return 1;
    const magnitude = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * magnitude) return step * magnitude;
    return 10 * magnitude;
  }

  function drawChart() {
    const canvas = $("chart");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const left = 48, right = 12, top = 10, bottom = 22;
    const plotW = width - left - right;
    const plotH = height - top - bottom;
    const now = Date.now();
    const start = now - CHART_WINDOW_MS;
    const points = state.samples.filter((s) => s.t >= start);
    const max = niceCeil(Math.max(0, ...points.map((p) => p.rate)));
    const x = (t) => left + ((t - start) / CHART_WINDOW_MS) * plotW;
    const y = (r) => top + plotH - (r / max) * plotH;

    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.strokeStyle = "#e3e7ee";
    ctx.fillStyle = "#6b7385";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const value = (max * i) / 4;
      const py = Math.round(y(value)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, py);
      ctx.lineTo(left + plotW, py);
      ctx.stroke();
      ctx.fillText(value >= 10 ? value.toFixed(0) : value.toFixed(1), left - 6, py);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let m = 5; m >= 0; m--) {
      const px = x(now - m * 60000);
      ctx.fillText(m === 0 ? "now" : "−" + m + " min", Math.min(Math.max(px, left + 16), left + plotW - 12), top + plotH + 6);
    }

    if (points.length < 2) {
      ctx.textBaseline = "middle";
      ctx.fillText(state.key ? "collecting…" : "enter an API key", left + plotW / 2, top + plotH / 2);
      return;
    }
    ctx.beginPath();
    ctx.moveTo(x(points[0].t), y(0));
    for (const p of points) ctx.lineTo(x(p.t), y(p.rate));
    ctx.lineTo(x(points[points.length - 1].t), y(0));
    ctx.closePath();
    ctx.fillStyle = "rgba(47, 111, 235, 0.12)";
    ctx.fill();
    ctx.beginPath();
    points.forEach((p, i) => (i === 0 ? ctx.moveTo(x(p.t), y(p.rate)) : ctx.lineTo(x(p.t), y(p.rate))));
    ctx.strokeStyle = "#2f6feb";
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    ctx.stroke();
  }

  // ---- polling ----------------------------------------------------------------------------------

  async function poll() {
    if (!state.key || state.polling) return;
    state.polling = true;
    try {
      const filter = $("status-filter").value;
      const query = "?limit=50" + (filter ? "&status=" + encodeURIComponent(filter) : "");
      const body = await api("GET", "/v1/jobs" + query);
      const now = Date.now();
      recordThroughput(body.data, now);
      renderJobs(body.data, now);
      setConn("connected · updated " + new Date(now).toLocaleTimeString(), "ok");
      if (state.eventsJob) await loadEvents();
    } catch (e) {
      if (e.status === 401) {
        stop();
        setConn("key rejected", "error");
        notice("The API key was refused: " + e.message, "error");
      } else {
        setConn(e.status ? "error " + e.status : "server unreachable", "error");
      }
    } finally {
      state.polling = false;
      drawChart();
    }
  }

  function stop() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
  }

  function resetData() {
    for (const row of state.rows.values()) row.tr.remove();
    state.rows.clear();
    state.history.clear();
    state.lastDone = null;
    state.samples = [];
    setText($("rate-now"), formatRate(0));
    closeEvents();
  }

  function connect(key) {
    stop();
    resetData();
    state.key = key;
    clearNotice();
    if (!key) {
      setConn("not connected", "idle");
      $("jobs-empty").hidden = false;
      drawChart();
      return;
    }
    setConn("connecting…", "idle");
    poll();
    state.timer = setInterval(poll, POLL_MS);
  }

  function init() {
    const input = $("api-key");
    const saved = window.localStorage.getItem(KEY_STORAGE) || "";
    input.value = saved;
    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const key = input.value.trim();
      if (key) window.localStorage.setItem(KEY_STORAGE, key);
      else window.localStorage.removeItem(KEY_STORAGE);
      connect(key);
    });
    $("key-forget").addEventListener("click", () => {
      window.localStorage.removeItem(KEY_STORAGE);
      input.value = "";
      connect("");
    });
    $("events-close").addEventListener("click", closeEvents);
    $("status-filter").addEventListener("change", () => {
      const key = state.key;
      connect(key);
    });
    window.addEventListener("resize", drawChart);
    connect(saved);
  }

  document.addEventListener("DOMContentLoaded", init);
})();
