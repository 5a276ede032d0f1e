/**
 * The resilient client: keeps one session up (reconnect with exponential
 * backoff and jitter), sends with retry until acknowledged, syncs with a
 * persisted sync token, fills gaps, and emits typed events.
 *
 * Local state per (user, device), persisted in a `KeyValueStore`
 * (localStorage in browsers): the sync token and the conversation states
 * with each conversation's contiguous seq. Messages are kept in memory only:
 * like the spec's "newest page" client ([Y-9] note), older messages are
 * history loaded on demand with `history()`.
 *
 * Invariants:
 * - an outbox entry keeps its `client_msg_id` across every resend, so a
 *   retried send is never stored twice ([S-4]); it settles only on a
 *   SendAck or a non-retryable error;
 * - each message is emitted once per client (keyed by conversation + seq),
 *   in ascending seq order within a sync or pull; a pushed message after a
 *   gap is emitted only together with the pulled gap, and a conversation's
 *   contiguous seq never moves past a message that was not stored (a gap
 *   pull that fails is redone by the next sync);
 * - the sync token is stored only after the page it came with is processed;
 * - lifecycle ([UP-2]): per conversation the client stores the `update_seq` it
 *   has applied, and advances it only from `PullUpdates` answers (pushes are
 *   best effort, [UP-4]); a `ConversationState` (sync, push or answer) with a
 *   higher `update_seq` starts one catch-up per conversation at a time. A
 *   pushed update and a pulled current form are both emitted as
 *   `messageUpdate`, and a held message is replaced only by a form with a
 *   higher or equal `update_seq`;
 * - pushed (and pulled) messages are acknowledged with `PushAck` (cumulative
 *   contiguous seq per conversation, batched), which feeds delivery receipts;
 * - syncs run one at a time, in order (the one after a connect, `syncNow`);
 *   a sync page's settings, relations and profiles are emitted like pushes;
 * - between authoritative states (sync, push, answer), each new message keeps
 *   the held state current as the broker computes it: `max_seq`, last message,
 *   `unread`; one's own message moves `read_seq` to it (nothing unread, no
 *   mention pending); a group message naming the user or @all above `read_seq`
 *   sets `mentioned` ([GR-19]), and `conversation` fires when `mentioned`
 *   changes. A server state older than the held messages gets them applied
 *   again, so it never takes back a newer message's count or mention;
 * - a state taken from the server never moves `read_seq`, `cleared_seq` or the
 *   peer's read / delivered seqs back (an answer and a push are not ordered,
 *   [PU-2]); a higher `cleared_seq` drops the held messages at or below it;
 * - a conversation is held only once a sync, a `conversation` push (taken as
 *   sync's first sight), a message (the first pushed one: older seqs are
 *   history, not a gap) or this client's own request brought it:
 *   receipts and updates of one not held are emitted, never stored as an empty
 *   state (which the next sync would pull from seq 1);
 * - `history()` holds only messages at or below the contiguous seq; newer ones
 *   are pulled by the gap rule, so each is counted and emitted once;
 * - `peer_read_seq` is only written for 1:1 conversations (by the peer's
 *   receipts); a group's read receipts ([GR-21]) are only emitted as `receipt`;
 * - answers that carry the user's own state are taken at once: a
 *   `ConversationState` (mark read, conversation flags, clear history, group
 *   notify) replaces the held state and fires `conversation`; `setGlobalDnd`
 *   updates `globalDnd` and fires `settings`. Other answers only resolve
 *   their promise (the requests of `MissiveRequests`, see requests.ts).
 */
import { clone, create, fromJson, toJson, type MessageInitShape } from "@bufbuild/protobuf";
import {
  type ClearHistorySchema,
  type ConversationState,
  ConversationStateSchema,
  type Messages,
  type ReadReceipt,
  type SendAck,
  type SetGlobalDndSchema,
  type UpdateConversationSchema,
  type UserSettings,
  UserSettingsSchema,
} from "./gen/conversation_pb.ts";
import type { Kicked, Presence, Profile, Relation } from "./gen/user_pb.ts";
import type { GroupApplication, SetGroupNotifySchema } from "./gen/group_pb.ts";
import {
  type Message,
  type Content,
  ContentSchema,
  MessageSchema,
  MessageFlagsSchema,
} from "./gen/message_pb.ts";
import {
  type DeliveryReceipt,
  type Extensions,
  type ForwardResult,
  type MessageUpdate,
  MessageUpdateSchema,
  MessageUpdate_Kind,
  type MessageUpdates,
  type Reactions,
  type ReactionUsers,
  type Translation,
  type TypingEvent,
} from "./gen/lifecycle_pb.ts";
import { applyUpdate } from "./lifecycle.ts";
import { Platform } from "./gen/platform_pb.ts";
import {
  Connection,
  ErrorCodes,
  MissiveError,
  REQUEST_TIMED_OUT,
  isRetryableClose,
  type RequestOp,
  type ResponseResult,
} from "./connection.ts";
import { MissiveRequests, unexpectedResult } from "./requests.ts";
import type { TransportFactory } from "./transport.ts";

export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** In-memory store (the default outside browsers). */
export class MemoryStore implements KeyValueStore {
  private m = new Map<string, string>();
  getItem(k: string) {
    return this.m.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.m.set(k, v);
  }
}

export type ConnectionState = "connecting" | "online" | "offline" | "ended";

export interface ClientEvents {
  state: (s: ConnectionState, detail: string) => void;
  message: (m: Message) => void;
  /**
   * A participant (or the user's other device) read a conversation ([R-2]). For a
   * 1:1 peer the held state's `peerReadSeq` already moved; a group's receipts
   * ([GR-21]) leave the state alone (ask `getGroupReceipt` who read what).
   */
  receipt: (r: ReadReceipt) => void;
  /**
   * The user's state of a conversation changed: from sync, a push, an answer to
   * this client's request, or a new message that set or cleared `mentioned`.
   */
  conversation: (c: ConversationState) => void;
  presence: (p: Presence) => void;
  kicked: (k: Kicked) => void;
  tokenExpired: () => void;
  /**
   * A message changed (recall, edit, delete, reactions, extensions; spec 18):
   * from a push, from this client's own request, or pulled by `PullUpdates`
   * after a sync ([UP-2]). `message` is the current form the client now holds
   * (`messages()` returns it too), or for a message not held in memory the
   * form that came with the update (partial for a push). A pulled form comes
   * with `update.kind = KIND_UNSPECIFIED` unless it is recalled or deleted
   * (several changes may be folded into it).
   */
  messageUpdate: (update: MessageUpdate, message: Message | undefined) => void;
  /** Someone is typing (or stopped) in a conversation (transient, 18.6). */
  typing: (t: TypingEvent) => void;
  /** The 1:1 peer holds every message up to `deliveredSeq` (18.7). */
  delivery: (d: DeliveryReceipt) => void;
  /**
   * The user's settings (global DND, 8.9): pushed after a change on another
   * device, carried by a sync page, or answered to this client's `setGlobalDnd`.
   * `globalDnd` already holds the new value.
   */
  settings: (s: UserSettings) => void;
  /** A profile changed: the user's own (on another device) or a friend's ([PR-3]); also each profile of a sync page. */
  profile: (p: Profile) => void;
  /**
   * The user's relation with someone changed ([N-1]): a friend request came in,
   * was answered, a friendship or block changed on another device; also each
   * relation of a sync page. The requesting connection gets the answer instead.
   */
  relation: (r: Relation) => void;
  /**
   * A group application or invitation ([GR-8]-[GR-10]): a new application (to
   * owner and admins), an invitation waiting for consent (to the invitee; accept
   * with `joinGroup`, answer with `respondGroupApplication` naming oneself), the
   * outcome of the user's own application, or an invitation the invitee declined
   * (to the inviter and the invitee's other devices, [GR-9a]).
   */
  groupApplication: (a: GroupApplication) => void;
}

