// The control-room screen: the alerts waiting for someone, device health per building and grid,
// free parking spaces, today's cases and a live ticker. Everything arrives over server-sent events; the lists are
// fetched once on every (re)connect. No build step: plain JavaScript served by the gateway.
"use strict";

const TEXT = {
  "zh-CN": {
    title: "社区智能监测指挥大屏", offline: "连接中断，正在重连…", online: "实时",
    active_alerts: "待处置告警", no_alerts: "当前没有待处置告警", today: "今日处置",
    buildings: "楼栋设备状态", grids: "网格设备状态", ticker: "实时事件",
    spaces: "车位余量", area: "区域", free: "空闲", total: "车位",
    deliveries: "通知记录", close_dialog: "关闭", login: "登录", logout: "退出",
    your_name: "姓名", token: "操作口令", logged_in: "当前操作人：",
    critical: "紧急", major: "重要", minor: "一般", info: "提示",
    firing: "待接单", acknowledged: "已接单", on_site: "已到场", resolved: "已处置", closed: "已结案",
    acknowledge: "接单", on_site_btn: "到场", resolve: "处置完成", close: "结案", timeline: "处置记录",
    note: "处置说明（结案必填）", assignee: "处理人", level: "升级", nobody: "无人值班",
    ack_in: "接单剩余", site_in: "到场剩余", late: "已超时", opened: "新增告警",
    closed_n: "已结案", closure: "结案率", median_ack: "接单用时（中位）", median_site: "到场用时（中位）",
    name: "名称", devices: "设备", online_n: "在线", offline_n: "离线", low_battery: "低电量",
    need_login: "请先登录再操作", need_note: "结案需要填写处置说明", done: "已提交",
    members: "台设备", accepted: "已送达", pending: "待送达", attempts: "次尝试",
  },
  en: {
    title: "Community monitoring control room", offline: "Disconnected, reconnecting…", online: "Live",
    active_alerts: "Active alerts", no_alerts: "No active alerts", today: "Today",
    buildings: "Devices by building", grids: "Devices by grid", ticker: "Live events",
    spaces: "Free parking spaces", area: "Area", free: "Free", total: "Spaces",
    deliveries: "Notifications", close_dialog: "Close", login: "Log in", logout: "Log out",
    your_name: "Name", token: "Token", logged_in: "Acting as: ",
    critical: "Critical", major: "Major", minor: "Minor", info: "Info",
    firing: "Firing", acknowledged: "Acknowledged", on_site: "On site", resolved: "Resolved", closed: "Closed",
    acknowledge: "Acknowledge", on_site_btn: "On site", resolve: "Resolve", close: "Close", timeline: "Timeline",
    note: "Note (required to close)", assignee: "Assignee", level: "Level", nobody: "nobody on duty",
    ack_in: "Ack due in", site_in: "On site due in", late: "Overdue", opened: "Opened",
    closed_n: "Closed", closure: "Closure rate", median_ack: "Median to acknowledge", median_site: "Median to on site",
    name: "Name", devices: "Devices", online_n: "Online", offline_n: "Offline", low_battery: "Low battery",
    need_login: "Log in first", need_note: "Closing needs a note", done: "Done",
    members: "devices", accepted: "accepted", pending: "pending", attempts: "attempts",
  },
};
const SEVERITY = { critical: 3, major: 2, minor: 1, info: 0 };
const $ = (id) => document.getElementById(id);

let lang = localStorage.getItem("gw.lang") || "zh-CN";
let alerts = new Map();
let overview = null;
let kinds = {};
let skew = 0; // the gateway's clock minus ours
let overviewTimer = null;

const t = (key) => TEXT[lang][key] || key;
const now = () => Date.now() + skew;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}

function clock(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString(lang === "en" ? "en-GB" : "zh-CN", { hour12: false });
}

function span(ms) {
  const s = Math.max(0, Math.round(Math.abs(ms) / 1000));
  const m = Math.floor(s / 60);
  return `${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

function seconds(s) {
  if (s == null) return "—";
  return s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`;
}

function eventLabel(kind, event) {
  const k = kinds[kind];
  const e = k && k.events.find((x) => x.name === event);
  return e ? e.label[lang] : event;
}

// An alert waits for someone unless it is closed, or its condition ended by itself.
function isActive(a) {
  if (a.grouped_into) return false;
  if (a.state === "closed") return false;
  if (a.state === "resolved") {
    const step = [...a.timeline].reverse().find((s) => s.state === "resolved");
    return !!step && step.by !== "gridwatch";
  }
  return true;
}

// When the alert must next be taken (acknowledged, or someone on site), or null.
function due(a) {
  const passed = (prefix) => a.timeline.filter((s) => s.by === "gridwatch" && (s.note || "").startsWith(prefix)).length;
  if (a.state === "firing" && a.ack_deadline_ms) {
    return a.started_at + a.ack_deadline_ms * (passed("not acknowledged") + 1);
  }
  if (a.state === "acknowledged" && a.on_site_deadline_ms) {
    const acked = [...a.timeline].reverse().find((s) => s.state === "acknowledged");
    return (acked ? acked.at_ms : a.started_at) + a.on_site_deadline_ms * (passed("nobody on site") + 1);
  }
  return null;
}

