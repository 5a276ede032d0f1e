/**
 * The Missive web chat page: login (dev-minted or pasted token), conversation
 * list with unread badges, message view with history scroll-back, composer,
 * read and delivered ticks and presence; the message lifecycle (spec 18):
 * reply/quote, recall, edit, delete for me, reactions, typing indicators,
 * images and files (sent by URL). Built on @missive/sdk; bundled by build.mjs.
 *
 * Every message action is a labelled button (keyboard: Tab to a message's
 * actions, Enter to use one; Escape closes the picker and cancels a reply or
 * an edit). Media URLs are shown only when they are http(s).
 */
import {
  MissiveClient,
  MissiveError,
  TypingNotifier,
  TypingTracker,
  directConvId,
  tickOf,
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
const typingNow = new TypingTracker();
let typingTimer: ReturnType<typeof setTimeout> | undefined;
let notifier: TypingNotifier | undefined;
let notifierConv: string | undefined;
/** Composer mode: replying to a message, or editing one of mine. */
let replyTo: Message | undefined;
let editing: Message | undefined;
/** The message whose reaction picker is open (seq), if any. */
let pickerFor: bigint | undefined;
const REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🎉"];

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
  if (m?.recalled) return `${m.recalled.by === me ? "You" : m.recalled.by} recalled a message`;
  if (m?.deleted) return "Message deleted";
  const b = m?.content?.body;
  if (!b) return m?.flags?.noHistory ? "Message not kept in history" : ""; // [MF-2] placeholder
  if (b.case === "text") return b.value.text;
  if (b.case === "image") return "[image]";
  if (b.case === "file") return `[file] ${b.value.name}`;
  if (b.case === "tip") {
    // [RC-4]: a recall leaves a tip {kind: "message.recalled", params: {by, seq}}.
    if (b.value.kind === "message.recalled") {
      const by = b.value.params.by ?? m?.sender ?? "";
      return `${by === me ? "You" : by} recalled a message`;
    }
    return b.value.text || `[${b.value.kind}]`;
  }
  if (b.case === "system") return [b.value.title, b.value.text].filter(Boolean).join(": ");
  return `[${b.case ?? "unsupported message"}]`;
}