export interface ClientOptions {
  /** Transports to try in order on every (re)connect (e.g. WebTransport, then WebSocket). */
  transports: TransportFactory[];
  /** A token, or a function returning a fresh one (called on every connect). */
  token: string | (() => Promise<string>);
  deviceId: string;
  platform?: Platform;
  store?: KeyValueStore;
  /** Backoff between reconnect attempts: first delay and cap, ms. */
  backoffMs?: { initial: number; max: number };
  requestTimeoutMs?: number;
  /**
   * How long opening a transport may take, and then the handshake (ms each; default
   * 10 000). A timed-out attempt is abandoned and the client reconnects with backoff.
   */
  connectTimeoutMs?: number;
  /** Messages fetched per history page. */
  pageSize?: number;
  /**
   * How long an unacknowledged send keeps being resent before it fails (ms;
   * default 24 h). It must stay well below the server's dedup retention
   * window (spec [I-2], [S-4]), after which a resend may be stored twice.
   */
  sendGiveUpMs?: number;
  /** How long pushed messages are collected before one `PushAck` (ms; default 200). */
  pushAckDelayMs?: number;
}

/** Options of a send (spec 18.8). */
export interface SendOptions {
  flags?: MessageInitShape<typeof MessageFlagsSchema>;
}

/** Default of `ClientOptions.sendGiveUpMs`: one day. */
export const SEND_GIVE_UP_MS = 24 * 3600 * 1000;

interface Outbox {
  convId: string;
  clientMsgId: string;
  content: MessageInitShape<typeof ContentSchema>;
  flags?: MessageInitShape<typeof MessageFlagsSchema>;
  resolve: (a: SendAck) => void;
  reject: (e: MissiveError) => void;
  inFlight: boolean;
  /** Transmitted at least once: later transmissions are resends ([S-7]). */
  sent: boolean;
  /** When `send` was called (Date.now()). */
  createdAt: number;
}

interface Conv {
  state: ConversationState;
  /** Highest seq such that everything from the client's starting point up to it is held or was skipped as history. */
  contiguous: bigint;
  messages: Map<bigint, Message>;
  /** The update_seq this client has applied ([UP-2]); advanced only by PullUpdates answers. */
  applied: bigint;
}

/** Pages one catch-up may pull before it yields to the next trigger (bound). */
const MAX_UPDATE_PAGES = 1000;

/** Next reconnect delay: exponential with full jitter in [d/2, d]. */
export function backoffDelay(attempt: number, initial: number, max: number, rand = Math.random): number {
  const d = Math.min(max, initial * 2 ** Math.min(attempt, 20));
  return Math.round(d / 2 + (rand() * d) / 2);
}

export class MissiveClient extends MissiveRequests {
  private conn?: Connection;
  private convs = new Map<string, Conv>();
  private outbox: Outbox[] = [];
  /** Per conversation: the highest seq a running gap pull will bring. */
  private filling = new Map<string, bigint>();
  /** Per conversation: a running update catch-up; `again` = a newer update_seq arrived meanwhile. */
  private updating = new Map<string, { again: boolean }>();
  /** Pending PushAck: conversation -> contiguous seq. */
  private acks = new Map<string, bigint>();
  private ackTimer?: ReturnType<typeof setTimeout>;
  private listeners: { [K in keyof ClientEvents]?: ClientEvents[K][] } = {};
  private running = false;
  private attempt = 0;
  private timer?: ReturnType<typeof setTimeout>;
  private seqCounter = 0;
  /** The user's settings as last synced, pushed or answered; persisted with the sync token. */
  private settingsValue = create(UserSettingsSchema);
  /** The sync running now (syncs run one at a time, in order). */
  private syncing: Promise<void> = Promise.resolve();
  private readonly store: KeyValueStore;
  state: ConnectionState = "offline";
  /** The transport of the current session ("websocket", "webtransport"), if online. */
  get transport(): string | undefined {
    return this.conn?.transport;
  }
  userId = "";

  constructor(private readonly o: ClientOptions) {
    super();
    this.store = o.store ?? new MemoryStore();
  }

  /** Global do-not-disturb (8.9): the last value synced, pushed or set by `setGlobalDnd`. */
  get globalDnd(): boolean {
    return this.settingsValue.globalDnd;
  }

  on<K extends keyof ClientEvents>(event: K, fn: ClientEvents[K]): () => void {
    const list = (this.listeners[event] ??= []) as ClientEvents[K][];
    list.push(fn);
    return () => {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    };
  }

  private emit<K extends keyof ClientEvents>(event: K, ...args: Parameters<ClientEvents[K]>) {
    for (const fn of this.listeners[event] ?? []) {
      try {
        (fn as (...a: unknown[]) => void)(...args);
      } catch (e) {
        console.error(`missive: ${event} listener threw`, e);
      }
    }
  }

  private setState(s: ConnectionState, detail = "") {
    this.state = s;
    this.emit("state", s, detail);
  }

  /** Starts connecting (and reconnecting) until `stop()`. */
  start() {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    void this.connect();
  }

  /**
   * Closes the session and stops reconnecting. Pending sends stay queued (a
   * later `start()` resends them) unless `rejectPending`: then each rejects
   * with a non-retryable `MissiveError` (code 0, "client stopped") and the
   * outbox is emptied, e.g. when the user signs out.
   */
  stop(opts: { rejectPending?: boolean } = {}) {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    if (opts.rejectPending) {
      const pending = this.outbox;
      this.outbox = [];
      for (const e of pending) e.reject(new MissiveError(0, "client stopped before the send was acknowledged", false));
    }
    this.conn?.close();
    this.conn = undefined;
    this.setState("offline", "stopped");
  }

