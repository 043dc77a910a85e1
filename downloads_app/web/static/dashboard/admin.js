// The admin page: queue health every two seconds, and requeue for stalled or dead-lettered downloads.
"use strict";

const $ = (id) => document.getElementById(id);
let token = localStorage.getItem("downloads.adminToken") || "";
let timer = null;

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
  $("by-status").replaceChildren(...Object.entries(health.downloads_by_status).map(([status, count]) => {
    const cell = document.createElement("div");
    cell.dataset.status = status;
    cell.innerHTML = "<strong></strong><span></span>";
    cell.querySelector("strong").textContent = count;
    cell.querySelector("span").textContent = status;
    return cell;
  }));
  const now = Date.now() / 1000;
  $("workers").replaceChildren(...health.workers.map((w) => {
    const row = document.createElement("tr");
    for (const value of [w.host, w.pid, w.threads, `${ago(now - w.last_beat)} ago`, w.alive ? "alive" : "silent"]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    return row;
  }));
  const items = [
    ...health.stalled.map((d) => attentionItem(d.id, "stalled", `user ${d.user_id}, attempt ${d.attempts}, ${d.progress}%`)),
    ...health.dead_lettered_downloads.map((id) => attentionItem(id, "dead-lettered", "Dramatiq gave up on its message")),
  ];
  $("attention").replaceChildren(...items);
  $("calm").hidden = items.length > 0;
}

async function refresh() {
  try {
    render(await api("GET", "/api/queue/health"));
  } catch (err) {
    showError(err.message);
  }
}

async function signIn(value) {
  token = value.trim();
  try {
    render(await api("GET", "/api/queue/health"));
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
