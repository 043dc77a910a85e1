// The dashboard: start, watch (Server-Sent Events) and control the signed-in user's downloads,
// their devices and licences.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  token: localStorage.getItem("downloads.token") || "", titles: {}, rows: new Map(), devices: new Map(),
  events: null, notice: null,
};

function humanBytes(n) {
  n = Number(n);
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(n >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

function humanSeconds(s) {
  if (!isFinite(s)) return "";
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s}s left`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s left`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m left`;
}

// "in 2 days", "in 5 hours", "in 3 minutes": how long until `when` (an ISO time).
function timeUntil(when) {
  const seconds = (Date.parse(when) - Date.now()) / 1000;
  const [count, unit] = seconds >= 86400 ? [seconds / 86400, "day"] : seconds >= 3600 ? [seconds / 3600, "hour"]
    : [Math.max(seconds, 0) / 60, "minute"];
  const n = Math.max(1, Math.round(count));
  return `in ${n} ${unit}${n === 1 ? "" : "s"}`;
}

function show(id, message) {
  const box = $(id);
  box.textContent = message || "";
  box.hidden = !message;
}

const showError = (message) => show("error", message);
const showNotice = (message) => show("notice", message);

// A notice about one download ("You already have this title … (paused)") goes once that
// download's state is no longer the one it told of.
function noticeAbout(download, message) {
  state.notice = message ? { id: download.id, status: download.status } : null;
  showNotice(message);
}

function forgetStaleNotice(id, status) {
  if (state.notice && state.notice.id === id && state.notice.status !== status) noticeAbout(null, "");
}

async function api(method, path, body) {
  const options = { method, headers: { Authorization: `Bearer ${state.token}` } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error("The service cannot be reached. Check your connection.");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401) signOut();
    throw new Error(data.message || `Request failed (${response.status})`);
  }
  return data;
}

// ------------------------------------------------------------------ rendering

const ACTIONS = {
  pause: ["pending", "downloading"],
  resume: ["paused"],
  cancel: ["pending", "downloading", "paused"],
  retry: ["failed", "cancelled"],
  play: ["completed"],
  renew: ["completed", "expired"],
  watched: ["completed"],
  delete: ["pending", "downloading", "paused", "completed", "failed", "cancelled", "expired"],
};

// The licence line of a download: when it runs out, or that it did and why the file is gone.
function licenceText(d) {
  if (d.status === "expired") {
    const on = d.license_expires_at ? ` on ${new Date(d.license_expires_at).toLocaleString()}` : "";
    return [`Licence expired${on}: the file is gone. Renew to download it again.`, true];
  }
  if (d.status !== "completed" || !d.license_expires_at) return ["", false];
  const soon = Date.parse(d.license_expires_at) - Date.now() < 86400 * 1000;
  const played = d.played_at ? " (playing started)" : "";
  return [`Licence expires ${timeUntil(d.license_expires_at)}${played}`, soon];
}

function rowFor(download) {
  let row = state.rows.get(download.id);
  if (!row) {
    const node = $("download-template").content.firstElementChild.cloneNode(true);
    node.dataset.id = download.id;
    node.querySelectorAll("button[data-action]").forEach((button) =>
      button.addEventListener("click", () => act(download.id, button.dataset.action)));
    row = { node, samples: [], data: {} };
    state.rows.set(download.id, row);
  }
  return row;
}

function render(download) {
  const row = rowFor(download);
  Object.assign(row.data, download);
  const d = row.data;
  const now = performance.now();
  const bytes = Number(d.downloaded_bytes);
  if (d.status === "downloading") {
    row.samples.push([now, bytes]);
    row.samples = row.samples.filter(([t]) => now - t < 5000);
  } else {
    row.samples = [];
  }
  const node = row.node;
  node.className = `download ${d.status}`;
  node.querySelector(".title").textContent =
    `${state.titles[d.content_id] || d.content_id || "…"}${d.quality ? ` · ${d.quality}` : ""}`;
  const badge = node.querySelector(".badge");
  badge.textContent = d.status;
  badge.className = `badge ${d.status}`;
  const meter = node.querySelector(".meter");
  meter.setAttribute("aria-valuenow", d.progress);
  meter.setAttribute("aria-label", `progress of ${node.querySelector(".title").textContent}`);
  meter.querySelector(".fill").style.width = `${d.progress}%`;
  node.querySelector(".percent").textContent = `${d.progress}%`;
  node.querySelector(".size").textContent = `${humanBytes(bytes)} of ${humanBytes(d.file_size_bytes)}`;
  let speed = "", eta = "";
  if (row.samples.length > 1) {
    const [t0, b0] = row.samples[0];
    const rate = (bytes - b0) / ((now - t0) / 1000);
    if (rate > 0) {
      speed = `${humanBytes(rate)}/s`;
      eta = humanSeconds((Number(d.file_size_bytes) - bytes) / rate);
    }
  }
  node.querySelector(".speed").textContent = speed;
  node.querySelector(".eta").textContent = eta;
  const device = d.device_id ? state.devices.get(d.device_id) : null;
  node.querySelector(".device").textContent = d.device_id ? `on ${device ? device.name : "a removed device"}` : "";
  const [licence, urgent] = licenceText(d);
  const licenceNode = node.querySelector(".licence");
  licenceNode.textContent = licence;
  licenceNode.classList.toggle("soon", urgent);
  const failure = node.querySelector(".failure");
  failure.textContent = d.error || "";
  failure.hidden = !d.error;
  node.querySelectorAll("button[data-action]").forEach((button) => {
    button.hidden = !ACTIONS[button.dataset.action].includes(d.status);
  });
  // A real transfer's file (it has a SHA-256); the stream cookie authenticates the link.
  const save = node.querySelector("a.save");
  save.hidden = !(d.status === "completed" && d.sha256);
  if (save.hidden) save.removeAttribute("href");
  else save.href = `/api/downloads/${d.id}/file`;
  const filter = $("filter").value;
  node.hidden = Boolean(filter) && d.status !== filter;
  if (!node.isConnected) $("downloads").prepend(node);
  forgetStaleNotice(d.id, d.status);
  updateEmpty();
}

function remove(id) {
  forgetStaleNotice(id, "deleted");
  const row = state.rows.get(id);
  if (row) row.node.remove();
  state.rows.delete(id);
  updateEmpty();
}

function updateEmpty() {
  const visible = [...state.rows.values()].some((row) => !row.node.hidden);
  $("empty").hidden = visible;
}

async function refreshStorage() {
  const s = await api("GET", "/api/storage");
  const used = Number(s.used_bytes), quota = Number(s.quota_bytes);
  const percent = quota ? Math.min(100, (used / quota) * 100) : 0;
  $("quota-text").textContent = `${humanBytes(used)} used of ${humanBytes(quota)} · ${humanBytes(s.free_bytes)} free`;
  const bar = $("quota-bar");
  bar.style.width = `${percent}%`;
  bar.classList.toggle("high", percent > 85);
  bar.parentElement.setAttribute("aria-valuenow", percent.toFixed(1));
}

async function refreshDownloads() {
  const filter = $("filter").value;
  const query = new URLSearchParams({ page_size: "100" });
  if (filter) query.set("status", filter);
  const data = await api("GET", `/api/downloads?${query}`);
  const seen = new Set(data.downloads.map((d) => d.id));
  for (const id of [...state.rows.keys()]) if (!seen.has(id)) remove(id);
  $("downloads").replaceChildren();
  for (const download of data.downloads.reverse()) render(download);
  updateEmpty();
}

async function loadTitles() {
  const data = await api("GET", "/api/contents");
  const select = $("content");
  select.replaceChildren();
  for (const content of data.contents) {
    state.titles[content.id] = content.title;
    const option = new Option(content.title, content.id);
    option.dataset.sizes = JSON.stringify(content.sizes);
    option.dataset.qualities = JSON.stringify(content.qualities); // lowest to highest
    select.add(option);
  }
  fillQualities();
}

function fillQualities() {
  const option = $("content").selectedOptions[0];
  const quality = $("quality");
  quality.replaceChildren();
  if (!option) return;
  // In the title's order (lowest to highest), not the sizes' keys (sorted as text: 1080p first).
  const sizes = JSON.parse(option.dataset.sizes);
  const qualities = JSON.parse(option.dataset.qualities);
  for (const name of qualities) {
    quality.add(new Option(`${name} · ${humanBytes(sizes[name])}`, name));
  }
  quality.value = qualities.includes("720p") ? "720p" : qualities[qualities.length - 1];
}

// ------------------------------------------------------------------ actions

async function guarded(work) {
  try {
    showError("");
    await work();
  } catch (err) {
    showError(err.message);
  }
}

function act(id, action) {
  return guarded(async () => {
    if (action === "delete") {
      const title = state.rows.get(id)?.node.querySelector(".title").textContent || "this download";
      if (!confirm(`Delete ${title}? Its file is removed and its storage freed.`)) return;
      await api("DELETE", `/api/downloads/${id}`);
      remove(id);
    } else if (action === "watched") {
      const data = await api("POST", `/api/downloads/${id}/watched`);
      if (data.next_download) {
        remove(id);
        render(data.next_download);
      } else {
        render(data.download);
      }
      showNotice(data.message);
    } else {
      const data = await api("POST", `/api/downloads/${id}/${action}`);
      render(data.download);
    }
    await Promise.all([refreshStorage(), refreshDevices()]);
  });
}

// ------------------------------------------------------------------ devices and settings

async function refreshDevices() {
  const data = await api("GET", "/api/devices");
  state.devices = new Map(data.devices.map((device) => [device.id, device]));
  const list = $("devices");
  list.replaceChildren();
  for (const device of data.devices) {
    const item = document.createElement("li");
    const label = document.createElement("span");
    const count = device.download_count;
    label.textContent = `${device.name} · ${device.platform} · ${count} download${count === 1 ? "" : "s"}, ${humanBytes(device.used_bytes)}`;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "danger";
    button.textContent = "Remove";
    button.addEventListener("click", () => removeDevice(device));
    item.append(label, button);
    list.append(item);
  }
  const select = $("device");
  const chosen = select.value;
  select.replaceChildren();
  if (!data.devices.length) select.add(new Option("Default device", ""));
  for (const device of data.devices) select.add(new Option(device.name, device.id));
  if ([...select.options].some((option) => option.value === chosen)) select.value = chosen;
  for (const row of state.rows.values()) render(row.data);  // device names on the cards
}

function removeDevice(device) {
  return guarded(async () => {
    const count = device.download_count;
    if (!confirm(`Remove ${device.name}? Its ${count} download${count === 1 ? " is" : "s are"} deleted and the storage freed.`)) return;
    const data = await api("DELETE", `/api/devices/${device.id}`);
    showNotice(`Removed ${device.name}: deleted ${data.deleted_count} downloads, freed ${humanBytes(data.freed_bytes)}`);
    await Promise.all([refreshDevices(), refreshDownloads(), refreshStorage()]);
  });
}

async function addDevice(event) {
  event.preventDefault();
  await guarded(async () => {
    const data = await api("POST", "/api/devices", { name: $("device-name").value, platform: $("device-platform").value });
    $("device-form").reset();
    await refreshDevices();
    $("device").value = data.device.id;
  });
}

async function loadAccount() {
  $("smart").checked = (await api("GET", "/api/me")).smart_downloads;
}

function setSmart() {
  return guarded(async () => {
    $("smart").checked = (await api("PATCH", "/api/me", { smart_downloads: $("smart").checked })).smart_downloads;
  });
}

function cleanUp() {
  return guarded(async () => {
    if (!confirm("Delete all your downloads? Their files are removed and your storage freed.")) return;
    const data = await api("POST", "/api/downloads/cleanup");
    for (const id of [...state.rows.keys()]) remove(id);
    const count = data.deleted_count;
    showNotice(`Deleted ${count} download${count === 1 ? "" : "s"}, freed ${humanBytes(data.freed_bytes)}`);
    await refreshStorage();
  });
}

async function startDownload(event) {
  event.preventDefault();
  await guarded(async () => {
    const body = { content_id: $("content").value, quality: $("quality").value };
    if ($("device").value) body.device_id = $("device").value;
    const data = await api("POST", "/api/downloads/start", body);
    render(data.download);
    // A title and quality already held comes back instead of a new download: say so.
    noticeAbout(data.download, data.message === "Download started" ? "" : data.message);
    await refreshStorage();
  });
}

// ------------------------------------------------------------------ live updates

async function connectEvents() {
  if (state.events) state.events.close();
  // EventSource cannot send an Authorization header: the server sets an HttpOnly cookie.
  await api("POST", "/api/session");
  const source = new EventSource("/api/downloads/events");
  state.events = source;
  const onEvent = (event) => {
    const data = JSON.parse(event.data);
    if (data.status === "deleted") {
      remove(data.id);
      refreshStorage().catch(() => {});
      return;
    }
    render(data);
    if (event.type === "status") Promise.all([refreshStorage(), refreshDevices()]).catch(() => {});
    if (event.type === "status" && ["completed", "expired"].includes(data.status)) {
      // Events carry progress only: fetch the record's sha256 and licence.
      api("GET", `/api/downloads/${data.id}`).then((body) => render(body.download)).catch(() => {});
    }
  };
  source.addEventListener("progress", onEvent);
  source.addEventListener("status", onEvent);
  source.addEventListener("open", () => $("live").className = "live on");
  source.addEventListener("error", () => {
    $("live").className = "live off";
    if (source.readyState === EventSource.CLOSED) {  // e.g. the token expired: sign in again
      setTimeout(() => guarded(connectEvents), 5000);
    }
  });
}

// ------------------------------------------------------------------ session

function tokenSubject(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub;
  } catch (err) {
    return null;
  }
}

async function signIn(token) {
  state.token = token.trim();
  const subject = tokenSubject(state.token);
  if (!subject) {
    showError("That does not look like a token: paste the whole JWT.");
    return;
  }
  await guarded(async () => {
    await loadTitles();
    localStorage.setItem("downloads.token", state.token);
    $("user").textContent = subject;
    $("signin").hidden = true;
    $("app").hidden = false;
    await Promise.all([refreshDevices(), loadAccount()]);
    await Promise.all([refreshStorage(), refreshDownloads(), connectEvents()]);
  });
}

function signOut() {
  localStorage.removeItem("downloads.token");
  if (state.events) state.events.close();
  state.events = null;
  state.rows.clear();
  $("downloads").replaceChildren();
  $("app").hidden = true;
  $("signin").hidden = false;
  fetch("/api/session", { method: "DELETE" }).catch(() => {});
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token").value);
  });
  $("signout").addEventListener("click", () => { signOut(); state.token = ""; });
  $("start-form").addEventListener("submit", startDownload);
  $("content").addEventListener("change", fillQualities);
  $("filter").addEventListener("change", () => guarded(refreshDownloads));
  $("cleanup").addEventListener("click", cleanUp);
  $("device-form").addEventListener("submit", addDevice);
  $("smart").addEventListener("change", setSmart);
  // "Licence expires in 2 days" moves on while the page stays open.
  setInterval(() => { for (const row of state.rows.values()) render(row.data); }, 30000);
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) history.replaceState(null, "", location.pathname);
  if (fromLink || state.token) signIn(fromLink || state.token);
});