  private key(k: string) {
    return `missive:${this.userId}:${this.o.deviceId}:${k}`;
  }

  private async connect() {
    if (!this.running) return;
    this.setState("connecting");
    let lastErr: unknown = new Error("no transport configured");
    for (const factory of this.o.transports) {
      try {
        const token = typeof this.o.token === "string" ? this.o.token : await this.o.token();
        const conn = await Connection.open(factory, {
          token,
          deviceId: this.o.deviceId,
          platform: this.o.platform ?? Platform.WEB,
          requestTimeoutMs: this.o.requestTimeoutMs,
          handshakeTimeoutMs: this.o.connectTimeoutMs,
        });
        if (!this.running) {
          conn.close();
          return;
        }
        this.onConnected(conn);
        return;
      } catch (e) {
        lastErr = e;
        if (e instanceof MissiveError && e.code !== 0 && !isRetryableClose(e.code)) break;
      }
    }
    this.onDisconnected(lastErr instanceof MissiveError ? lastErr.code : 0, String((lastErr as Error)?.message ?? lastErr));
  }

  private onConnected(conn: Connection) {
    this.conn = conn;
    this.attempt = 0;
    this.userId = conn.hello.userId;
    this.loadLocal();
    conn.onPush = (p) => this.onPush(p.event);
    conn.onClose = (code, msg) => {
      if (this.conn === conn) this.conn = undefined;
      this.onDisconnected(code, msg);
    };
    this.setState("online", conn.hello.sessionId);
    this.acks.clear();
    for (const e of this.outbox) e.inFlight = false;
    this.flushOutbox();
    this.runSync().catch((e) => console.warn("missive: sync failed", e));
  }

  private onDisconnected(code: number, message: string) {
    if (!this.running) return;
    if (code === ErrorCodes.KICKED) {
      this.running = false;
      this.setState("ended", message);
      return;
    }
    if (code === ErrorCodes.TOKEN_EXPIRED || code === ErrorCodes.TOKEN_REVOKED) {
      this.emit("tokenExpired");
      if (typeof this.o.token === "string") {
        this.running = false;
        this.setState("ended", message);
        return;
      }
    } else if (code !== 0 && !isRetryableClose(code)) {
      this.running = false;
      this.setState("ended", `${code} ${message}`);
      return;
    }
    this.setState("offline", message);
    const b = this.o.backoffMs ?? { initial: 500, max: 30_000 };
    const delay = backoffDelay(this.attempt++, b.initial, b.max);
    this.timer = setTimeout(() => void this.connect(), delay);
  }

  // ---------------------------------------------------------------- local state

  private loadLocal() {
    const settings = this.store.getItem(this.key("settings"));
    if (settings)
      try {
        this.settingsValue = fromJson(UserSettingsSchema, JSON.parse(settings));
      } catch {
        /* a bad stored value: the next sync brings the settings */
      }
    const raw = this.store.getItem(this.key("convs"));
    if (!raw || this.convs.size > 0) return;
    try {
      for (const [id, v] of Object.entries(JSON.parse(raw) as Record<string, { s: unknown; l: string; u?: string }>)) {
        const state = fromJson(ConversationStateSchema, v.s as never);
        this.convs.set(id, { state, contiguous: BigInt(v.l), messages: new Map(), applied: BigInt(v.u ?? "0") });
      }
    } catch {
      this.store.setItem(this.key("convs"), "{}");
    }
  }

  private saveLocal() {
    const out: Record<string, { s: unknown; l: string; u: string }> = {};
    for (const [id, c] of this.convs)
      out[id] = { s: toJson(ConversationStateSchema, c.state), l: c.contiguous.toString(), u: c.applied.toString() };
    this.store.setItem(this.key("convs"), JSON.stringify(out));
  }

  private conv(id: string): Conv {
    let c = this.convs.get(id);
    if (!c) {
      c = { state: create(ConversationStateSchema, { convId: id }), contiguous: 0n, messages: new Map(), applied: 0n };
      this.convs.set(id, c);
    }
    return c;
  }

  /** Stores a message; emits it if it is new. Returns true if new. */
  private store1(m: Message): boolean {
    if (m.seq === 0n) {
      // online_only (18.8): not stored, no seq; emitted once, never held.
      this.emit("message", m);
      return true;
    }
    const c = this.conv(m.convId);
    if (c.messages.has(m.seq)) return false;
    c.messages.set(m.seq, m);
    const mentionChanged = this.advanceState(c.state, m);
    while (c.messages.has(c.contiguous + 1n)) c.contiguous += 1n;
    this.emit("message", m);
    if (mentionChanged) this.emit("conversation", c.state);
    return true;
  }

  /**
   * Keeps the list view of a conversation current between authoritative states
   * from the server: a message above the state's `max_seq` becomes the last
   * message, un-hides the conversation and, as the broker counts it:
   * - one's own message (or tip) moves `read_seq` to it ([S-5], [GR-17], [GR-22]):
   *   nothing is unread any more, and no mention is above the read position;
   * - someone else's is unread unless `no_unread` (18.8), and a group message
   *   naming the user (or @all) above `read_seq` sets `mentioned` ([GR-19]).
   * Returns whether `mentioned` changed (the caller emits `conversation`).
   */
  private advanceState(st: ConversationState, m: Message): boolean {
    if (m.seq <= st.maxSeq) return false; // the state (sync, answer or push) already counts it
    const was = st.mentioned;
    st.maxSeq = m.seq;
    st.lastMessage = m;
    st.hidden = false;
    if (m.sender === this.userId) {
      if (m.seq > st.readSeq) st.readSeq = m.seq;
      st.unread = 0n;
      st.mentioned = false;
    } else if (m.seq > st.readSeq && m.seq > st.clearedSeq) {
      if (!m.flags?.noUnread) st.unread += 1n;
      if (m.seq >= st.minReadableSeq && mentionsUser(m, this.userId)) st.mentioned = true;
    }
    return st.mentioned !== was;
  }

  /**
   * A state from the server may be older than messages already held (an answer
   * computed before a message was stored, whose push came first): the held
   * messages above its `max_seq` are applied to it again, in order.
   */
  private replayHeld(c: Conv) {
    const above = [...c.messages.values()].filter((m) => m.seq > c.state.maxSeq).sort((a, b) => (a.seq < b.seq ? -1 : 1));
    for (const m of above) this.advanceState(c.state, m);
  }

  // ---------------------------------------------------------------- sync

  /**
   * Runs a sync after the one running now, if any (one at a time, in order).
   * `strict`: reject when there is no session (else there is nothing to do:
   * the next connect syncs).
   */
  private runSync(strict = false): Promise<void> {
    const next = this.syncing.catch(() => {}).then(() => this.sync(strict));
    this.syncing = next;
    return next;
  }

