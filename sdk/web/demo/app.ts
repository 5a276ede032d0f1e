/**
 * The Missive web chat page: login (dev-minted or pasted token), conversation
 * list with unread badges, message view with history scroll-back, composer,
 * read receipts and presence. Built on @missive/sdk; bundled by build.mjs.
 */
import {
  MissiveClient,
  directConvId,
  webSocketTransport,
  webTransportAvailable,
  webTransportTransport,
  type ConversationState,
  type Message,
  type TransportFactory,
} from "../src/index.ts";

interface Info {
  dev: boolean;
  ws: string;
  webtransport: string | null;
  certHash: string | null;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const SESSION_KEY = "missive-session";

let info: Info = { dev: false, ws: "/ws", webtransport: null, certHash: null };
let client: MissiveClient | undefined;
let me = "";
let current: string | undefined; // open conversation id
const online = new Map<string, boolean>();

const palette = ["#4f46e5", "#0891b2", "#db2777", "#059669", "#d97706", "#7c3aed", "#dc2626", "#2563eb"];
function avatar(el: HTMLElement, name: string) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  el.textContent = name.slice(0, 1) || "?";
  el.style.background = palette[h % palette.length];
  el.classList.toggle("online", online.get(name) === true);
}

const peerOf = (convId: string) => {
  const [, a, b] = convId.split(":");
  return a === me ? b : a;
};

function textOf(m: Message | undefined): string {
  const b = m?.content?.body;
  if (!b) return "";
  if (b.case === "text") return b.value.text;
  return `[${b.case ?? "unsupported message"}]`;
}

function timeOf(ms: bigint | undefined): string {
  if (!ms) return "";
  const d = new Date(Number(ms));
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : d.toLocaleDateString();
}

// ------------------------------------------------------------------ login

async function start() {
  try {
    info = await (await fetch("/api/info")).json();
  } catch {
    /* keep defaults */
  }
  const saved = localStorage.getItem(SESSION_KEY);
  if (saved) {
    const s = JSON.parse(saved) as { user: string; token: string };
    return enter(s.user, s.token);
  }
  showLogin();
}

function showLogin(error = "") {
  $("app").hidden = true;
  $("login").hidden = false;
  $("dev-note").hidden = !info.dev;
  $("token-row").hidden = info.dev;
  $("login-error").textContent = error;
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const user = ($("login-user") as HTMLInputElement).value.trim();
  let token = ($("login-token") as HTMLTextAreaElement).value.trim();
  try {
    if (!token && info.dev) {
      const r = await fetch(`/api/dev-token?user=${encodeURIComponent(user)}`);
      if (!r.ok) throw new Error(`could not mint a development token (${r.status})`);
      token = (await r.json()).token;
    }
    if (!token) throw new Error("a token is required");
    localStorage.setItem(SESSION_KEY, JSON.stringify({ user, token }));
    enter(user, token);
  } catch (err) {
    $("login-error").textContent = String((err as Error).message ?? err);
  }
});

$("logout").addEventListener("click", () => {
  client?.stop();
  client = undefined;
  localStorage.removeItem(SESSION_KEY);
  current = undefined;
  showLogin();
});

function deviceId(user: string): string {
  const k = `missive-device:${user}`;
  let d = localStorage.getItem(k);
  if (!d) {
    d = `web-${Math.random().toString(36).slice(2, 10)}`;
    localStorage.setItem(k, d);
  }
  return d;
}

