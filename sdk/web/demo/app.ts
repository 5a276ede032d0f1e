/**
 * The Missive web chat page. Role: everything a person does in a browser tab
 * against the broker, on @missive/sdk (bundled by build.mjs with groups.ts,
 * contacts.ts and profile.ts):
 * - login (dev-minted or pasted token), one device id per open tab;
 * - views: tabs Chats / Contacts / Me (arrow keys move between tabs); the
 *   latter two are contacts.ts and profile.ts, mounted on first open with the
 *   `PageContext` of context.ts and disposed on sign-out;
 * - names (names.ts): other users are shown by my remark for a friend, else
 *   their profile nickname, else the id (a group member by the group nickname
 *   first): the list, the header, group senders, quotes, the reply bar,
 *   notices; read with getProfiles / checkRelations, kept current by
 *   `profile` and `relation` events; the id stays in `data-user` and the tooltip;
 * - the conversation list: 1:1 and groups, unread badges (grey when muted),
 *   pinned first (latest pin first), pin / muted / left icons, last-message
 *   preview, "[@me]" mention markers; Enter opens a focused conversation;
 * - the message view: history on scroll to the top, read/delivered ticks
 *   (1:1), "Read by N" on one's own group messages ([GR-23]), group tips as
 *   centred notices (14.8, worded by groups.ts), the message lifecycle
 *   (spec 18: reply, recall, edit, delete, reactions, typing, images and
 *   files by URL);
 * - groups (groups.ts): create (dialog), join or apply by id, invitations and
 *   applications (sidebar and panel), the info panel with members, roles,
 *   mutes, settings, transfer, leave, dismiss; @-mention autocomplete in a
 *   group's composer (↑/↓, Enter or Tab picks, Escape closes) over every
 *   member (read on demand, at most groups.ts ROSTER_MAX), matched by the typed
 *   prefix of the id or the nickname;
 * - per-conversation settings (pin, mute, hide, clear history, group notify)
 *   and global do-not-disturb, live from `conversation` / `settings` events
 *   (another tab or device of the same user); in-page notifications respect
 *   them;
 * - the kick banner (`kicked` push, or a session that ended) and a narrow
 *   (phone) layout: list and conversation are separate screens with a back
 *   button; the group panel covers the screen.
 *
 * Invariants:
 * - every broker error a user action meets is shown as "NAME (code): message"
 *   (`describeError` of context.ts, shared with the Contacts and Me views; the
 *   composer's line for sends and message actions, the error banner
 *   otherwise); only "not connected" / retryable errors of background reads
 *   are left to the reconnect;
 * - two tabs of one user never share a device id (a Web Lock per device id:
 *   the same device id logging in twice ends the older session, [L-1]);
 *   `localStorage["missive-device:<user>"]` is the first id a tab claims and
 *   `window.missive.deviceId` the one it holds;
 * - the page holds no conversation state of its own: pin, mute, hidden,
 *   cleared and read positions are the SDK's `ConversationState`s, so every
 *   `conversation` event re-renders from them (the "[@me]" marker is the
 *   state's `mentioned`, which the SDK keeps current from new messages);
 * - messages below the readable floor (`cleared_seq`, `min_readable_seq`) are
 *   never rendered, and no older page is asked for below it;
 * - sign-out forgets everything of the user the page shows or holds (open
 *   conversation, draft, list, group requests, typing, timers, the client's
 *   listeners) before the login form shows; a sign-in overtaken by a sign-out
 *   while it claims a device id stops there;
 * - a conversation hidden elsewhere closes when open, unless it was opened
 *   while hidden (from "new chat");
 * - every control has an accessible name and a data-testid (checked by
 *   e2e/page.test.mjs); every message action is a labelled button (Tab to a
 *   message's actions, Enter to use one; Escape closes the picker, the
 *   mention list, the settings row and the group panel, and cancels a reply
 *   or an edit). Media URLs are shown only when http(s).
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
import { KickReason, type Kicked } from "../src/gen/user_pb.ts";
import { Platform } from "../src/gen/platform_pb.ts";
import {
  GroupNotify,
  GroupPanel,
  JoinStatus,
  GroupStore,
  createGroupRequest,
  gidOf,
  isGroupTip,
  renderRequests,
  tipText,
  type GroupHost,
} from "./groups.ts";
import { chunks, describeError, safeUrl, type PageContext } from "./context.ts";
import { mountContacts } from "./contacts.ts";
import { mountProfile } from "./profile.ts";
import { Names } from "./names.ts";

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
let myDevice = "";
let current: string | undefined; // open conversation id
/** The open conversation was hidden when opened (from "new chat"): its own hidden state does not close it. */
let openedHidden = false;
/** Counts sign-ins and sign-outs: an `enter` overtaken by a sign-out (or another sign-in) while it waits stops there. */
let sessionGen = 0;
/** Unsubscribes the page's listeners from the signed-in client. */
let clientOffs: (() => void)[] = [];
const online = new Map<string, boolean>();
let typingNow = new TypingTracker();
let typingTimer: ReturnType<typeof setTimeout> | undefined;
let notifier: TypingNotifier | undefined;
let notifierConv: string | undefined;
/** Composer mode: replying to a message, or editing one of mine. */
let replyTo: Message | undefined;
let editing: Message | undefined;
/** The message whose reaction picker is open (seq), if any. */
let pickerFor: bigint | undefined;
const REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🎉"];
/** Conversations whose history is loaded back to the first readable message. */
const exhausted = new Set<string>();
/** Users picked from the mention list for the message being written. */
const mentionPicks = new Set<string>();

const palette = ["#4f46e5", "#0891b2", "#db2777", "#059669", "#d97706", "#7c3aed", "#dc2626", "#2563eb"];
function avatar(el: HTMLElement, name: string, presenceOf?: string) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  el.textContent = name.slice(0, 1) || "?";
  el.style.background = palette[h % palette.length];
  el.classList.toggle("online", presenceOf !== undefined && online.get(presenceOf) === true);
}

const isGroup = (convId: string) => convId.startsWith("g:");
const peerOf = (convId: string) => {
  const [, a, b] = convId.split(":");
  return a === me ? b : a;
};
/** The list's test key of a conversation: the peer of a 1:1, `g-<group>` for a group. */
const keyOf = (convId: string) => (isGroup(convId) ? `g-${convId.slice(2)}` : peerOf(convId));
/** A 1:1 conversation's title is the peer's name (remark, nickname, id: names.ts); a group's its name. */
const titleOf = (convId: string) => (isGroup(convId) ? groups.name(convId.slice(2)) : names.name(peerOf(convId)));
/** The name shown for a user outside a group context (1:1 chats, quotes, notices). */
const nameOf = (uid: string) => names.name(uid);
const whoIn = (convId: string | undefined) => (uid: string) => (uid === me ? "you" : groups.display(gidOf(convId), uid));