function toast(text) {
  const box = $("toast");
  box.textContent = text;
  box.classList.add("show");
  setTimeout(() => box.classList.remove("show"), 3000);
}

async function act(a, action, note) {
  const by = localStorage.getItem("gw.name");
  const token = localStorage.getItem("gw.token");
  if (!by || !token) return toast(t("need_login"));
  if (action === "close" && !note) return toast(t("need_note"));
  const resp = await fetch(`/api/v1/alerts/${encodeURIComponent(a.alert_id)}/${action}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(note ? { by, note } : { by }),
  });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) return toast(body.error || `HTTP ${resp.status}`);
  alerts.set(body.alert_id, body);
  renderAlerts();
  toast(t("done"));
}

function alertCard(a) {
  const note = el("input", { class: "note", placeholder: t("note") });
  const button = (action, label) =>
    el("button", { type: "button", "data-action": action, onclick: () => act(a, action, note.value.trim()) }, t(label));
  const actions = el("div", { class: "actions" });
  if (a.state === "firing") actions.append(button("acknowledge", "acknowledge"));
  if (a.state === "firing" || a.state === "acknowledged") actions.append(button("on_site", "on_site_btn"));
  if (a.state !== "resolved") actions.append(button("resolve", "resolve"));
  actions.append(note, button("close", "close"));
  actions.append(el("button", { type: "button", "data-action": "timeline", onclick: () => showTimeline(a) }, t("timeline")));
  const d = a.device;
  const who = a.assignee ? `${a.assignee.name}${a.assignee.phone ? " " + a.assignee.phone : ""}` : t("nobody");
  const meta = el("div", { class: "meta" },
    el("span", {}, `${d.building_name} ${d.location}`),
    el("span", {}, d.grid_name),
    el("span", {}, `${d.id} (${kinds[d.kind] ? kinds[d.kind].label[lang] : d.kind})`),
    el("span", {}, `${t("assignee")}: ${who}`),
    el("span", {}, `${t("level")} ${a.escalation_level}`),
    el("span", {}, clock(a.started_at)),
  );
  if (a.members && a.members.length) meta.append(el("span", {}, `${a.members.length} ${t("members")}`));
  return el("article", {
    class: `alert sev-${a.severity} state-${a.state}`, "data-alert-id": a.alert_id, "data-state": a.state,
  },
    el("div", { class: "head" },
      el("span", { class: `badge sev-${a.severity}` }, `${t(a.severity)} · ${t(a.state)}`),
      el("span", { class: "countdown", "data-due": due(a) ?? "" })),
    el("div", { class: "msg" }, a.messages[lang] || a.message),
    meta, actions);
}

function renderAlerts() {
  const active = [...alerts.values()].filter(isActive)
    .sort((x, y) => (SEVERITY[y.severity] - SEVERITY[x.severity]) || (x.started_at - y.started_at));
  const box = $("alerts");
  // Keep what someone is typing in a note when the list is redrawn.
  const typing = document.activeElement && document.activeElement.classList.contains("note")
    ? document.activeElement.closest("article")?.dataset.alertId : null;
  const notes = new Map([...box.querySelectorAll("article")].map((c) => [c.dataset.alertId, c.querySelector(".note").value]));
  box.replaceChildren(...active.map(alertCard));
  for (const card of box.querySelectorAll("article")) {
    const kept = notes.get(card.dataset.alertId);
    if (kept) card.querySelector(".note").value = kept;
    if (card.dataset.alertId === typing) card.querySelector(".note").focus();
  }
  $("alert-count").textContent = active.length;
  $("no-alerts").hidden = active.length > 0;
  tick();
}

function healthTable(rows) {
  const head = el("tr", {}, el("th", {}, t("name")), el("th", {}, t("devices")), el("th", {}, t("online_n")),
    el("th", {}, t("offline_n")), el("th", {}, t("low_battery")));
  return [head, ...rows.map((h) => el("tr", { "data-id": h.id },
    el("td", {}, h.name), el("td", {}, h.devices), el("td", {}, h.devices - h.offline),
    el("td", { class: h.offline ? "bad" : "" }, h.offline),
    el("td", { class: h.low_battery ? "warn" : "" }, h.low_battery)))];
}

function spacesTable(rows) {
  const head = el("tr", {}, el("th", {}, t("area")), el("th", {}, t("free")), el("th", {}, t("total")));
  return [head, ...rows.map((p) => el("tr", { "data-id": p.id },
    el("td", {}, p.name), el("td", { class: p.free ? "" : "bad" }, p.free), el("td", {}, p.total)))];
}

function renderOverview() {
  if (!overview) return;
  $("community").textContent = overview.community;
  $("buildings").replaceChildren(...healthTable(overview.buildings));
  $("grids").replaceChildren(...healthTable(overview.grids));
  $("spaces-pane").hidden = overview.spaces.length === 0;
  $("spaces").replaceChildren(...spacesTable(overview.spaces));
  const d = overview.today;
  const rate = d.closure_rate == null ? "—" : `${Math.round(d.closure_rate * 1000) / 10}%`;
  $("today").replaceChildren(
    el("dt", {}, t("opened")), el("dd", { id: "today-opened" }, d.opened),
    el("dt", {}, t("closed_n")), el("dd", {}, d.closed),
    el("dt", {}, t("closure")), el("dd", {}, rate),
    el("dt", {}, t("median_ack")), el("dd", {}, seconds(d.median_ack_s)),
    el("dt", {}, t("median_site")), el("dd", {}, seconds(d.median_on_site_s)));
}

function addTicker(item) {
  const line = el("li", {}, el("time", {}, clock(item.at_ms)),
    `${item.building_name} ${item.location} · ${eventLabel(item.kind, item.event)}`);
  const list = $("ticker");
  list.prepend(line);
  while (list.children.length > 30) list.lastChild.remove();
}

async function showTimeline(a) {
  const resp = await fetch(`/api/v1/alerts/${encodeURIComponent(a.alert_id)}`);
  const full = resp.ok ? await resp.json() : a;
  $("timeline-title").textContent = full.messages[lang] || full.message;
  $("timeline-steps").replaceChildren(...full.timeline.map((s) =>
    el("li", {}, `${clock(s.at_ms)} ${t(s.state)} · ${s.by}${s.note ? " · " + s.note : ""}`)));
  $("timeline-deliveries").replaceChildren(...(full.deliveries || []).map((d) =>
    el("li", {}, `${d.worker} · ${d.channel} · ${d.accepted_at ? t("accepted") + " " + clock(d.accepted_at) : t("pending")} · ${d.attempts_total} ${t("attempts")}`)));
  $("timeline").showModal();
}

function tick() {
  $("clock").textContent = clock(now());
  for (const c of document.querySelectorAll(".countdown")) {
    const due = Number(c.dataset.due);
    if (!due) { c.textContent = ""; continue; }
    const left = due - now();
    const acked = c.closest("article").dataset.state === "acknowledged";
    c.textContent = left >= 0 ? `${t(acked ? "site_in" : "ack_in")} ${span(left)}` : `${t("late")} ${span(left)}`;
    c.classList.toggle("late", left < 0);
  }
}

async function load() {
  const [a, o, k] = await Promise.all([
    fetch("/api/v1/alerts").then((r) => r.json()),
    fetch("/api/v1/overview").then((r) => r.json()),
    fetch("/api/v1/kinds").then((r) => r.json()),
  ]);
  alerts = new Map(a.alerts.map((x) => [x.alert_id, x]));
  overview = o;
  skew = o.now_ms - Date.now();
  kinds = Object.fromEntries(k.kinds.map((x) => [x.name, x]));
  renderOverview();
  renderAlerts();
}

// Health and today's figures follow the alerts: fetched again shortly after they change.
function overviewSoon() {
  clearTimeout(overviewTimer);
  overviewTimer = setTimeout(async () => {
    overview = await fetch("/api/v1/overview").then((r) => r.json());
    renderOverview();
  }, 800);
}

function setLive(on) {
  const live = $("live");
  live.className = on ? "on" : "off";
  live.dataset.t = on ? "online" : "offline";
  live.textContent = t(live.dataset.t);
}

function connect() {
  const source = new EventSource("/api/v1/events");
  source.onopen = () => { setLive(true); load().catch(() => setLive(false)); };
  // The browser reconnects by itself; the lists are fetched again when it does.
  source.onerror = () => setLive(false);
  source.addEventListener("alert", (e) => {
    const a = JSON.parse(e.data);
    alerts.set(a.alert_id, a);
    renderAlerts();
    overviewSoon();
  });
  source.addEventListener("ticker", (e) => addTicker(JSON.parse(e.data)));
  source.addEventListener("resync", () => load());
}

function applyLanguage() {
  document.documentElement.lang = lang;
  for (const e of document.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
  for (const e of document.querySelectorAll("[data-tp]")) e.placeholder = t(e.dataset.tp);
  $("lang").textContent = lang === "en" ? "中文" : "English";
  showLogin();
  renderOverview();
  renderAlerts();
}

function showLogin() {
  const name = localStorage.getItem("gw.name");
  const inside = !!(name && localStorage.getItem("gw.token"));
  $("login").classList.toggle("in", inside);
  $("who").textContent = inside ? `${t("logged_in")}${name}` : "";
  $("logout").hidden = !inside;
}

$("lang").addEventListener("click", () => {
  lang = lang === "en" ? "zh-CN" : "en";
  localStorage.setItem("gw.lang", lang);
  applyLanguage();
});
$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("login-name").value.trim();
  const token = $("login-token").value;
  if (!name || !token) return;
  localStorage.setItem("gw.name", name);
  localStorage.setItem("gw.token", token);
  $("login-token").value = "";
  showLogin();
});
$("logout").addEventListener("click", () => {
  localStorage.removeItem("gw.token");
  showLogin();
});
$("timeline-close").addEventListener("click", () => $("timeline").close());
setInterval(tick, 1000);
// Free spaces change without an alert: fetched again every 15 s as well.
setInterval(overviewSoon, 15000);
applyLanguage();
connect();