function enter(user: string, token: string) {
  me = user;
  $("login").hidden = true;
  $("app").hidden = false;
  $("me-name").textContent = user;
  avatar($("me-avatar"), user);
  const transports: TransportFactory[] = [];
  if (info.webtransport && webTransportAvailable()) {
    transports.push(webTransportTransport(info.webtransport, info.certHash ?? undefined));
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  transports.push(webSocketTransport(`${scheme}://${location.host}${info.ws || "/ws"}`));
  client = new MissiveClient({ transports, token, deviceId: deviceId(user), store: localStorage });
  (window as unknown as { missive: unknown }).missive = { client };
  client.on("state", (s, detail) => {
    const el = $("conn-state");
    el.textContent = s === "online" ? "online" : s === "connecting" ? "connecting…" : s === "ended" ? `signed out: ${detail}` : "offline — reconnecting";
    el.className = `conn ${s}`;
    const via = client!.transport;
    const tr = $("conn-transport");
    tr.textContent = s === "online" && via ? (via === "webtransport" ? "WebTransport" : "WebSocket") : "";
    tr.dataset.kind = s === "online" && via ? via : "";
    if (s === "online") {
      const peers = client!.conversations().map((c) => peerOf(c.convId));
      if (peers.length) void client!.subscribePresence(peers).then(applyPresence);
    }
    if (s === "ended") {
      localStorage.removeItem(SESSION_KEY);
    }
  });
  client.on("conversation", () => renderList());
  client.on("message", (m) => {
    renderList();
    if (m.convId === current) {
      renderMessages(true);
      markReadIfVisible();
    }
  });
  client.on("receipt", (r) => {
    if (r.convId === current) renderMessages(false);
  });
  client.on("presence", (p) => applyPresence([p]));
  client.start();
  renderList();
}

function applyPresence(ps: { userId: string; online: boolean }[]) {
  for (const p of ps) online.set(p.userId, p.online);
  renderList();
  renderHeader();
}

// ------------------------------------------------------------------ conversation list

$("new-chat").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("new-chat-user") as HTMLInputElement;
  const peer = input.value.trim();
  if (!peer || peer === me) return;
  input.value = "";
  open(directConvId(me, peer));
});

function renderList() {
  if (!client) return;
  const list = $("conv-list");
  const convs = client.conversations();
  if (current && !convs.some((c) => c.convId === current)) {
    convs.unshift({ convId: current, unread: 0n, maxSeq: 0n } as ConversationState);
  }
  list.replaceChildren(
    ...convs.map((c) => {
      const peer = peerOf(c.convId);
      const li = document.createElement("li");
      li.className = `conv${c.convId === current ? " active" : ""}`;
      li.dataset.testid = `conv-${peer}`;
      const av = document.createElement("span");
      av.className = "avatar";
      avatar(av, peer);
      const main = document.createElement("div");
      main.className = "conv-main";
      const unread = c.convId === current ? 0n : c.unread;
      main.innerHTML = `<div class="conv-top"><span class="conv-name"></span><span class="conv-time"></span></div>
        <div class="conv-bottom"><span class="conv-preview"></span>${unread > 0n ? `<span class="badge" data-testid="unread-${peer}">${unread}</span>` : ""}</div>`;
      main.querySelector(".conv-name")!.textContent = peer;
      main.querySelector(".conv-time")!.textContent = timeOf(c.lastMessage?.serverTimeMs);
      const last = c.lastMessage;
      main.querySelector(".conv-preview")!.textContent = last ? `${last.sender === me ? "You: " : ""}${textOf(last)}` : "No messages yet";
      li.append(av, main);
      li.addEventListener("click", () => open(c.convId));
      return li;
    }),
  );
}

// ------------------------------------------------------------------ message view

async function open(convId: string) {
  current = convId;
  ($("text") as HTMLTextAreaElement).disabled = false;
  ($("send") as HTMLButtonElement).disabled = false;
  renderHeader();
  renderList();
  renderMessages(true);
  const peer = peerOf(convId);
  if (client && !online.has(peer)) void client.subscribePresence([peer]).then(applyPresence).catch(() => {});
  const held = client?.messages(convId) ?? [];
  if (client && held.length < 20 && (held.length === 0 || held[0].seq > 1n)) {
    try {
      await client.history(convId);
    } catch {
      /* offline: shown once connected */
    }
    if (current === convId) renderMessages(true);
  }
  markReadIfVisible();
  ($("text") as HTMLTextAreaElement).focus();
}