function textOf(m: Message | undefined): string {
  if (m?.recalled) return `${m.recalled.by === me ? "You" : whoIn(m.convId)(m.recalled.by)} recalled a message`;
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
      return `${by === me ? "You" : whoIn(m?.convId)(by)} recalled a message`;
    }
    if (isGroupTip(b.value.kind)) return tipText(b.value, whoIn(m?.convId));
    return b.value.text || `[${b.value.kind}]`;
  }
  if (b.case === "system") return [b.value.title, b.value.text].filter(Boolean).join(": ");
  return `[${b.case ?? "unsupported message"}]`;
}

function sizeOf(n: bigint): string {
  const b = Number(n);
  if (b <= 0) return "";
  if (b < 1024) return `${b} B`;
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KB`;
  return `${(b / 1024 / 1024).toFixed(1)} MB`;
}

// ------------------------------------------------------------------ icons

/** Line icons (24×24, stroked) drawn inline, so they render without an emoji font. */
const ICONS: Record<string, string> = {
  bell: '<path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9"/><path d="M13.7 21a2 2 0 0 1-3.4 0"/>',
  "bell-off":
    '<path d="M13.7 21a2 2 0 0 1-3.4 0"/><path d="M18.6 13A17.9 17.9 0 0 1 18 8"/><path d="M6.3 6.3A6 6 0 0 0 6 8c0 7-3 9-3 9h14"/><path d="M18 8a6 6 0 0 0-9.3-5"/><line x1="1" y1="1" x2="23" y2="23"/>',
  users:
    '<path d="M17 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2"/><circle cx="9" cy="7" r="4"/><path d="M23 21v-2a4 4 0 0 0-3-3.9"/><path d="M16 3.1a4 4 0 0 1 0 7.8"/>',
  clip: '<path d="M21.4 11.1l-9.2 9.2a6 6 0 0 1-8.5-8.5l9.2-9.2a4 4 0 0 1 5.7 5.7l-9.2 9.2a2 2 0 0 1-2.8-2.8l8.5-8.5"/>',
  pin: '<line x1="12" y1="17" x2="12" y2="22"/><path d="M5 17h14v-1.8a2 2 0 0 0-1.1-1.8l-1.8-.9A2 2 0 0 1 15 10.8V6h1a2 2 0 0 0 0-4H8a2 2 0 0 0 0 4h1v4.8a2 2 0 0 1-1.1 1.8l-1.8.9A2 2 0 0 0 5 15.2Z"/>',
};

function icon(name: string): HTMLElement {
  const s = document.createElement("span");
  s.className = "ico";
  s.setAttribute("aria-hidden", "true");
  s.innerHTML = `<svg viewBox="0 0 24 24" width="18" height="18" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">${ICONS[name] ?? ""}</svg>`;
  return s;
}
for (const el of Array.from(document.querySelectorAll<HTMLElement>("[data-icon]"))) el.replaceChildren(icon(el.dataset.icon!));

// ------------------------------------------------------------------ errors

/** A broker error from anything but the composer: the error banner. */
function showError(err: unknown) {
  $("app-error-text").textContent = describeError(err);
  $("app-error").hidden = false;
}
$("app-error-close").addEventListener("click", () => {
  $("app-error").hidden = true;
});

/** An error of a send, edit or message action: the composer's line. */
function showComposerError(err: unknown) {
  $("composer-error").textContent = describeError(err);
}

/** Background reads: "not connected" waits for the reconnect; a broker refusal is shown. */
function reportUnlessOffline(err: unknown) {
  if (err instanceof MissiveError && (err.code === 0 || err.retryable)) return;
  showError(err);
}

function toast(text: string) {
  const t = document.createElement("div");
  t.className = "toast";
  t.dataset.testid = "toast";
  t.textContent = text;
  $("toasts").append(t);
  setTimeout(() => t.remove(), 5000);
}

function timeOf(ms: bigint | undefined): string {
  if (!ms) return "";
  const d = new Date(Number(ms));
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : d.toLocaleDateString();
}

// ------------------------------------------------------------------ groups

/** Names of other users (remark, nickname, id), read on demand and kept current by `profile` / `relation` events. */
const names = new Names(
  () => client,
  () => me,
);
names.onError = reportUnlessOffline;
names.onChange = () => {
  renderList();
  renderHeader();
  renderComposeBar();
  if (current) renderMessages(false);
  if (panel.isOpen) panel.render();
};

const host: GroupHost = {
  client: () => client,
  me: () => me,
  nameOf,
  showError,
  changed: (gid) => scheduleRender(gid),
  open: (convId) => {
    selectTab("chats");
    void open(convId);
  },
  toast,
};
const groups = new GroupStore(host);
groups.onRequests = () => renderRequests($("requests"), $("request-list"), groups, me);
const panel = new GroupPanel($("group-panel"), groups, host, () => closePanel());

let renderQueued = false;
const dirtyGroups = new Set<string>();
/** Coalesces the re-renders a burst of group answers asks for. */
function scheduleRender(gid: string) {
  dirtyGroups.add(gid);
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => {
    renderQueued = false;
    const touched = [...dirtyGroups];
    dirtyGroups.clear();
    renderList();
    renderRequests($("requests"), $("request-list"), groups, me);
    const cg = gidOf(current);
    if (cg && touched.includes(cg)) {
      renderHeader();
      renderComposerState();
      renderMessages(false);
      renderSettings();
      // An open list follows; one that found nobody among the loaded members opens once the roster arrives.
      if (mentionOpen() || document.activeElement === $("text")) updateMentions();
    }
    if (panel.gid && touched.includes(panel.gid)) panel.render();
  }, 0);
}

function openPanel(gid: string) {
  panel.open(gid);
  $("app").classList.add("with-panel");
  $("group-info-toggle").setAttribute("aria-expanded", "true");
}

function closePanel() {
  const hadFocus = $("group-panel").contains(document.activeElement);
  panel.close();
  $("app").classList.remove("with-panel");
  $("group-info-toggle").setAttribute("aria-expanded", "false");
  if (hadFocus && !$("group-info-toggle").hidden) $("group-info-toggle").focus();
}

$("group-info-toggle").addEventListener("click", () => {
  const gid = gidOf(current);
  if (!gid) return;
  if (panel.gid === gid) closePanel();
  else {
    openPanel(gid);
    $("group-panel").querySelector<HTMLElement>('[data-testid="group-panel-close"]')?.focus();
  }
});

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
    await enter(user, token);
  } catch (err) {
    $("login-error").textContent = String((err as Error).message ?? err);
  }
});

/**
 * Ends the session and forgets everything of the signed-in user the page shows
 * or holds: the next user (same tab) sees none of it, not even while their own
 * session starts (the open conversation, header, draft and reply bar, the list,
 * group requests, typing indicators, the error banner).
 */