  private async sync(strict: boolean) {
    const conn = this.conn;
    if (!conn) {
      if (strict) throw new MissiveError(0, "not connected", true);
      return;
    }
    let token = this.store.getItem(this.key("sync")) ?? "";
    /** The stored token was refused ([Y-9] step 3): the broker's states replace the held ones as they are. */
    let restarted = false;
    for (;;) {
      let r;
      try {
        r = await conn.request({ case: "sync", value: { syncToken: token } });
      } catch (e) {
        if (e instanceof MissiveError && e.code === ErrorCodes.INVALID_SYNC_TOKEN && token !== "") {
          token = "";
          restarted = true;
          continue;
        }
        throw e;
      }
      if (r.case !== "sync") throw unexpectedResult("sync", r.case, "sync");
      if (r.value.settings) this.setSettings(r.value.settings);
      for (const x of r.value.relations) this.emit("relation", x);
      for (const x of r.value.profiles) this.emit("profile", x);
      for (const s of r.value.conversations) {
        const known = this.convs.get(s.convId);
        if (!known) {
          // First sight: everything up to max_seq is history (loaded on demand), and
          // history returns current forms: nothing to catch up on ([UP-2]).
          this.convs.set(s.convId, { state: s, contiguous: s.maxSeq, messages: new Map(), applied: s.updateSeq });
        } else {
          this.takeState(known, s, restarted);
          if (s.maxSeq > known.contiguous) {
            await this.pull(s.convId, known.contiguous + 1n, s.maxSeq);
            this.queueAck(s.convId);
          }
          if (s.updateSeq > known.applied) await this.catchUpUpdates(s.convId).catch(() => {});
        }
        // The held state: an answer or push taken during the pull may be newer than `s`.
        this.emit("conversation", this.convs.get(s.convId)?.state ?? s);
      }
      this.saveLocal();
      token = r.value.syncToken;
      this.store.setItem(this.key("sync"), token);
      if (!r.value.more) return;
    }
  }

  /** Pulls `from..=to` (paging), storing and emitting in seq order. */
  private async pull(convId: string, from: bigint, to: bigint) {
    const conn = this.conn;
    if (!conn) return;
    let next = from;
    while (next <= to) {
      const r = await conn.request({ case: "pull", value: { convId, fromSeq: next, toSeq: to } });
      if (r.case !== "messages") return;
      const c = this.conv(convId);
      if (r.value.minReadableSeq > c.contiguous + 1n) c.contiguous = r.value.minReadableSeq - 1n;
      for (const m of r.value.messages) this.store1(m);
      const last = r.value.messages.at(-1)?.seq;
      if (!r.value.more || last === undefined) break;
      next = last + 1n;
    }
    const c = this.conv(convId);
    if (c.contiguous < to) c.contiguous = to;
  }

  /**
   * Pulls `contiguous + 1..=upTo` in the background, storing and emitting in
   * seq order. `contiguous` stays put until they are stored, so if the pull
   * fails (the connection drops), the next sync pulls them again. One gap pull
   * per conversation at a time (a later, higher `upTo` starts another).
   */
  private fillGap(convId: string, upTo: bigint) {
    if ((this.filling.get(convId) ?? 0n) >= upTo) return;
    this.filling.set(convId, upTo);
    this.pull(convId, this.conv(convId).contiguous + 1n, upTo)
      .then(() => {
        this.saveLocal();
        this.queueAck(convId);
      })
      .catch(() => {})
      .finally(() => {
        if (this.filling.get(convId) === upTo) this.filling.delete(convId);
      });
  }

  private onPush(ev: import("./gen/frame_pb.ts").Push["event"]) {
    switch (ev.case) {
      case "message": {
        const m = ev.value;
        if (m.seq === 0n) {
          this.store1(m); // online_only (18.8): emitted, not held
          return;
        }
        const first = !this.convs.has(m.convId);
        const c = this.conv(m.convId);
        // First sight through a push (this client keeps the newest page, spec 9's
        // MAY): older messages are history loaded on demand, as a first-seen
        // conversation in a sync is; not a gap pulled (and emitted) from seq 1.
        if (first && m.seq > 1n) c.contiguous = m.seq - 1n;
        if (m.seq <= c.contiguous || c.messages.has(m.seq)) return; // already delivered
        if (m.seq === c.contiguous + 1n) {
          this.store1(m);
          this.saveLocal();
          this.queueAck(m.convId);
          return;
        }
        // A gap (sent while this session was down, or a catch-up still running):
        // pull the gap and this message together so events stay in seq order.
        this.fillGap(m.convId, m.seq);
        return;
      }
      case "readReceipt": {
        // `peer_read_seq` is the 1:1 peer's read position (8.2); a group's receipts
        // ([GR-21]) only reach the `receipt` event (who read what: getGroupReceipt).
        // Only held conversations are written: a receipt for one no sync brought yet
        // (a push during the first sync) must not leave an empty placeholder that the
        // next sync would take for a known conversation and pull from seq 1.
        const r = ev.value;
        const held = this.convs.get(r.convId);
        if (held && r.convId.startsWith("p:") && r.reader !== this.userId) {
          if (r.readSeq > held.state.peerReadSeq) {
            held.state.peerReadSeq = r.readSeq;
            this.saveLocal();
          }
        } else if (held && r.reader === this.userId) {
          // Another of the user's devices read (8.10): read_seq = max(local, receipt).
          // Read up to the newest message, nothing is unread or mentioned any more;
          // below it the broker's `conversation` push brings the exact counts.
          const st = held.state;
          if (r.readSeq > st.readSeq) {
            st.readSeq = r.readSeq;
            if (r.readSeq >= st.maxSeq) {
              st.unread = 0n;
              st.mentioned = false;
            }
            this.saveLocal();
            this.emit("conversation", st);
          }
        }
        this.emit("receipt", r);
        return;
      }
      case "conversation": {
        // 8.10: a state ahead of the held messages (e.g. a message whose push this
        // session missed) has its missing range pulled. A conversation seen for the
        // first time is taken as sync takes it: everything up to max_seq is history
        // (loaded on demand), not a gap from seq 1.
        const s = ev.value;
        const c = this.convs.get(s.convId);
        if (!c) {
          this.convs.set(s.convId, { state: s, contiguous: s.maxSeq, messages: new Map(), applied: s.updateSeq });
          this.setConversation(s);
          return;
        }
        this.setConversation(s);
        if (s.maxSeq > c.contiguous) this.fillGap(s.convId, s.maxSeq);
        return;
      }
      case "messageUpdate":
        this.onMessageUpdate(ev.value);
        return;
      case "typing":
        if (ev.value.userId !== this.userId) this.emit("typing", ev.value);
        return;
      case "deliveryReceipt": {
        const c = this.convs.get(ev.value.convId); // held conversations only (as receipts)
        if (c && ev.value.userId !== this.userId && ev.value.deliveredSeq > c.state.peerDeliveredSeq) {
          c.state.peerDeliveredSeq = ev.value.deliveredSeq;
          this.saveLocal();
        }
        this.emit("delivery", ev.value);
        return;
      }
      case "presence":
        this.emit("presence", ev.value);
        return;
      case "kicked":
        this.emit("kicked", ev.value);
        return;
      case "settings":
        this.setSettings(ev.value);
        return;
      case "profile":
        this.emit("profile", ev.value);
        return;
      case "relation":
        this.emit("relation", ev.value);
        return;
      case "groupApplication":
        this.emit("groupApplication", ev.value);
        return;
      default:
        return;
    }
  }