function renderHeader() {
  if (!current) return;
  const peer = peerOf(current);
  $("peer-name").textContent = peer;
  avatar($("peer-avatar"), peer);
  const st = $("peer-status");
  const o = online.get(peer);
  st.textContent = o === undefined ? "" : o ? "online" : "offline";
  st.className = `presence${o ? " online" : ""}`;
}

let olderLoading = false;
async function loadOlder() {
  if (!client || !current || olderLoading) return;
  olderLoading = true;
  const box = $("messages");
  const before = box.scrollHeight - box.scrollTop;
  try {
    await client.history(current);
  } finally {
    olderLoading = false;
  }
  renderMessages(false);
  box.scrollTop = box.scrollHeight - before;
}

$("messages").addEventListener("scroll", () => {
  if ($("messages").scrollTop < 40) void loadOlder();
});

function renderMessages(stickToBottom: boolean) {
  const box = $("messages");
  if (!client || !current) return;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  const state = client.conversation(current);
  const peerRead = state?.peerReadSeq ?? 0n;
  const msgs = client.messages(current);
  const nodes: HTMLElement[] = [];
  if (msgs.length && msgs[0].seq > 1n) {
    const b = document.createElement("button");
    b.className = "older";
    b.textContent = "Load older messages";
    b.dataset.testid = "load-older";
    b.addEventListener("click", () => void loadOlder());
    nodes.push(b);
  }
  let lastDay = "";
  for (const m of msgs) {
    const day = new Date(Number(m.serverTimeMs)).toDateString();
    if (day !== lastDay) {
      lastDay = day;
      const d = document.createElement("div");
      d.className = "day";
      d.textContent = day === new Date().toDateString() ? "Today" : day;
      nodes.push(d);
    }
    const mine = m.sender === me;
    const el = document.createElement("div");
    el.className = `msg ${mine ? "mine" : "theirs"}`;
    el.dataset.testid = "message";
    el.dataset.seq = String(m.seq);
    el.textContent = textOf(m);
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = timeOf(m.serverTimeMs) + (mine ? (m.seq <= peerRead ? " · Read ✓✓" : " · Sent ✓") : "");
    if (mine) meta.dataset.testid = m.seq <= peerRead ? "receipt-read" : "receipt-sent";
    el.append(meta);
    nodes.push(el);
  }
  for (const p of client.pending(current)) {
    const el = document.createElement("div");
    el.className = "msg mine pending";
    el.dataset.testid = "pending";
    el.textContent = p.content.body.case === "text" ? p.content.body.value.text : "";
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = "Sending…";
    el.append(meta);
    nodes.push(el);
  }
  if (!nodes.length) {
    const e = document.createElement("div");
    e.className = "empty";
    e.textContent = "Say hello 👋";
    nodes.push(e);
  }
  box.replaceChildren(...nodes);
  if (stickToBottom || atBottom) box.scrollTop = box.scrollHeight;
}

function markReadIfVisible() {
  if (!client || !current || document.visibilityState !== "visible" || client.state !== "online") return;
  const st = client.conversation(current);
  const msgs = client.messages(current);
  const top = msgs.length ? msgs[msgs.length - 1].seq : 0n;
  const upTo = st && st.maxSeq > top ? st.maxSeq : top;
  if (upTo > 0n && (!st || st.readSeq < upTo || st.unread > 0n)) {
    client.markRead(current, upTo).then(() => renderList(), () => {});
  }
}
document.addEventListener("visibilitychange", markReadIfVisible);

// ------------------------------------------------------------------ composer

async function send() {
  const ta = $("text") as HTMLTextAreaElement;
  const text = ta.value.trim();
  if (!text || !client || !current) return;
  ta.value = "";
  const conv = current;
  const p = client.sendText(conv, text);
  renderMessages(true);
  try {
    await p; // the acknowledged message arrives as a `message` event
  } catch (err) {
    $("conn-state").textContent = `not sent: ${(err as Error).message}`;
  }
  if (current === conv) renderMessages(true);
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  void send();
});
$("text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    void send();
  }
});

void start();