function signOut() {
  sessionGen++;
  for (const off of clientOffs) off();
  clientOffs = [];
  notifier?.stop();
  notifier = undefined;
  notifierConv = undefined;
  closeConversation(); // uses `client`: before it goes
  client?.stop({ rejectPending: true }); // unsent messages of this user must not go out as the next one
  client = undefined;
  localStorage.removeItem(SESSION_KEY);
  views.contacts?.dispose();
  views.profile?.dispose();
  views = {};
  groups.reset();
  names.reset();
  exhausted.clear();
  mentionPicks.clear();
  online.clear();
  typingNow = new TypingTracker();
  if (typingTimer) clearTimeout(typingTimer);
  typingTimer = undefined;
  if (receiptTimer) clearTimeout(receiptTimer);
  receiptTimer = undefined;
  pickerFor = undefined;
  ($("text") as HTMLTextAreaElement).value = "";
  $("composer-error").textContent = "";
  $("conv-list").replaceChildren();
  renderRequests($("requests"), $("request-list"), groups, "");
  $("join-status").textContent = "";
  $("app-error").hidden = true;
  $("kicked-banner").hidden = true;
  $("app").classList.remove("in-chat");
  showLogin();
}
$("logout").addEventListener("click", signOut);

const newDeviceId = () => `web-${Math.random().toString(36).slice(2, 10)}`;

/**
 * Claims a device id for this tab. The same device id logging in twice ends the
 * older session ([L-1]), so each open tab holds a Web Lock on its id: a tab takes
 * the user's first id (`missive-device:<user>`, waiting briefly for a tab that is
 * closing), else a spare id of an earlier tab, else a new one. Without Web Locks
 * every tab uses the first id.
 */
async function claimDevice(user: string): Promise<string> {
  const firstKey = `missive-device:${user}`;
  const spareKey = `missive-devices:${user}`;
  let first = localStorage.getItem(firstKey);
  if (!first) {
    first = newDeviceId();
    localStorage.setItem(firstKey, first);
  }
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  let spares: string[] = [];
  try {
    spares = (JSON.parse(localStorage.getItem(spareKey) ?? "[]") as string[]).filter((x) => typeof x === "string" && x !== first);
  } catch {
    /* rebuilt below */
  }
  const tabId = sessionStorage.getItem(`missive-tab-device:${user}`);
  const order = [...new Set([tabId, first, ...spares].filter((x): x is string => !!x))];
  if (!locks) return claimByAsking(user, order, spares, spareKey);
  const claim = (id: string, waitMs: number) =>
    new Promise<boolean>((resolve) => {
      const opts: LockOptions = waitMs > 0 ? { signal: AbortSignal.timeout(waitMs) } : { ifAvailable: true };
      locks
        .request(`missive-device:${user}:${id}`, opts, (lock) => {
          if (!lock) {
            resolve(false);
            return undefined;
          }
          resolve(true);
          return new Promise<void>(() => {}); // held while the tab lives
        })
        .catch(() => resolve(false));
    });
  for (const [i, id] of order.entries()) {
    if (await claim(id, i === 0 ? 1200 : 0)) {
      sessionStorage.setItem(`missive-tab-device:${user}`, id);
      return id;
    }
  }
  const id = newDeviceId();
  localStorage.setItem(spareKey, JSON.stringify([...spares, id].slice(-8)));
  await claim(id, 0);
  sessionStorage.setItem(`missive-tab-device:${user}`, id);
  return id;
}

/**
 * Without Web Locks (a page served over plain http from another host is not a
 * secure context): the open tabs of the user answer on a BroadcastChannel
 * which device id they hold, and this tab takes the first free one. Two tabs
 * opened in the same instant may still pick the same id (the broker then ends
 * the older session and the kick banner says so).
 */
async function claimByAsking(user: string, order: string[], spares: string[], spareKey: string): Promise<string> {
  if (typeof BroadcastChannel === "undefined") return order[0];
  const ch = new BroadcastChannel(`missive-devices:${user}`);
  const held = new Set<string>();
  ch.onmessage = (e: MessageEvent) => {
    if (e.data?.held) held.add(String(e.data.held));
  };
  ch.postMessage({ ask: true });
  await new Promise((r) => setTimeout(r, 250));
  let id = order.find((x) => !held.has(x));
  if (!id) {
    id = newDeviceId();
    localStorage.setItem(spareKey, JSON.stringify([...spares, id].slice(-8)));
  }
  const mine = id;
  sessionStorage.setItem(`missive-tab-device:${user}`, mine);
  ch.onmessage = (e: MessageEvent) => {
    if (e.data?.ask) ch.postMessage({ held: mine });
  };
  return mine;
}