/** Only http(s) URLs are linked or loaded (never javascript: or data:). */
function safeUrl(u: string): string | undefined {
  if (!u) return undefined;
  try {
    const url = new URL(u, location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : undefined;
  } catch {
    return undefined;
  }
}

function sizeOf(n: bigint): string {
  const b = Number(n);
  if (b <= 0) return "";
  if (b < 1024) return `${b} B`;
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KB`;
  return `${(b / 1024 / 1024).toFixed(1)} MB`;
}

function showError(err: unknown) {
  $("composer-error").textContent =
    err instanceof MissiveError ? `${err.message} (${err.code})` : String((err as Error)?.message ?? err);
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
  client.on("conversation", (c) => {
    renderList();
    if (c.convId === current) renderMessages(false); // ticks from peer_read_seq / peer_delivered_seq
  });
  client.on("message", (m) => {
    renderList();
    if (typingNow.typing(m.convId).includes(m.sender)) {
      typingNow.clear(m.convId, m.sender);
      if (m.convId === current) renderHeader();
    }
    if (m.convId === current) {
      renderMessages(true);
      markReadIfVisible();
    }
  });
  client.on("receipt", (r) => {
    if (r.convId === current) renderMessages(false);
  });
  client.on("delivery", (d) => {
    if (d.convId === current) renderMessages(false);
  });
  client.on("messageUpdate", (u) => {
    renderList();
    if (u.convId !== current) return;
    if (editing && editing.seq === u.seq && (u.message?.recalled || u.message?.deleted)) cancelCompose();
    renderMessages(false);
  });
  client.on("typing", (t) => {
    if (typingNow.apply(t) && t.convId === current) renderHeader();
    scheduleTypingExpiry();
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
      const notice = last && (last.recalled || last.deleted || last.content?.body.case === "tip" || last.content?.body.case === "system");
      main.querySelector(".conv-preview")!.textContent = last ? `${last.sender === me && !notice ? "You: " : ""}${textOf(last)}` : "No messages yet";
      li.append(av, main);
      li.addEventListener("click", () => open(c.convId));
      return li;
    }),
  );
}

// ------------------------------------------------------------------ message view

async function open(convId: string) {
  if (current !== convId) {
    notifier?.stop();
    cancelCompose();
    pickerFor = undefined;
  }
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
  const who = typingNow.typing(current);
  const ty = $("typing");
  ty.textContent = who.length ? `${who.join(", ")} ${who.length > 1 ? "are" : "is"} typing…` : "";
  st.hidden = who.length > 0;
}

/** Re-renders the header when the next typing indicator expires. */
function scheduleTypingExpiry() {
  if (typingTimer) clearTimeout(typingTimer);
  const ms = typingNow.nextExpiryMs();
  if (ms === undefined) return;
  typingTimer = setTimeout(() => {
    typingTimer = undefined;
    renderHeader();
    scheduleTypingExpiry();
  }, ms + 20);
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
  const direct = current.startsWith("p:");
  const msgs = client.messages(current);
  const keepFocus = document.activeElement instanceof HTMLElement && box.contains(document.activeElement) ? document.activeElement.dataset.focusKey : undefined;
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
    const kind = m.content?.body.case;
    if (kind === "tip" || kind === "system") {
      // [M-4]: tips and notices render as notices. The recall tip is not shown: the
      // recalled message already shows its notice in place.
      if (m.content?.body.case === "tip" && m.content.body.value.kind === "message.recalled") continue;
      const n = document.createElement("div");
      n.className = "notice";
      n.dataset.testid = "tip-notice";
      n.textContent = textOf(m);
      nodes.push(n);
      continue;
    }
    if (m.recalled || m.deleted) {
      const n = document.createElement("div");
      n.className = "notice";
      n.dataset.testid = m.recalled ? "recalled-notice" : "deleted-notice";
      n.dataset.seq = String(m.seq);
      n.textContent = textOf(m);
      nodes.push(n);
      continue;
    }
    nodes.push(renderMessage(m, direct ? tickOf(state, m.seq) : undefined));
  }
  for (const p of client.pending(current)) {
    const el = document.createElement("div");
    el.className = "msg mine pending";
    el.dataset.testid = "pending";
    const body = p.content.body;
    el.textContent = body.case === "text" ? body.value.text : `[${body.case}]`;
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
  if (keepFocus) box.querySelector<HTMLElement>(`[data-focus-key="${keepFocus}"]`)?.focus();
  if (stickToBottom || atBottom) box.scrollTop = box.scrollHeight;
}

function actionButton(label: string, icon: string, testid: string, seq: bigint, fn: () => void): HTMLButtonElement {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "act";
  b.textContent = icon;
  b.title = label;
  b.setAttribute("aria-label", label);
  b.dataset.testid = testid;
  b.dataset.focusKey = `${testid}:${seq}`;
  b.addEventListener("click", (e) => {
    e.stopPropagation();
    fn();
  });
  return b;
}

/** One message bubble: quote, body, meta (time, edited, tick), reactions, actions. */
function renderMessage(m: Message, tick: ReturnType<typeof tickOf> | undefined): HTMLElement {
  const mine = m.sender === me;
  const el = document.createElement("div");
  el.className = `msg ${mine ? "mine" : "theirs"}`;
  el.dataset.testid = "message";
  el.dataset.seq = String(m.seq);
  const body = m.content?.body;
  // The body is the first child (tests read it as the message's text).
  const text = document.createElement("span");
  text.className = "body";
  text.dataset.testid = "message-text";
  if (body?.case === "image") {
    const url = safeUrl(body.value.url);
    if (url) {
      const img = document.createElement("img");
      img.src = safeUrl(body.value.thumbnailUrl) ?? url;
      img.alt = `Image from ${m.sender}`;
      img.loading = "lazy";
      img.dataset.testid = "message-image";
      if (body.value.width && body.value.height) {
        img.width = Math.min(body.value.width, 280);
      }
      const a = document.createElement("a");
      a.href = url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.append(img);
      text.append(a);
    } else text.textContent = "[image]";
  } else if (body?.case === "file") {
    const url = safeUrl(body.value.url);
    const name = body.value.name || "file";
    const size = sizeOf(body.value.sizeBytes);
    const node = url ? document.createElement("a") : document.createElement("span");
    node.className = "file";
    node.dataset.testid = "message-file";
    if (node instanceof HTMLAnchorElement && url) {
      node.href = url;
      node.target = "_blank";
      node.rel = "noopener noreferrer";
      node.download = name;
    }
    node.textContent = `📄 ${name}${size ? ` (${size})` : ""}`;
    text.append(node);
  } else {
    text.textContent = textOf(m);
  }
  el.append(text);
  const q = m.content?.quote;
  if (q) {
    const qb = document.createElement("div");
    qb.className = "quote";
    qb.dataset.testid = "message-quote";
    const who = document.createElement("strong");
    who.textContent = q.sender === me ? "You" : q.sender;
    qb.append(who, document.createTextNode(` ${quotePreview(q)}`));
    el.prepend(qb);
  }
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.append(timeOf(m.serverTimeMs));
  if (m.editVersion > 0) {
    const ed = document.createElement("span");
    ed.className = "edited";
    ed.dataset.testid = "edited";
    ed.textContent = " (edited)";
    meta.append(ed);
  }
  if (mine && tick) {
    const t = document.createElement("span");
    t.className = `tick ${tick}`;
    t.dataset.testid = `receipt-${tick}`;
    t.textContent = tick === "read" ? " · Read ✓✓" : tick === "delivered" ? " · Delivered ✓✓" : " · Sent ✓";
    meta.append(t);
  }
  el.append(meta);
  if (m.reactions.length) {
    const chips = document.createElement("div");
    chips.className = "reactions";
    for (const r of m.reactions) {
      const c = document.createElement("button");
      c.type = "button";
      c.className = `chip${r.me ? " me" : ""}`;
      c.dataset.testid = "reaction-chip";
      c.dataset.key = r.key;
      c.dataset.focusKey = `chip:${m.seq}:${r.key}`;
      c.setAttribute("aria-pressed", String(r.me));
      c.setAttribute("aria-label", `${r.key} ${r.count}${r.me ? ", including you" : ""}: ${r.me ? "remove your reaction" : "react"}`);
      c.title = r.users.join(", ");
      c.textContent = `${r.key} ${r.count}`;
      c.addEventListener("click", () => void react(m, r.key, r.me));
      chips.append(c);
    }
    el.append(chips);
  }
  const acts = document.createElement("div");
  acts.className = "actions";
  acts.setAttribute("role", "group");
  acts.setAttribute("aria-label", "Message actions");
  acts.append(actionButton("Reply", "↩", "action-reply", m.seq, () => startReply(m)));
  acts.append(
    actionButton("Add reaction", "☺", "action-react", m.seq, () => {
      pickerFor = pickerFor === m.seq ? undefined : m.seq;
      renderMessages(false);
      document.querySelector<HTMLElement>(`[data-testid="reaction-picker"] button`)?.focus();
    }),
  );
  if (mine && body?.case === "text") acts.append(actionButton("Edit", "✎", "action-edit", m.seq, () => startEdit(m)));
  if (mine) acts.append(actionButton("Recall", "⟲", "action-recall", m.seq, () => void recall(m)));
  acts.append(actionButton("Delete for me", "🗑", "action-delete", m.seq, () => void deleteForMe(m)));
  el.append(acts);
  if (pickerFor === m.seq) {
    const picker = document.createElement("div");
    picker.className = "picker";
    picker.dataset.testid = "reaction-picker";
    picker.setAttribute("role", "group");
    picker.setAttribute("aria-label", "Pick a reaction");
    for (const k of REACTIONS) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = k;
      b.setAttribute("aria-label", `React with ${k}`);
      b.dataset.testid = "pick-reaction";
      b.dataset.key = k;
      b.dataset.focusKey = `pick:${m.seq}:${k}`;
      b.addEventListener("click", () => {
        pickerFor = undefined;
        const held = m.reactions.find((r) => r.key === k);
        void react(m, k, held?.me ?? false);
      });
      picker.append(b);
    }
    picker.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        pickerFor = undefined;
        renderMessages(false);
        document.querySelector<HTMLElement>(`[data-focus-key="action-react:${m.seq}"]`)?.focus();
      }
    });
    el.append(picker);
  }
  return el;
}

function quotePreview(q: { preview: string }): string {
  return q.preview.length > 80 ? `${q.preview.slice(0, 79)}…` : q.preview;
}

// ------------------------------------------------------------------ lifecycle actions

async function react(m: Message, key: string, remove: boolean) {
  if (!client) return;
  try {
    await client.react(m.convId, m.seq, key, remove);
  } catch (err) {
    showError(err);
  }
  renderMessages(false);
}

async function recall(m: Message) {
  if (!client) return;
  try {
    await client.recall(m.convId, m.seq);
    $("composer-error").textContent = "";
  } catch (err) {
    showError(err);
  }
}

async function deleteForMe(m: Message) {
  if (!client) return;
  try {
    await client.deleteMessages(m.convId, [m.seq]);
  } catch (err) {
    showError(err);
  }
}

function startReply(m: Message) {
  editing = undefined;
  replyTo = m;
  renderComposeBar();
  ($("text") as HTMLTextAreaElement).focus();
}

function startEdit(m: Message) {
  replyTo = undefined;
  editing = m;
  const ta = $("text") as HTMLTextAreaElement;
  ta.value = m.content?.body.case === "text" ? m.content.body.value.text : "";
  renderComposeBar();
  ta.focus();
}

function cancelCompose() {
  const wasEditing = editing !== undefined;
  replyTo = undefined;
  editing = undefined;
  if (wasEditing) ($("text") as HTMLTextAreaElement).value = "";
  renderComposeBar();
}

function renderComposeBar() {
  const bar = $("compose-bar");
  const m = editing ?? replyTo;
  bar.hidden = !m;
  if (!m) return;
  $("compose-label").textContent = editing ? "Editing message" : `Replying to ${m.sender === me ? "yourself" : m.sender}`;
  $("compose-preview").textContent = textOf(m);
  bar.dataset.mode = editing ? "edit" : "reply";
}

$("compose-cancel").addEventListener("click", () => {
  cancelCompose();
  ($("text") as HTMLTextAreaElement).focus();
});

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
  $("composer-error").textContent = "";
  notifier?.stop();
  if (editing) {
    const m = editing;
    cancelCompose();
    ta.value = "";
    try {
      await client.editText(m.convId, m.seq, text);
    } catch (err) {
      showError(err);
    }
    return;
  }
  ta.value = "";
  const conv = current;
  const quote = replyTo ? { seq: replyTo.seq, serverMsgId: replyTo.serverMsgId, sender: replyTo.sender, preview: textOf(replyTo).slice(0, 120) } : undefined;
  cancelCompose();
  const p = client.send(conv, { body: { case: "text", value: { text } }, quote });
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
  } else if (e.key === "Escape" && (replyTo || editing)) {
    e.preventDefault();
    cancelCompose();
  }
});
$("text").addEventListener("input", () => {
  if (!client || !current || editing) return;
  if (notifierConv !== current) {
    notifier?.stop();
    const conv = current;
    notifierConv = conv;
    notifier = new TypingNotifier((typing) => void client?.typing(conv, typing).catch(() => {}));
  }
  if (($("text") as HTMLTextAreaElement).value.trim()) notifier!.input();
  else notifier!.stop();
});

// ------------------------------------------------------------------ images and files by URL

$("attach-toggle").addEventListener("click", () => {
  const form = $("attach");
  form.hidden = !form.hidden;
  $("attach-toggle").setAttribute("aria-expanded", String(!form.hidden));
  if (!form.hidden) ($("attach-url") as HTMLInputElement).focus();
});

async function sendMedia(kind: "image" | "file") {
  const urlIn = $("attach-url") as HTMLInputElement;
  const nameIn = $("attach-name") as HTMLInputElement;
  const url = safeUrl(urlIn.value.trim());
  if (!client || !current) return;
  if (!url) {
    $("composer-error").textContent = "Enter an http(s) URL";
    return;
  }
  const name = nameIn.value.trim() || decodeURIComponent(new URL(url).pathname.split("/").pop() || "") || "file";
  urlIn.value = "";
  nameIn.value = "";
  $("attach").hidden = true;
  $("attach-toggle").setAttribute("aria-expanded", "false");
  $("composer-error").textContent = "";
  const content =
    kind === "image"
      ? { body: { case: "image" as const, value: { url } } }
      : { body: { case: "file" as const, value: { url, name } } };
  const conv = current;
  const p = client.send(conv, content);
  renderMessages(true);
  try {
    await p;
  } catch (err) {
    showError(err);
  }
  if (current === conv) renderMessages(true);
}
$("attach-image").addEventListener("click", () => void sendMedia("image"));
$("attach-file").addEventListener("click", () => void sendMedia("file"));
$("attach").addEventListener("submit", (e) => {
  e.preventDefault();
  void sendMedia("image");
});

void start();
