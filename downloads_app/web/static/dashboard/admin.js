// The admin page: queue health every two seconds, charts of the last hour, expiring licences, and
// requeue for stalled or dead-lettered downloads.
"use strict";

const $ = (id) => document.getElementById(id);
let token = localStorage.getItem("downloads.adminToken") || "";
let timer = null;
let refreshes = 0;

// The states in the lifecycle's order (the API's JSON object has them sorted by name).
const LIFECYCLE = ["pending", "downloading", "paused", "completed", "failed", "cancelled", "expired"];

// chart id: [title, the value of one minute of GET /api/queue/activity, how to show a value]
const CHARTS = {
  depth: ["Queue depth", (m) => m.queue_depth, (v) => `${v}`],
  started: ["Starts per minute", (m) => m.started, (v) => `${v}`],
  completed: ["Completions per minute", (m) => m.completed, (v) => `${v}`],
  failed: ["Failures per minute", (m) => m.failed, (v) => `${v}`],
  bytes: ["Transfer, bytes per second", (m) => Number(m.transferred_bytes) / 60, humanBytesPerSecond],
};
const SVG = "http://www.w3.org/2000/svg";

function humanBytesPerSecond(n) {
  const units = ["B/s", "kB/s", "MB/s", "GB/s"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(n >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

async function api(method, path) {
  const response = await fetch(path, { method, headers: { Authorization: `Bearer ${token}` } });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.message || `Request failed (${response.status})`);
  return data;
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "none";
  if (seconds < 60) return `${seconds.toFixed(0)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${Math.floor(seconds % 60)}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}

// A table row of `values` as text; `id`, if given, names what it shows (data-id).
function tableRow(values, id) {
  const row = document.createElement("tr");
  if (id !== undefined) row.dataset.id = id;
  for (const value of values) {
    const cell = document.createElement("td");
    cell.textContent = value;
    row.append(cell);
  }
  return row;
}

function attentionItem(id, reason, detail) {
  const item = document.createElement("li");
  item.className = "download";
  item.dataset.id = id;
  const row = document.createElement("div");
  row.className = "row between wrap";
  const text = document.createElement("span");
  text.innerHTML = `<strong></strong> <span class="badge failed"></span> <span class="small muted"></span>`;
  text.querySelector("strong").textContent = id;
  text.querySelector(".badge").textContent = reason;
  text.querySelector(".muted").textContent = detail;
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "Requeue";
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      showError("");
      await api("POST", `/api/queue/downloads/${id}/requeue`);
      await refresh();
    } catch (err) {
      showError(err.message);
      button.disabled = false;
    }
  });
  row.append(text, button);
  item.append(row);
  return item;
}

function render(health) {
  $("queue-name").textContent = health.queue.name;
  $("checked").textContent = `updated ${new Date().toLocaleTimeString()}`;
  $("ready").textContent = health.queue.ready;
  $("delayed").textContent = health.queue.delayed;
  $("dead").textContent = health.queue.dead_lettered;
  $("workers-alive").textContent = health.workers_alive;
  $("oldest").textContent = ago(health.oldest_pending_age_seconds);
  $("stalled-count").textContent = health.stalled_count;
  const states = [...LIFECYCLE, ...Object.keys(health.downloads_by_status).filter((s) => !LIFECYCLE.includes(s))];
  $("by-status").replaceChildren(...states.map((status) => [status, health.downloads_by_status[status] ?? 0]).map(([status, count]) => {
    const cell = document.createElement("div");
    cell.dataset.status = status;
    cell.innerHTML = "<strong></strong><span></span>";
    cell.querySelector("strong").textContent = count;
    cell.querySelector("span").textContent = status;
    return cell;
  }));
  const now = Date.now() / 1000;
  $("workers").replaceChildren(...health.workers.map((w) =>
    tableRow([w.host, w.pid, w.threads, `${ago(now - w.last_beat)} ago`, w.alive ? "alive" : "silent"])));
  const items = [
    ...health.stalled.map((d) => attentionItem(d.id, "stalled", `user ${d.user_id}, attempt ${d.attempts}, ${d.progress}%`)),
    ...health.dead_lettered_downloads.map((id) => attentionItem(id, "dead-lettered", "Dramatiq gave up on its message")),
  ];
  $("attention").replaceChildren(...items);
  $("calm").hidden = items.length > 0;
  $("expiring-count").textContent = health.licences_expiring_next_day;
  $("expiring").replaceChildren(...health.expiring_licences.map((d) =>
    tableRow([new Date(d.license_expires_at).toLocaleString(), d.user_id, d.content_id, d.id], d.id)));
  $("expiring-table").hidden = health.expiring_licences.length === 0;
  $("none-expiring").hidden = health.expiring_licences.length > 0;
}

// One bar chart of the last hour: a bar a minute, the peak and the latest value as text.
function chart(id, title, values, show) {
  const figure = document.createElement("figure");
  figure.className = "chart";
  figure.dataset.chart = id;
  const sampled = values.filter((v) => v !== null && v !== undefined);
  const peak = Math.max(0, ...sampled);
  const latest = sampled.length ? sampled[sampled.length - 1] : 0;
  const caption = document.createElement("figcaption");
  caption.innerHTML = "<strong></strong> <span class='small muted'></span>";
  caption.querySelector("strong").textContent = title;
  caption.querySelector("span").textContent = `now ${show(latest)} · peak ${show(peak)}`;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${values.length * 4} 40`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${title}, the last ${values.length} minutes: peak ${show(peak)}`);
  values.forEach((value, i) => {
    const bar = document.createElementNS(SVG, "rect");
    const height = peak > 0 && value ? Math.max(1, (value / peak) * 40) : 0;
    bar.setAttribute("x", i * 4);
    bar.setAttribute("y", 40 - height);
    bar.setAttribute("width", 3);
    bar.setAttribute("height", height);
    bar.setAttribute("data-value", value ?? "");
    svg.append(bar);
  });
  figure.append(caption, svg);
  return figure;
}

// A title's rules as the page shows them; a null rule is the service's setting.
function titleCells(c) {
  const series = c.series_id ? `${c.series_id} S${c.season ?? 0}E${c.episode ?? "?"}` : "";
  return [
    c.title,
    c.downloadable ? "yes" : "no",
    c.max_downloads_per_year ?? "no cap",
    c.license_days === null ? "default" : `${c.license_days} days`,
    c.playback_window_hours === null ? "default" : `${c.playback_window_hours} hours`,
    c.max_renewals ?? "default",
    series,
  ];
}

function renderTitles(catalogue) {
  $("titles").replaceChildren(...catalogue.contents.map((c) => tableRow(titleCells(c), c.id)));
}

function renderActivity(activity) {
  $("charts").replaceChildren(...Object.entries(CHARTS).map(([id, [title, value, show]]) =>
    chart(id, title, activity.minutes.map(value), show)));
}

// What changes by the minute: the charts of the last hour and the titles' rules.
async function refreshHistoryAndTitles() {
  renderActivity(await api("GET", "/api/queue/activity"));
  renderTitles(await api("GET", "/api/contents"));
}

async function refresh() {
  try {
    render(await api("GET", "/api/queue/health"));
    if (refreshes++ % 5 === 0) await refreshHistoryAndTitles();
  } catch (err) {
    showError(err.message);
  }
}

async function signIn(value) {
  token = value.trim();
  try {
    render(await api("GET", "/api/queue/health"));
    await refreshHistoryAndTitles();
  } catch (err) {
    showError(err.message);
    return;
  }
  showError("");
  localStorage.setItem("downloads.adminToken", token);
  $("signin").hidden = true;
  $("app").hidden = false;
  clearInterval(timer);
  timer = setInterval(refresh, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token").value);
  });
  if (token) signIn(token);
});