async function enter(user: string, token: string) {
  const gen = ++sessionGen;
  me = user;
  $("login").hidden = true;
  $("app").hidden = false;
  $("me-name").textContent = user;
  avatar($("me-avatar"), user);
  const device = await claimDevice(user);
  if (gen !== sessionGen) return; // signed out (or in again) meanwhile: this sign-in is over
  myDevice = device;
  const transports: TransportFactory[] = [];
  if (info.webtransport && webTransportAvailable()) {
    transports.push(webTransportTransport(info.webtransport, info.certHash ?? undefined));
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  transports.push(webSocketTransport(`${scheme}://${location.host}${info.ws || "/ws"}`));
  const c = new MissiveClient({ transports, token, deviceId: myDevice, store: localStorage });
  client = c;
  (window as unknown as { missive: unknown }).missive = { client: c, deviceId: myDevice, groups };
  const on: typeof c.on = (event, fn) => {
    const off = c.on(event, fn);
    clientOffs.push(off);
    return off;
  };
  on("state", (s, detail) => {
    const el = $("conn-state");
    el.textContent = s === "online" ? "online" : s === "connecting" ? "connecting…" : s === "ended" ? `signed out: ${detail}` : "offline — reconnecting";
    el.className = `conn ${s}`;
    const via = c.transport;
    const tr = $("conn-transport");
    tr.textContent = s === "online" && via ? (via === "webtransport" ? "WebTransport" : "WebSocket") : "";
    tr.dataset.kind = s === "online" && via ? via : "";
    if (s === "online") {
      $("kicked-banner").hidden = true;
      const peers = c
        .conversations()
        .filter((x) => x.convId.startsWith("p:"))
        .map((x) => peerOf(x.convId));
      // [PS-2]: 1..=100 ids per request.
      for (const batch of chunks(peers)) void c.subscribePresence(batch).then(applyPresence, reportUnlessOffline);
      names.online();
      groups.online();
      renderList();
      renderDnd();
    }
    if (s === "ended") {
      showEnded(detail);
    }
  });
  on("kicked", (k) => showKicked(k));
  on("conversation", (st) => {
    renderList();
    if (st.convId === current) {
      // Hidden on another device (or tab) while open: close it. One opened while hidden
      // (from "new chat") stays open until it is shown again and then hidden.
      if (st.hidden && !openedHidden) {
        closeConversation();
        return;
      }
      if (!st.hidden) openedHidden = false;
      renderMessages(false); // ticks from peer_read_seq / peer_delivered_seq, cleared history
      renderSettings();
    }
  });
  on("settings", () => {
    renderDnd();
    renderList();
  });
  on("groupApplication", (a) => groups.onApplication(a));
  on("message", (m) => onMessage(m));
  on("receipt", (r) => {
    if (r.convId !== current) return;
    if (isGroup(r.convId)) scheduleReceipts();
    else renderMessages(false);
  });
  on("delivery", (d) => {
    if (d.convId === current) renderMessages(false);
  });
  on("messageUpdate", (u) => {
    renderList();
    if (u.convId !== current) return;
    if (editing && editing.seq === u.seq && (u.message?.recalled || u.message?.deleted)) cancelCompose();
    renderMessages(false);
  });
  on("typing", (t) => {
    if (typingNow.apply(t) && t.convId === current) renderHeader();
    scheduleTypingExpiry();
  });
  on("presence", (p) => applyPresence([p]));
  on("profile", (p) => names.onProfile(p));
  on("relation", (r) => names.onRelation(r));
  c.start();
  selectTab("chats");
  renderList();
  renderDnd();
}

function onMessage(m: Message) {
  const conv = m.convId;
  const body = m.content?.body;
  const gid = gidOf(conv);
  if (gid && body?.case === "tip" && isGroupTip(body.value.kind)) groups.onTip(gid);
  const st = client?.conversation(conv);
  const mentions = m.content?.mentions;
  const mentionsMe = !!gid && m.sender !== me && !!mentions && (mentions.all || mentions.userIds.includes(me));
  renderList();
  if (typingNow.typing(conv).includes(m.sender)) {
    typingNow.clear(conv, m.sender);
    if (conv === current) renderHeader();
  }
  const visible = conv === current && document.visibilityState === "visible";
  if (visible) {
    renderMessages(true);
    markReadIfVisible();
    if (gid && m.sender === me) scheduleReceipts();
  } else if (m.sender !== me && m.seq > 0n && (!st || m.seq > st.readSeq)) {
    notify(m, mentionsMe);
  }
}

/** An in-page notification, unless do-not-disturb, the conversation's mute or its group notify setting says no. */
function notify(m: Message, mentionsMe: boolean) {
  if (!client || client.globalDnd) return;
  const st = client.conversation(m.convId);
  const body = m.content?.body;
  if (!body || body.case === "tip" || body.case === "system") return;
  const quiet = st?.muted || (st && st.groupNotify !== GroupNotify.NOTIFY);
  if (quiet && !(mentionsMe && st?.groupNotify !== GroupNotify.BLOCK)) return;
  const from = isGroup(m.convId) ? `${titleOf(m.convId)} · ${groups.display(gidOf(m.convId), m.sender)}` : nameOf(m.sender);
  toast(`${mentionsMe ? "[@me] " : ""}${from}: ${textOf(m)}`);
}

function applyPresence(ps: { userId: string; online: boolean }[]) {
  for (const p of ps) online.set(p.userId, p.online);
  renderList();
  renderHeader();
}

// ------------------------------------------------------------------ kick banner and ended sessions

function showKicked(k: Kicked) {
  const platform = k.byPlatform ? Platform[k.byPlatform]?.toLowerCase() : "";
  const why: Record<number, string> = {
    [KickReason.SAME_DEVICE]: `This device (${k.byDevice || myDevice}) signed in again in another window or browser, so this window was disconnected.`,
    [KickReason.LOGIN_ELSEWHERE]: `You signed in on another device${platform ? ` (${platform}${k.byDevice ? `, ${k.byDevice}` : ""})` : ""}, which replaced this session.`,
    [KickReason.ACCOUNT_DISABLED]: "Your account was disabled by an administrator.",
    [KickReason.TOKENS_REVOKED]: "Your sign-in was revoked by an administrator.",
    [KickReason.ADMIN]: "An administrator ended this session.",
  };
  const text = why[k.reason] ?? "This session was ended by the server.";
  // An administrator's reason says something the fixed wording does not; the login cases' does not.
  const own = k.reason === KickReason.SAME_DEVICE || k.reason === KickReason.LOGIN_ELSEWHERE;
  $("kicked-text").textContent = k.message && !own ? `${text} Reason: ${k.message}` : text;
  $("kicked-banner").dataset.reason = KickReason[k.reason] ?? String(k.reason);
  $("kicked-banner").hidden = false;
  $("kicked-reconnect").hidden = k.reason !== KickReason.SAME_DEVICE && k.reason !== KickReason.LOGIN_ELSEWHERE;
}

function showEnded(detail: string) {
  if (!$("kicked-banner").hidden) return; // the kick already says why
  $("kicked-text").textContent = `You were signed out: ${detail}. Sign in again to continue.`;
  $("kicked-banner").dataset.reason = "ENDED";
  $("kicked-banner").hidden = false;
  $("kicked-reconnect").hidden = true;
  localStorage.removeItem(SESSION_KEY);
}

$("kicked-reconnect").addEventListener("click", () => {
  $("kicked-banner").hidden = true;
  client?.start();
});
$("kicked-signout").addEventListener("click", signOut);

// ------------------------------------------------------------------ global do-not-disturb

function renderDnd() {
  const on = client?.globalDnd === true;
  const b = $("global-dnd");
  b.setAttribute("aria-pressed", String(on));
  b.replaceChildren(icon(on ? "bell-off" : "bell"));
  b.title = on ? "Do not disturb is on" : "Do not disturb is off";
  document.title = titleText();
}

$("global-dnd").addEventListener("click", async () => {
  if (!client) return;
  try {
    await client.setGlobalDnd({ enabled: !client.globalDnd });
  } catch (e) {
    showError(e);
  }
  renderDnd();
});

function titleText(): string {
  if (!client || client.globalDnd) return "Missive";
  const n = client.conversations().reduce((s, c) => s + (c.muted || c.convId === current ? 0n : c.unread), 0n);
  return n > 0n ? `(${n}) Missive` : "Missive";
}

// ------------------------------------------------------------------ tabs and views

type Tab = "chats" | "contacts" | "me";
const TABS: Tab[] = ["chats", "contacts", "me"];
let views: { contacts?: { refresh(): void; dispose(): void }; profile?: { refresh(): void; dispose(): void } } = {};

const ctx: PageContext = {
  get client() {
    return client!;
  },
  get me() {
    return me;
  },
  openConversation: (convId: string) => {
    selectTab("chats");
    void open(convId);
  },
  showError,
  isOnline: (u: string) => online.get(u) === true,
  relationChanged: (r) => names.onRelation(r),
};

function selectTab(tab: Tab, focus = false) {
  for (const t of TABS) {
    const b = $(`tab-${t}`);
    b.setAttribute("aria-selected", String(t === tab));
    b.tabIndex = t === tab ? 0 : -1;
    $(`panel-${t}`).hidden = t !== tab;
    if (t === tab && focus) b.focus();
  }
  if (!client) return;
  if (tab === "contacts") {
    if (views.contacts) views.contacts.refresh();
    else views.contacts = mountContacts($("panel-contacts"), ctx);
  } else if (tab === "me") {
    if (views.profile) views.profile.refresh();
    else views.profile = mountProfile($("panel-me"), ctx);
  }
}

for (const t of TABS) {
  $(`tab-${t}`).addEventListener("click", () => selectTab(t));
  $(`tab-${t}`).addEventListener("keydown", (e) => {
    const i = TABS.indexOf(t);
    const next = e.key === "ArrowRight" ? TABS[(i + 1) % 3] : e.key === "ArrowLeft" ? TABS[(i + 2) % 3] : e.key === "Home" ? TABS[0] : e.key === "End" ? TABS[2] : undefined;
    if (next) {
      e.preventDefault();
      selectTab(next, true);
    }
  });
}

// ------------------------------------------------------------------ new chat, new group, join a group

$("new-chat").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("new-chat-user") as HTMLInputElement;
  const peer = input.value.trim();
  if (!peer || peer === me) return;
  input.value = "";
  void open(directConvId(me, peer));
});