  /** Takes the user's settings (sync, push, answer); persists them and emits `settings`. */
  private setSettings(s: UserSettings) {
    this.settingsValue = s;
    this.store.setItem(this.key("settings"), JSON.stringify(toJson(UserSettingsSchema, s)));
    this.emit("settings", s);
  }

  /**
   * Takes an authoritative state (answer or push), persists and emits it, and
   * starts an update catch-up when it is ahead ([UP-2]).
   */
  private setConversation(s: ConversationState) {
    const c = this.conv(s.convId);
    this.takeState(c, s);
    this.saveLocal();
    this.emit("conversation", c.state);
    if (c.state.updateSeq > c.applied && this.conn) this.catchUpUpdates(s.convId).catch(() => {});
  }

  /**
   * Makes `s` (from sync, a push or an answer) the held state of `c`:
   * - drops held messages at or below its `cleared_seq` ([CH-3], [Y-9] step 4);
   * - [DL-2]: a state answered or pushed by other requests carries the stored last
   *   message: this user's own deletions (and any newer form held) are applied;
   * - the positions that only move forward (`read_seq`, `cleared_seq`, the 1:1 peer's
   *   read and delivered seqs) never go back: nothing orders an answer against a push
   *   ([PU-2], [Q-4]), so a state computed before a change this client already took
   *   keeps that change (`unread` then at most what is above the read floor; read to
   *   `max_seq`, no mention);
   * - held messages above its `max_seq` are applied to it again (`replayHeld`).
   * `asIs`: a sync restarted from "" after its token was refused; the held positions
   * may come from another server's data and are not kept.
   */
  private takeState(c: Conv, s: ConversationState, asIs = false) {
    const was = c.state;
    if (was !== s && !asIs) {
      let raised = false;
      if (was.readSeq > s.readSeq) {
        s.readSeq = was.readSeq;
        raised = true;
      }
      if (was.clearedSeq > s.clearedSeq) {
        s.clearedSeq = was.clearedSeq;
        raised = true;
      }
      if (was.peerReadSeq > s.peerReadSeq) s.peerReadSeq = was.peerReadSeq;
      if (was.peerDeliveredSeq > s.peerDeliveredSeq) s.peerDeliveredSeq = was.peerDeliveredSeq;
      if (raised) {
        let floor = s.readSeq > s.clearedSeq ? s.readSeq : s.clearedSeq;
        if (s.minReadableSeq > floor + 1n) floor = s.minReadableSeq - 1n;
        const most = s.maxSeq > floor ? s.maxSeq - floor : 0n;
        if (s.unread > most) s.unread = most;
        if (s.readSeq >= s.maxSeq) s.mentioned = false;
      }
    }
    if (s.clearedSeq > 0n) for (const seq of c.messages.keys()) if (seq <= s.clearedSeq) c.messages.delete(seq);
    const last = s.lastMessage;
    const held = last ? c.messages.get(last.seq) : undefined;
    if (last && held && ((held.deleted && !last.deleted) || held.updateSeq > last.updateSeq)) s.lastMessage = held;
    c.state = s;
    this.replayHeld(c);
  }

  // ---------------------------------------------------------------- lifecycle updates

  private onMessageUpdate(u: MessageUpdate) {
    const c = this.convs.get(u.convId);
    if (!c) {
      // A conversation no sync brought yet: nothing held to change (and no placeholder,
      // which the next sync would take for a known conversation and pull from seq 1).
      this.emit("messageUpdate", u, u.message);
      return;
    }
    const held = c.messages.get(u.seq);
    const last = c.state.lastMessage?.seq === u.seq ? c.state.lastMessage : undefined;
    let current: Message | undefined;
    if (held) {
      const a = applyUpdate(held, u, this.userId);
      if (!a) return; // stale: a newer form is held
      c.messages.set(u.seq, a.message);
      current = a.message;
      if (a.refreshReactions) this.getReactions(u.convId, [u.seq]).catch(() => {});
    }
    if (last) {
      const a = applyUpdate(last, u, this.userId);
      if (a) c.state.lastMessage = a.message;
      current ??= a?.message;
    }
    this.emit("messageUpdate", u, current ?? u.message);
  }

  /**
   * Takes a current form (a pulled update, or the answer to this client's own
   * change): replaces the held message (and the list preview) unless a newer
   * form is held; emits `messageUpdate`.
   */
  private applyForm(m: Message, kind: MessageUpdate_Kind, by = "") {
    const c = this.conv(m.convId);
    const held = c.messages.get(m.seq);
    if (held && held.updateSeq > m.updateSeq) return;
    if (held) c.messages.set(m.seq, m);
    if (c.state.lastMessage?.seq === m.seq && c.state.lastMessage.updateSeq <= m.updateSeq) c.state.lastMessage = m;
    const u = create(MessageUpdateSchema, {
      kind,
      convId: m.convId,
      seq: m.seq,
      by: by || m.recalled?.by || "",
      atMs: m.recalled?.atMs || m.editedAtMs,
      message: m,
      updateSeq: m.updateSeq,
    });
    this.emit("messageUpdate", u, m);
  }

  /** The kind a pulled current form is reported with. */
  private static pulledKind(m: Message): MessageUpdate_Kind {
    if (m.recalled) return MessageUpdate_Kind.RECALLED;
    if (m.deleted) return MessageUpdate_Kind.DELETED;
    return MessageUpdate_Kind.KIND_UNSPECIFIED;
  }

  /** The update_seq applied for a conversation ([UP-2]); 0 if none. */
  appliedUpdateSeq(convId: string): bigint {
    return this.convs.get(convId)?.applied ?? 0n;
  }