const dialog = $("create-group") as HTMLDialogElement;
$("new-group").addEventListener("click", () => {
  ($("create-group-form") as HTMLFormElement).reset();
  $("cg-error").textContent = "";
  dialog.showModal();
  ($("cg-name") as HTMLInputElement).focus();
});
$("cg-cancel").addEventListener("click", () => dialog.close());
$("create-group-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!client) return;
  const members = ($("cg-members") as HTMLInputElement).value
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  const req = createGroupRequest({
    id: ($("cg-id") as HTMLInputElement).value.trim(),
    name: ($("cg-name") as HTMLInputElement).value.trim(),
    members,
    type: Number(($("cg-type") as HTMLSelectElement).value),
    consent: ($("cg-consent") as HTMLInputElement).checked,
  });
  const btn = $("cg-create") as HTMLButtonElement;
  btn.disabled = true;
  try {
    const g = await client.createGroup(req);
    dialog.close();
    groups.setGroup(g);
    groups.ensure(g.groupId);
    await open(`g:${g.groupId}`);
  } catch (err) {
    $("cg-error").textContent = describeError(err);
  } finally {
    btn.disabled = false;
  }
});

$("join-group-toggle").addEventListener("click", () => {
  const f = $("join-group");
  f.hidden = !f.hidden;
  $("join-group-toggle").setAttribute("aria-expanded", String(!f.hidden));
  if (!f.hidden) ($("join-group-id") as HTMLInputElement).focus();
});
$("join-group").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!client) return;
  const id = ($("join-group-id") as HTMLInputElement).value.trim();
  const reason = ($("join-group-reason") as HTMLInputElement).value.trim();
  const status = $("join-status");
  status.textContent = "";
  try {
    const r = await client.joinGroup({ groupId: id, reason });
    if (r.status === JoinStatus.APPLIED) {
      status.textContent = `Application sent to ${r.group?.name || id}: waiting for an owner or admin.`;
    } else {
      status.textContent = `You joined ${r.group?.name || id}.`;
      groups.ensure(id);
      void open(`g:${id}`);
    }
    ($("join-group-id") as HTMLInputElement).value = "";
    ($("join-group-reason") as HTMLInputElement).value = "";
  } catch (err) {
    status.textContent = describeError(err);
  }
});

// ------------------------------------------------------------------ conversation list

/** Pinned first (latest pin first), then by last message, newest first. */
function ordered(list: ConversationState[]): ConversationState[] {
  const t = (c: ConversationState) => c.lastMessage?.serverTimeMs ?? 0n;
  return [...list].sort((a, b) => {
    if (a.pinned !== b.pinned) return a.pinned ? -1 : 1;
    if (a.pinned && a.pinTimeMs !== b.pinTimeMs) return a.pinTimeMs > b.pinTimeMs ? -1 : 1;
    return t(b) > t(a) ? 1 : t(b) < t(a) ? -1 : a.convId.localeCompare(b.convId);
  });
}

function renderList() {
  if (!client) return;
  const list = $("conv-list");
  const convs = ordered(client.conversations());
  if (current && !convs.some((c) => c.convId === current)) {
    convs.unshift({ convId: current, unread: 0n, maxSeq: 0n } as ConversationState);
  }
  const focused = document.activeElement instanceof HTMLElement && list.contains(document.activeElement) ? document.activeElement.dataset.testid : undefined;
  list.replaceChildren(
    ...convs.map((c) => {
      const group = isGroup(c.convId);
      const gid = gidOf(c.convId);
      if (gid) groups.ensure(gid);
      const key = keyOf(c.convId);
      const title = titleOf(c.convId);
      const li = document.createElement("li");
      li.className = `conv${c.convId === current ? " active" : ""}${c.muted ? " is-muted" : ""}`;
      li.dataset.testid = `conv-${key}`;
      if (!group) li.dataset.user = peerOf(c.convId); // the id, whatever name is shown
      li.tabIndex = 0;
      li.setAttribute("role", "button");
      const av = document.createElement("span");
      av.className = `avatar${group ? " group" : ""}`;
      av.setAttribute("aria-hidden", "true");
      avatar(av, title, group ? undefined : peerOf(c.convId));
      const main = document.createElement("div");
      main.className = "conv-main";
      const unread = c.convId === current ? 0n : c.unread;
      const top = document.createElement("div");
      top.className = "conv-top";
      const name = document.createElement("span");
      name.className = "conv-name";
      name.dataset.testid = `conv-name-${key}`;
      name.textContent = title;
      if (!group && title !== peerOf(c.convId)) name.title = peerOf(c.convId);
      const icons = document.createElement("span");
      icons.className = "conv-icons";
      if (c.pinned) icons.append(marker(icon("pin"), `pinned-${key}`, "Pinned"));
      if (c.muted) icons.append(marker(icon("bell-off"), `muted-${key}`, "Muted"));
      if (gid && groups.ended(gid)) icons.append(marker(groups.get(gid)?.dismissed ? "dismissed" : "left", `ended-${key}`, groups.get(gid)?.dismissed ? "Dismissed" : "Left"));
      const time = document.createElement("span");
      time.className = "conv-time";
      time.textContent = timeOf(c.lastMessage?.serverTimeMs);
      top.append(name, icons, time);
      const bottom = document.createElement("div");
      bottom.className = "conv-bottom";
      const preview = document.createElement("span");
      preview.className = "conv-preview";
      if (c.convId !== current && group && c.mentioned) {
        const at = document.createElement("span");
        at.className = "mention-mark";
        at.dataset.testid = `mention-${key}`;
        at.textContent = "[@me] ";
        preview.append(at);
      }
      const last = c.lastMessage && c.lastMessage.seq > c.clearedSeq ? c.lastMessage : undefined;
      const notice = last && (last.recalled || last.deleted || last.content?.body.case === "tip" || last.content?.body.case === "system");
      const who = !last || notice ? "" : last.sender === me ? "You: " : group ? `${groups.display(gid, last.sender)}: ` : "";
      preview.append(last ? `${who}${textOf(last)}` : "No messages yet");
      bottom.append(preview);
      if (unread > 0n) {
        const b = document.createElement("span");
        b.className = `badge${c.muted ? " quiet" : ""}`;
        b.dataset.testid = `unread-${key}`;
        b.textContent = String(unread);
        b.setAttribute("aria-label", `${unread} unread`);
        bottom.append(b);
      }
      main.append(top, bottom);
      li.setAttribute("aria-label", `${title}${unread > 0n ? `, ${unread} unread` : ""}${c.pinned ? ", pinned" : ""}${c.muted ? ", muted" : ""}`);
      li.append(av, main);
      li.addEventListener("click", () => void open(c.convId));
      li.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          void open(c.convId);
        }
      });
      return li;
    }),
  );
  if (focused) list.querySelector<HTMLElement>(`[data-testid="${CSS.escape(focused)}"]`)?.focus();
  document.title = titleText();
}

function marker(content: Node | string, testid: string, label: string): HTMLElement {
  const s = document.createElement("span");
  s.className = typeof content === "string" ? "conv-icon tag" : "conv-icon";
  s.dataset.testid = testid;
  s.append(content);
  s.title = label;
  s.setAttribute("role", "img");
  s.setAttribute("aria-label", label);
  return s;
}

// ------------------------------------------------------------------ message view

async function open(convId: string) {
  if (current !== convId) {
    notifier?.stop();
    cancelCompose();
    closeMentions();
    mentionPicks.clear();
    pickerFor = undefined;
    $("composer-error").textContent = "";
    $("conv-settings").hidden = true;
    $("conv-settings-toggle").setAttribute("aria-expanded", "false");
  }
  if (current !== convId) openedHidden = client?.conversation(convId)?.hidden === true;
  current = convId;
  $("app").classList.add("in-chat");
  const gid = gidOf(convId);
  if (gid) {
    groups.ensure(gid);
    void groups.loadMembers(gid, false);
    if (panel.isOpen && panel.gid !== gid) openPanel(gid);
  } else if (panel.isOpen) closePanel();
  renderHeader();
  renderComposerState();
  renderList();
  renderSettings();
  renderMessages(true);
  if (!gid) {
    const peer = peerOf(convId);
    if (client && !online.has(peer)) void client.subscribePresence([peer]).then(applyPresence, reportUnlessOffline);
  }
  const held = visibleMessages(convId);
  if (client && held.length < 20 && !exhausted.has(convId) && (held.length === 0 || held[0].seq > readableFloor(convId))) {
    try {
      const r = await client.history(convId);
      if (!r.more) exhausted.add(convId);
    } catch (e) {
      reportUnlessOffline(e); // offline: shown once connected
    }
    if (current === convId) renderMessages(true);
  }
  markReadIfVisible();
  if (gid) scheduleReceipts();
  if (!($("text") as HTMLTextAreaElement).disabled) ($("text") as HTMLTextAreaElement).focus();
}

/** Leaves the open conversation (back to the list on a phone; after hiding it). */
function closeConversation() {
  notifier?.stop();
  cancelCompose();
  closeMentions();
  current = undefined;
  closePanel();
  $("app").classList.remove("in-chat");
  $("conv-settings").hidden = true;
  $("conv-settings-toggle").hidden = true;
  $("group-info-toggle").hidden = true;
  $("group-ended").hidden = true;
  $("peer-name").textContent = "Select a conversation";
  delete $("peer-name").dataset.user;
  $("peer-name").title = "";
  $("peer-status").textContent = "";
  $("peer-avatar").textContent = "";
  $("peer-avatar").style.background = "transparent";
  const empty = document.createElement("div");
  empty.className = "empty";
  empty.textContent = "No conversation selected.";
  $("messages").replaceChildren(empty);
  ($("text") as HTMLTextAreaElement).disabled = true;
  ($("send") as HTMLButtonElement).disabled = true;
  renderList();
}

$("back").addEventListener("click", () => {
  const was = current;
  closeConversation();
  if (was) document.querySelector<HTMLElement>(`[data-testid="conv-${CSS.escape(keyOf(was))}"]`)?.focus();
});

function renderHeader() {
  if (!current) return;
  const gid = gidOf(current);
  const title = titleOf(current);
  const peer = gid ? undefined : peerOf(current);
  $("peer-name").textContent = title;
  // The id stays readable (tooltip) and testable (data-user) when a name is shown.
  if (peer) $("peer-name").dataset.user = peer;
  else delete $("peer-name").dataset.user;
  $("peer-name").title = peer && peer !== title ? peer : "";
  avatar($("peer-avatar"), title, peer);
  $("conv-settings-toggle").hidden = false;
  $("group-info-toggle").hidden = !gid;
  const st = $("peer-status");
  if (gid) {
    const g = groups.get(gid);
    st.textContent = groups.ended(gid) ? (g?.dismissed ? "dismissed" : "you left") : g ? `${g.memberCount} members${g.muteAll ? " · muted" : ""}` : "";
    st.className = "presence";
  } else {
    const o = online.get(peer!);
    st.textContent = o === undefined ? "" : o ? "online" : "offline";
    st.className = `presence${o ? " online" : ""}`;
  }
  const who = typingNow.typing(current).map((u) => groups.display(gid, u));
  const ty = $("typing");
  ty.textContent = who.length ? `${who.join(", ")} ${who.length > 1 ? "are" : "is"} typing…` : "";
  st.hidden = who.length > 0;
}