  /**
   * Pulls the changes after the stored update_seq until the conversation's
   * state is reached ([UP-2]); one run per conversation at a time (a trigger
   * during a run makes it go round once more). Advances the stored value.
   */
  private async catchUpUpdates(convId: string): Promise<void> {
    const running = this.updating.get(convId);
    if (running) {
      running.again = true;
      return;
    }
    const run = { again: true };
    this.updating.set(convId, run);
    try {
      for (let rounds = 0; run.again && rounds < 16; rounds++) {
        run.again = false;
        const c = this.conv(convId);
        const target = c.state.updateSeq;
        if (target <= c.applied) continue;
        let after = c.applied;
        for (let page = 0; page < MAX_UPDATE_PAGES; page++) {
          const r = await this.pullUpdates(convId, after);
          after = r.updateSeq > after ? r.updateSeq : after;
          if (!r.more) {
            // Everything up to at least `target` (observed before the request) is applied.
            if (target > after) after = target;
            break;
          }
        }
        if (after > c.applied) {
          c.applied = after;
          this.saveLocal();
        }
      }
    } finally {
      this.updating.delete(convId);
    }
  }

  private queueAck(convId: string) {
    const c = this.convs.get(convId);
    if (!c || c.contiguous === 0n) return;
    this.acks.set(convId, c.contiguous);
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      const delivered = [...this.acks].map(([convId, seq]) => ({ convId, seq }));
      this.acks.clear();
      this.conn?.pushAck(delivered);
    }, this.o.pushAckDelayMs ?? 200);
  }

  // ---------------------------------------------------------------- sending

  /** Sends text; resolves once acknowledged (retrying across reconnects). */
  sendText(convId: string, text: string): Promise<SendAck> {
    return this.send(convId, { body: { case: "text", value: { text } } });
  }

  /**
   * Sends any content (with an optional quote, mentions) and send flags (18.8);
   * resolves once acknowledged. An `online_only` send is acknowledged with seq 0.
   */
  send(convId: string, content: MessageInitShape<typeof ContentSchema>, opts: SendOptions = {}): Promise<SendAck> {
    const clientMsgId = `${this.o.deviceId}-${Date.now().toString(36)}-${(this.seqCounter++).toString(36)}`;
    return new Promise((resolve, reject) => {
      this.outbox.push({ convId, clientMsgId, content, flags: opts.flags, resolve, reject, inFlight: false, sent: false, createdAt: Date.now() });
      this.flushOutbox();
    });
  }

  /** Sends not yet acknowledged (for "sending..." indicators). */
  pending(convId?: string): { convId: string; clientMsgId: string; content: Content }[] {
    return this.outbox
      .filter((o) => !convId || o.convId === convId)
      .map((o) => ({ convId: o.convId, clientMsgId: o.clientMsgId, content: create(ContentSchema, o.content) }));
  }

  private flushOutbox() {
    const conn = this.conn;
    if (!conn) return;
    const giveUp = this.o.sendGiveUpMs ?? SEND_GIVE_UP_MS;
    for (const e of this.outbox) {
      if (e.inFlight) continue;
      if (Date.now() - e.createdAt > giveUp) {
        // [S-4]: never resend past the server's dedup window; report the send as failed.
        this.outbox = this.outbox.filter((x) => x !== e);
        e.reject(new MissiveError(0, `send not acknowledged within ${giveUp} ms; not resent`, false));
        continue;
      }
      e.inFlight = true;
      // [S-7]: the id is ours; only its first transmission carries the promise.
      const firstAttempt = !e.sent;
      e.sent = true;
      conn
        .request({
          case: "send",
          value: { convId: e.convId, clientMsgId: e.clientMsgId, content: e.content, flags: e.flags, firstAttempt },
        })
        .then((r) => {
          this.outbox = this.outbox.filter((x) => x !== e);
          if (r.case !== "sendAck") return e.reject(new MissiveError(0, "unexpected result", false));
          // The sending session gets no push of its own message: build it from the ack.
          this.store1(
            create(MessageSchema, {
              convId: e.convId,
              seq: r.value.seq,
              serverMsgId: r.value.serverMsgId,
              clientMsgId: e.clientMsgId,
              sender: this.userId,
              senderDevice: this.o.deviceId,
              serverTimeMs: r.value.serverTimeMs,
              content: e.content,
              flags: e.flags,
            }),
          );
          this.saveLocal();
          e.resolve(r.value);
        })
        .catch((err: MissiveError) => {
          if (err.code === 0 || err.retryable) {
            e.inFlight = false; // resent on the next connection (same client_msg_id)
            if (err.message === REQUEST_TIMED_OUT && this.conn === conn && conn.isOpen) {
              // Probably a dead or stalled link (TCP backing off under loss): end it so
              // the client reconnects and resends now, as the Rust SDK does, instead of
              // resending into it until the idle timeout (90 s) notices.
              conn.close();
              return;
            }
            // RATE_LIMITED says how long to wait; otherwise retry after a second.
            const wait = Math.max(1000, err.retryAfterMs ?? 0);
            if (this.conn === conn && conn.isOpen) setTimeout(() => this.flushOutbox(), wait);
          } else {
            this.outbox = this.outbox.filter((x) => x !== e);
            e.reject(err);
          }
        });
    }
  }

  // ---------------------------------------------------------------- queries

  /** Sends one request on the current session (the base of every request method). */
  protected async request(op: RequestOp): Promise<ResponseResult> {
    if (!this.conn) throw new MissiveError(0, "not connected", true);
    return this.conn.request(op);
  }

  /** Conversations, most recent first (pinned first), hidden ones left out. */
  conversations(): ConversationState[] {
    return [...this.convs.values()]
      .map((c) => c.state)
      .filter((s) => !s.hidden)
      .sort((a, b) => {
        if (a.pinned !== b.pinned) return a.pinned ? -1 : 1;
        const ta = a.lastMessage?.serverTimeMs ?? 0n;
        const tb = b.lastMessage?.serverTimeMs ?? 0n;
        return tb > ta ? 1 : tb < ta ? -1 : a.convId.localeCompare(b.convId);
      });
  }

  conversation(convId: string): ConversationState | undefined {
    return this.convs.get(convId)?.state;
  }

  /** Messages held in memory for a conversation, ascending seq. */
  messages(convId: string): Message[] {
    const c = this.convs.get(convId);
    if (!c) return [];
    return [...c.messages.values()].sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
  }

  /**
   * Loads one page of older messages (before the oldest held, or the newest page);
   * resolves with those not held before. Messages of the page newer than the
   * contiguous seq are new ones: they come as `message` events (gap rule), not here.
   */
  async history(convId: string, limit = this.o.pageSize ?? 30): Promise<{ messages: Message[]; more: boolean }> {
    const held = this.messages(convId);
    const before = held.length ? held[0].seq : 0n;
    if (before === 1n) return { messages: [], more: false };
    const v = await this.call({ case: "history", value: { convId, beforeSeq: before, limit } }, "messages");
    const known = this.convs.has(convId);
    const c = this.conv(convId);
    const fresh: Message[] = [];
    for (const m of v.messages) {
      // Above the contiguous seq a message is new, not history: held silently it would
      // never be emitted or counted. The gap pull below brings it (emitted once, in order).
      if (known && m.seq > c.contiguous) continue;
      if (!c.messages.has(m.seq)) {
        c.messages.set(m.seq, m);
        fresh.push(m);
      }
    }
    const max = v.maxSeq;
    if (!known) {
      // First sight (no sync brought it yet), as sync takes one: everything up to
      // max_seq is history; the newest message is the list's last message.
      if (max > c.contiguous) c.contiguous = max;
      if (max > c.state.maxSeq) {
        c.state.maxSeq = max;
        c.state.lastMessage = v.messages.find((m) => m.seq === max);
      }
    } else if (max > c.contiguous) {
      // The gap rule ([Y-10]): newer messages than those held exist. They are pulled
      // (and counted, emitted) as new; the held max_seq is never moved without them,
      // else their arrival would no longer update the last message, unread or mention.
      this.fillGap(convId, max);
    }
    return { messages: fresh, more: v.more };
  }

  /** Marks everything up to `seq` read; the state comes back as a `conversation` event too. */
  async markRead(convId: string, seq: bigint): Promise<ConversationState | undefined> {
    const v = await this.call({ case: "markRead", value: { convId, seq } }, "conversation");
    this.setConversation(v);
    return v;
  }

  /**
   * Changes the caller's flags of a conversation (pinned, muted, hidden; unset
   * ones kept, 8.7). The new state is taken at once: `conversation` fires and
   * `conversations()` reflects it; other devices get it pushed. Errors: 3001, 3002, 3006.
   */
  async updateConversation(req: MessageInitShape<typeof UpdateConversationSchema>): Promise<ConversationState> {
    const s = await this.call({ case: "updateConversation", value: req }, "conversation");
    this.setConversation(s);
    return s;
  }

  /**
   * Hides the history up to `upToSeq` (0 = latest) for this user only (8.8).
   * Held copies of the cleared messages are dropped; the new state is taken
   * and emitted as `conversation`. Errors: 3001, 3002, 3006.
   */
  async clearHistory(req: MessageInitShape<typeof ClearHistorySchema>): Promise<ConversationState> {
    const s = await this.call({ case: "clearHistory", value: req }, "conversation");
    this.setConversation(s);
    return s;
  }

  /**
   * Sets global do-not-disturb (8.9). Once answered, `globalDnd` holds the
   * value and `settings` fires; the user's other devices get it pushed.
   */
  async setGlobalDnd(req: MessageInitShape<typeof SetGlobalDndSchema>): Promise<void> {
    await this.call({ case: "setGlobalDnd", value: req }, "ok");
    this.setSettings(create(UserSettingsSchema, { ...this.settingsValue, globalDnd: req.enabled ?? false }));
  }

  /**
   * The caller's notification setting for a group ([GR-24]); the answered
   * state is taken and emitted as `conversation`. Errors: 4100, 4102.
   */
  async setGroupNotify(req: MessageInitShape<typeof SetGroupNotifySchema>): Promise<ConversationState> {
    const s = await this.call({ case: "setGroupNotify", value: req }, "conversation");
    this.setConversation(s);
    return s;
  }

  /**
   * Runs a sync pass now (9): conversations, settings, relations and profiles
   * changed since the stored token, pulling missing messages; after any sync
   * already running. Rejects when not connected or when a request fails.
   */
  syncNow(): Promise<void> {
    return this.runSync(true);
  }

  /**
   * Pulls the messages `fromSeq..=toSeq` (`toSeq` 0 = the latest) of a
   * conversation, every page (8.4), and resolves with those readable in that range.
   * Messages at or below the contiguous seq are history: held, not emitted
   * (like `history()`). Messages above it are new: the pull then starts right
   * after the contiguous seq (so the gap below `fromSeq` comes too) and each new
   * message is emitted once as `message`, in seq order, as the gap rule does.
   * Errors: 3001, 3002, 3006.
   */
  async pullRange(convId: string, fromSeq: bigint, toSeq = 0n, limit = 0): Promise<Message[]> {
    const c = this.conv(convId);
    const start = fromSeq > c.contiguous + 1n ? c.contiguous + 1n : fromSeq < 1n ? 1n : fromSeq;
    const out: Message[] = [];
    let to = toSeq;
    let next = start;
    let cut = false;
    for (;;) {
      const page: Messages = await this.call({ case: "pull", value: { convId, fromSeq: next, toSeq: to, limit } }, "messages");
      if (to === 0n) to = page.maxSeq; // later pages stop where the first one saw the end
      if (start <= c.contiguous + 1n && page.minReadableSeq > c.contiguous + 1n) c.contiguous = page.minReadableSeq - 1n;
      for (const m of page.messages) {
        if (m.seq <= c.contiguous) {
          if (!c.messages.has(m.seq)) c.messages.set(m.seq, m);
        } else this.store1(m);
        if (m.seq >= fromSeq) out.push(c.messages.get(m.seq) ?? m);
      }
      const last = page.messages.at(-1)?.seq;
      if (!page.more) break;
      if (last === undefined) {
        cut = true;
        break;
      }
      next = last + 1n;
    }
    // Everything from at most contiguous + 1 up to `to` was served: the unreadable rest is skipped.
    if (!cut && start <= c.contiguous + 1n && c.contiguous < to) c.contiguous = to;
    this.saveLocal();
    this.queueAck(convId);
    return out;
  }

  // ---------------------------------------------------------------- lifecycle requests (spec 18)

  /** Recalls a message (18.1); resolves with its recalled form (also emitted as `messageUpdate`). */
  async recall(convId: string, seq: bigint): Promise<Message> {
    const v = await this.call({ case: "recall", value: { convId, seq } }, "message");
    this.applyForm(v, MessageUpdate_Kind.RECALLED, this.userId);
    return v;
  }

  /** Replaces the content of one's own text or custom message (18.2); resolves with the new form. */
  async edit(convId: string, seq: bigint, content: MessageInitShape<typeof ContentSchema>): Promise<Message> {
    const v = await this.call({ case: "edit", value: { convId, seq, content } }, "message");
    this.applyForm(v, MessageUpdate_Kind.EDITED, this.userId);
    return v;
  }

  /** Replaces the text of one's own text message, keeping its quote and mentions (18.2). */
  editText(convId: string, seq: bigint, text: string): Promise<Message> {
    const held = this.convs.get(convId)?.messages.get(seq)?.content;
    return this.edit(convId, seq, { body: { case: "text", value: { text } }, quote: held?.quote, mentions: held?.mentions });
  }

  /**
   * Deletes messages (18.3): for the caller's devices only, or for everyone
   * (`forEveryone`: group owner/admin). Held copies become tombstones.
   */
  async deleteMessages(convId: string, seqs: bigint[], forEveryone = false): Promise<void> {
    await this.call({ case: "deleteMessages", value: { convId, seqs, forEveryone } }, "ok");
    const c = this.convs.get(convId);
    for (const seq of seqs) {
      const held = c?.messages.get(seq);
      if (!held || held.deleted) continue;
      const m = clone(MessageSchema, held);
      m.deleted = true;
      m.content = undefined;
      this.applyForm(m, forEveryone ? MessageUpdate_Kind.DELETED : MessageUpdate_Kind.DELETED_FOR_ME, this.userId);
    }
  }

  /** Clears all of the caller's messages in every conversation (18.3); held messages are dropped. */
  async clearAllMessages(): Promise<void> {
    await this.call({ case: "clearAllMessages", value: {} }, "ok");
    for (const c of this.convs.values()) {
      c.messages.clear();
      c.state.clearedSeq = c.state.maxSeq;
      c.state.unread = 0n;
      c.state.lastMessage = undefined;
      this.emit("conversation", c.state);
    }
    this.saveLocal();
  }

  /** Adds (or with `remove`, removes) a reaction of the caller (18.4); resolves with the message's reactions. */
  async react(convId: string, seq: bigint, key: string, remove = false): Promise<Reactions> {
    const v = await this.call({ case: "react", value: { convId, seq, key, remove } }, "reactions");
    this.applyReactions(v, this.userId);
    return v;
  }

  /** Reaction summaries of up to 100 messages (18.4); held messages take them. */
  async getReactions(convId: string, seqs: bigint[]): Promise<Reactions[]> {
    const v = await this.call({ case: "getReactions", value: { convId, seqs } }, "reactionsList");
    for (const x of v.messages) this.applyReactions(x, "");
    return v.messages;
  }

  private applyReactions(x: Reactions, by: string) {
    const held = this.convs.get(x.convId)?.messages.get(x.seq);
    const m = held ? clone(MessageSchema, held) : create(MessageSchema, { convId: x.convId, seq: x.seq });
    if (held && held.updateSeq > x.updateSeq) return;
    m.reactions = x.reactions;
    m.updateSeq = x.updateSeq;
    this.applyForm(m, MessageUpdate_Kind.REACTIONS, by);
  }

  /** The users who reacted with `key`, one page (18.4). */
  async listReactionUsers(convId: string, seq: bigint, key: string, cursor = "", limit = 0): Promise<ReactionUsers> {
    const v = await this.call({ case: "listReactionUsers", value: { convId, seq, key, cursor, limit } }, "reactionUsers");
    return v;
  }

  /**
   * Sets and removes keys of a message's extension map (18.5); with
   * `ifVersion`, only if the extension version is exactly that (else 4206).
   */
  async setExtensions(
    convId: string,
    seq: bigint,
    set: Record<string, string>,
    remove: string[] = [],
    ifVersion?: bigint,
  ): Promise<Extensions> {
    const v = await this.call({ case: "setExtensions", value: { convId, seq, set, remove, ifVersion } }, "extensions");
    const held = this.convs.get(convId)?.messages.get(seq);
    if (!held || held.updateSeq <= v.updateSeq) {
      const m = held ? clone(MessageSchema, held) : create(MessageSchema, { convId, seq });
      m.extensions = { ...v.extensions };
      m.updateSeq = v.updateSeq;
      this.applyForm(m, MessageUpdate_Kind.EXTENSIONS, this.userId);
    }
    return v;
  }

  /**
   * One `PullUpdates` page (18.0, [UP-2]): current forms of the messages changed
   * after `afterUpdateSeq` (default: the stored value). They are applied and
   * emitted as `messageUpdate`; when the page starts at or below the stored
   * value, the stored value advances to the page's `update_seq`.
   */
  async pullUpdates(convId: string, afterUpdateSeq?: bigint, limit = 0): Promise<MessageUpdates> {
    const c = this.conv(convId);
    const after = afterUpdateSeq ?? c.applied;
    const v = await this.call({ case: "pullUpdates", value: { convId, afterUpdateSeq: after, limit } }, "updates");
    for (const m of v.messages) this.applyForm(m, MissiveClient.pulledKind(m));
    if (after <= c.applied && v.updateSeq > c.applied) {
      c.applied = v.updateSeq;
      this.saveLocal();
    }
    return v;
  }

  /** Tells the conversation the caller is typing (or stopped); never stored (18.6). See `TypingNotifier`. */
  async typing(convId: string, typing = true): Promise<void> {
    await this.call({ case: "typing", value: { convId, typing } }, "ok");
  }

  /**
   * Forwards messages of `fromConvId` into `toConvId` (18.9): one by one, or
   * `merged` into one chat-history bubble. Retries reuse `clientMsgId`.
   */
  async forward(
    fromConvId: string,
    seqs: bigint[],
    toConvId: string,
    opts: { merged?: boolean; title?: string; clientMsgId?: string } = {},
  ): Promise<ForwardResult> {
    const clientMsgId = opts.clientMsgId ?? `${this.o.deviceId}-fw-${Date.now().toString(36)}-${(this.seqCounter++).toString(36)}`;
    return this.call(
      {
        case: "forward",
        value: { fromConvId, seqs, toConvId, merged: opts.merged ?? false, title: opts.title ?? "", clientMsgId },
      },
      "forward",
    );
  }

  /** Translates one message's text into `language` (18.10). */
  async translate(convId: string, seq: bigint, language: string): Promise<Translation> {
    const v = await this.call({ case: "translate", value: { convId, seq, language } }, "translation");
    return v;
  }

  /** Subscribes to presence of users; resolves with their current state (empty if unsupported). */
  async subscribePresence(userIds: string[]): Promise<Presence[]> {
    try {
      const v = await this.call({ case: "subscribePresence", value: { userIds } }, "presence");
      return v.presences;
    } catch (e) {
      if (e instanceof MissiveError && e.code === ErrorCodes.UNKNOWN_REQUEST) return [];
      throw e;
    }
  }
}

/** A group message naming `userId` in its mentions, or @all ([GR-19]); never in 1:1 conversations. */
function mentionsUser(m: Message, userId: string): boolean {
  const x = m.content?.mentions;
  return !!x && m.convId.startsWith("g:") && (x.all || x.userIds.includes(userId));
}


/** The conversation id of a group: `g:{groupId}` (spec 6.1, 14). */
export function groupConvId(groupId: string): string {
  return `g:${groupId}`;
}

/** The id of the 1:1 conversation of two users (spec 6.1). */
export function directConvId(a: string, b: string): string {
  return a < b ? `p:${a}:${b}` : `p:${b}:${a}`;
}