/** The composer is read-only in a group the user left (or that was dismissed). */
function renderComposerState() {
  const ta = $("text") as HTMLTextAreaElement;
  const gid = gidOf(current);
  const ended = !!gid && groups.ended(gid);
  const bar = $("group-ended");
  bar.hidden = !ended;
  if (ended) bar.textContent = groups.get(gid!)?.dismissed ? "This group was dismissed. Its history stays readable." : "You are no longer a member of this group. Its history stays readable.";
  ta.disabled = !current || ended;
  ($("send") as HTMLButtonElement).disabled = !current || ended;
  ($("attach-toggle") as HTMLButtonElement).disabled = !current || ended;
  ta.placeholder = ended ? "You can't send to this group" : gid ? "Write a message… (@ to mention)" : "Write a message…";
  if (ended) closeMentions();
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

/** The lowest seq the user may read in a conversation ([P-1], [GR-18]), at least 1. */
function readableFloor(convId: string): bigint {
  const st = client?.conversation(convId);
  let f = 1n;
  if (st && st.clearedSeq + 1n > f) f = st.clearedSeq + 1n;
  if (st && st.minReadableSeq > f) f = st.minReadableSeq;
  return f;
}

/** Held messages from the readable floor up ([CH-2], [GR-18]: a group re-joined reads from the new join). */
function visibleMessages(convId: string): Message[] {
  const floor = readableFloor(convId);
  return (client?.messages(convId) ?? []).filter((m) => m.seq >= floor);
}

let olderLoading = false;
async function loadOlder() {
  if (!client || !current || olderLoading || exhausted.has(current)) return;
  const conv = current;
  const held = visibleMessages(conv);
  if (held.length && held[0].seq <= readableFloor(conv)) return;
  olderLoading = true;
  const box = $("messages");
  const before = box.scrollHeight - box.scrollTop;
  try {
    const r = await client.history(conv);
    if (!r.more) exhausted.add(conv);
  } catch (e) {
    reportUnlessOffline(e);
  } finally {
    olderLoading = false;
  }
  if (current !== conv) return;
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
  const gid = gidOf(current);
  const msgs = visibleMessages(current);
  const keepFocus = document.activeElement instanceof HTMLElement && box.contains(document.activeElement) ? document.activeElement.dataset.focusKey : undefined;
  const nodes: HTMLElement[] = [];
  if (msgs.length && msgs[0].seq > readableFloor(current) && !exhausted.has(current)) {
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
      if (m.content?.body.case === "tip") n.dataset.kind = m.content.body.value.kind;
      n.setAttribute("role", "note");
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
    nodes.push(renderMessage(m, direct ? tickOf(state, m.seq) : undefined, gid));
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
    e.textContent = gid ? "No messages yet" : "Say hello 👋";
    nodes.push(e);
  }
  box.replaceChildren(...nodes);
  if (keepFocus) box.querySelector<HTMLElement>(`[data-focus-key="${keepFocus}"]`)?.focus();
  if (stickToBottom || atBottom) box.scrollTop = box.scrollHeight;
}

let receiptTimer: ReturnType<typeof setTimeout> | undefined;
/** Refreshes who-read counts of my recent messages in the open group (debounced). */
function scheduleReceipts() {
  if (receiptTimer) clearTimeout(receiptTimer);
  receiptTimer = setTimeout(() => {
    receiptTimer = undefined;
    const gid = gidOf(current);
    if (!gid || !client || groups.ended(gid) || !groups.receiptsServed(gid)) return;
    const mine = visibleMessages(current!)
      .filter((m) => m.sender === me && !m.recalled && !m.deleted && m.content?.body.case !== "tip")
      .slice(-10)
      .map((m) => m.seq);
    void groups.loadReceipts(gid, mine);
  }, 150);
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

/** One message bubble: sender (groups), quote, body, meta (time, edited, tick or who-read), reactions, actions. */
function renderMessage(m: Message, tick: ReturnType<typeof tickOf> | undefined, gid: string | undefined): HTMLElement {
  const mine = m.sender === me;
  const el = document.createElement("div");
  const mentions = m.content?.mentions;
  const mentionsMe = !mine && !!mentions && (mentions.all || mentions.userIds.includes(me));
  el.className = `msg ${mine ? "mine" : "theirs"}${mentionsMe ? " mentions-me" : ""}`;
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
      img.alt = `Image from ${gid ? groups.display(gid, m.sender) : nameOf(m.sender)}`;
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
    who.textContent = q.sender === me ? "You" : gid ? groups.display(gid, q.sender) : nameOf(q.sender);
    qb.append(who, document.createTextNode(` ${quotePreview(q)}`));
    el.prepend(qb);
  }
  if (gid && !mine) {
    const s = document.createElement("span");
    s.className = "sender";
    s.dataset.testid = "message-sender";
    s.textContent = groups.display(gid, m.sender);
    el.prepend(s);
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
  if (mine && gid) {
    const r = groups.receipt(gid, m.seq);
    if (r) {
      const t = document.createElement("span");
      t.className = `tick${r.unreadCount === 0 && r.readCount > 0 ? " read" : ""}`;
      t.dataset.testid = "group-read-count";
      t.textContent = r.unreadCount === 0 && r.readCount > 0 ? ` · Read by all ${r.readCount}` : ` · Read by ${r.readCount}`;
      t.title = r.read.length ? `Read by ${r.read.join(", ")}${r.unread.length ? `; not yet by ${r.unread.join(", ")}` : ""}` : "Nobody has read it yet";
      meta.append(t);
    }
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

// ------------------------------------------------------------------ conversation settings

$("conv-settings-toggle").addEventListener("click", () => {
  const p = $("conv-settings");
  p.hidden = !p.hidden;
  $("conv-settings-toggle").setAttribute("aria-expanded", String(!p.hidden));
  renderSettings();
  if (!p.hidden) $("conv-pin").focus();
});
$("conv-settings").addEventListener("keydown", (e) => {
  if (e.key === "Escape") {
    $("conv-settings").hidden = true;
    $("conv-settings-toggle").setAttribute("aria-expanded", "false");
    $("conv-settings-toggle").focus();
  }
});

function renderSettings() {
  if (!client || !current) return;
  const st = client.conversation(current);
  const pin = $("conv-pin");
  pin.setAttribute("aria-pressed", String(!!st?.pinned));
  pin.replaceChildren(icon("pin"), st?.pinned ? "Pinned" : "Pin");
  const mute = $("conv-mute");
  mute.setAttribute("aria-pressed", String(!!st?.muted));
  mute.replaceChildren(icon("bell-off"), st?.muted ? "Muted" : "Mute");
  const gid = gidOf(current);
  $("group-notify-row").hidden = !gid || groups.ended(gid);
  ($("group-notify") as HTMLSelectElement).value = String(st?.groupNotify ?? GroupNotify.NOTIFY);
}

async function updateConv(patch: { pinned?: boolean; muted?: boolean; hidden?: boolean }) {
  if (!client || !current) return;
  try {
    await client.updateConversation({ convId: current, ...patch });
  } catch (e) {
    showError(e);
  }
  renderSettings();
  renderList();
}

$("conv-pin").addEventListener("click", () => void updateConv({ pinned: !client?.conversation(current ?? "")?.pinned }));
$("conv-mute").addEventListener("click", () => void updateConv({ muted: !client?.conversation(current ?? "")?.muted }));
$("conv-hide").addEventListener("click", async () => {
  if (!client || !current) return;
  const conv = current;
  try {
    await client.updateConversation({ convId: conv, hidden: true });
    if (current === conv) closeConversation();
  } catch (e) {
    showError(e);
  }
});
$("conv-clear").addEventListener("click", async () => {
  if (!client || !current) return;
  if (!confirm(`Clear the history of ${titleOf(current)} on your devices? The others keep theirs.`)) return;
  try {
    await client.clearHistory({ convId: current, upToSeq: 0n });
  } catch (e) {
    showError(e);
  }
  renderMessages(true);
  renderList();
});
$("group-notify").addEventListener("change", async () => {
  const gid = gidOf(current);
  if (!client || !gid) return;
  try {
    await client.setGroupNotify({ groupId: gid, notify: Number(($("group-notify") as HTMLSelectElement).value) });
  } catch (e) {
    showError(e);
  }
  renderSettings();
});

// ------------------------------------------------------------------ lifecycle actions

async function react(m: Message, key: string, remove: boolean) {
  if (!client) return;
  try {
    await client.react(m.convId, m.seq, key, remove);
  } catch (err) {
    showComposerError(err);
  }
  renderMessages(false);
}

async function recall(m: Message) {
  if (!client) return;
  try {
    await client.recall(m.convId, m.seq);
    $("composer-error").textContent = "";
  } catch (err) {
    showComposerError(err);
  }
}

async function deleteForMe(m: Message) {
  if (!client) return;
  try {
    await client.deleteMessages(m.convId, [m.seq]);
  } catch (err) {
    showComposerError(err);
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
  closeMentions();
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
  $("compose-label").textContent = editing ? "Editing message" : `Replying to ${m.sender === me ? "yourself" : groups.display(gidOf(m.convId), m.sender)}`;
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
  if (upTo > 0n && (!st || st.readSeq < upTo || st.unread > 0n || st.mentioned)) {
    client.markRead(current, upTo).then(() => renderList(), reportUnlessOffline);
  }
}
document.addEventListener("visibilitychange", markReadIfVisible);

// ------------------------------------------------------------------ @-mentions (groups)

interface MentionOption {
  id: string;
  label: string;
}
let mention: { start: number; end: number; options: MentionOption[]; active: number } | undefined;
const mentionOpen = () => mention !== undefined;

/** Opens, updates or closes the mention list from the text before the caret ("@que|"). */
function updateMentions() {
  const ta = $("text") as HTMLTextAreaElement;
  const gid = gidOf(current);
  if (!gid || editing || ta.disabled || document.activeElement !== ta) return closeMentions();
  const caret = ta.selectionStart ?? ta.value.length;
  const m = /(^|\s)@([A-Za-z0-9_.@-]*)$/.exec(ta.value.slice(0, caret));
  if (!m) return closeMentions();
  const query = m[2].toLowerCase();
  // Candidates: every member, not only the panel's loaded pages (read once, on demand, bounded).
  if (!groups.memberPages(gid)) void groups.loadMembers(gid, false);
  if (!groups.rosterDone(gid)) void groups.loadRoster(gid);
  const options: MentionOption[] = [];
  for (const x of groups.knownMembers(gid)) {
    if (x.userId === me) continue;
    const name = x.nickname || names.peek(x.userId) || "";
    if (!x.userId.toLowerCase().startsWith(query) && !(name && name.toLowerCase().startsWith(query))) continue;
    options.push({ id: x.userId, label: name && name !== x.userId ? `${name} (${x.userId})` : x.userId });
    if (options.length === 8) break;
  }
  if ("all".startsWith(query)) options.push({ id: "all", label: "all — everyone in the group" });
  if (!options.length) return closeMentions();
  const prevActive = mention?.options[mention.active]?.id;
  const active = Math.max(0, options.findIndex((o) => o.id === prevActive));
  mention = { start: caret - m[2].length - 1, end: caret, options, active };
  renderMentionList();
}

function renderMentionList() {
  const list = $("mention-list");
  const ta = $("text");
  if (!mention) return;
  const mm = mention;
  list.replaceChildren(
    ...mm.options.map((o, i) => {
      const li = document.createElement("li");
      li.id = `mention-opt-${i}`;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(i === mm.active));
      li.dataset.testid = "mention-option";
      li.dataset.user = o.id;
      li.className = i === mm.active ? "active" : "";
      li.textContent = `@${o.label}`;
      li.addEventListener("mousedown", (e) => {
        e.preventDefault(); // keep the composer's focus
        pickMention(i);
      });
      return li;
    }),
  );
  list.hidden = false;
  ta.setAttribute("aria-expanded", "true");
  ta.setAttribute("aria-activedescendant", `mention-opt-${mm.active}`);
}

function closeMentions() {
  mention = undefined;
  $("mention-list").hidden = true;
  $("mention-list").replaceChildren();
  $("text").setAttribute("aria-expanded", "false");
  $("text").removeAttribute("aria-activedescendant");
}

function pickMention(i: number) {
  if (!mention) return;
  const o = mention.options[i];
  const ta = $("text") as HTMLTextAreaElement;
  const insert = `@${o.id} `;
  ta.value = ta.value.slice(0, mention.start) + insert + ta.value.slice(mention.end);
  const caret = mention.start + insert.length;
  ta.setSelectionRange(caret, caret);
  mentionPicks.add(o.id);
  closeMentions();
  ta.focus();
}

/** The mentions of a group message: picked or typed "@member" tokens, and "@all". */
function mentionsOf(text: string, gid: string): { userIds: string[]; all: boolean } | undefined {
  const known = new Set(groups.knownMembers(gid).map((m) => m.userId));
  const userIds = new Set<string>();
  let all = false;
  for (const m of text.matchAll(/(?:^|\s)@([A-Za-z0-9_.@-]+)/g)) {
    let id = m[1];
    while (id && !known.has(id) && !mentionPicks.has(id) && id !== "all" && /[.@-]$/.test(id)) id = id.slice(0, -1);
    if (id === "all") all = true;
    else if (id !== me && (known.has(id) || mentionPicks.has(id))) userIds.add(id);
  }
  return userIds.size || all ? { userIds: [...userIds], all } : undefined;
}

// ------------------------------------------------------------------ composer

async function send() {
  const ta = $("text") as HTMLTextAreaElement;
  const text = ta.value.trim();
  if (!text || !client || !current || ta.disabled) return;
  $("composer-error").textContent = "";
  notifier?.stop();
  closeMentions();
  if (editing) {
    const m = editing;
    cancelCompose();
    ta.value = "";
    try {
      await client.editText(m.convId, m.seq, text);
    } catch (err) {
      showComposerError(err);
    }
    return;
  }
  ta.value = "";
  const conv = current;
  const gid = gidOf(conv);
  const quote = replyTo ? { seq: replyTo.seq, serverMsgId: replyTo.serverMsgId, sender: replyTo.sender, preview: textOf(replyTo).slice(0, 120) } : undefined;
  const mentions = gid ? mentionsOf(text, gid) : undefined;
  mentionPicks.clear();
  cancelCompose();
  const gen = sessionGen;
  const p = client.send(conv, { body: { case: "text", value: { text } }, quote, mentions });
  renderMessages(true);
  try {
    await p; // the acknowledged message arrives as a `message` event
  } catch (err) {
    if (gen !== sessionGen) return; // signed out meanwhile: the send was dropped with the session
    if (current === conv) showComposerError(err);
    else showError(err);
  }
  if (current === conv) renderMessages(true);
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  void send();
});
$("text").addEventListener("keydown", (e) => {
  if (mention) {
    const n = mention.options.length;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      mention.active = (mention.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
      renderMentionList();
      return;
    }
    if (e.key === "Enter" || e.key === "Tab") {
      e.preventDefault();
      pickMention(mention.active);
      return;
    }
    if (e.key === "Escape") {
      e.preventDefault();
      closeMentions();
      return;
    }
  }
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    void send();
  } else if (e.key === "Escape" && (replyTo || editing)) {
    e.preventDefault();
    cancelCompose();
  }
});
$("text").addEventListener("input", () => {
  updateMentions();
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
$("text").addEventListener("blur", () => setTimeout(() => document.activeElement !== $("text") && closeMentions(), 100));
$("text").addEventListener("click", () => updateMentions());

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
  const gen = sessionGen;
  const p = client.send(conv, content);
  renderMessages(true);
  try {
    await p;
  } catch (err) {
    if (gen !== sessionGen) return; // signed out meanwhile
    showComposerError(err);
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
