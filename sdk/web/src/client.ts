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
 * - the sync token is stored only after the page it came with is processed.
 */
import { create, fromJson, toJson, type MessageInitShape } from "@bufbuild/protobuf";
import { type ConversationState, ConversationStateSchema, type ReadReceipt, type SendAck } from "./gen/conversation_pb.ts";
import type { Kicked, Presence } from "./gen/user_pb.ts";
import { type Message, type Content, ContentSchema, MessageSchema } from "./gen/message_pb.ts";
import { Platform } from "./gen/platform_pb.ts";
import { Connection, ErrorCodes, MissiveError, REQUEST_TIMED_OUT, isRetryableClose, type RequestOp } from "./connection.ts";
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
  receipt: (r: ReadReceipt) => void;
  conversation: (c: ConversationState) => void;
  presence: (p: Presence) => void;
  kicked: (k: Kicked) => void;
  tokenExpired: () => void;
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
}

/** Default of `ClientOptions.sendGiveUpMs`: one day. */
export const SEND_GIVE_UP_MS = 24 * 3600 * 1000;

interface Outbox {
  convId: string;
  clientMsgId: string;
  content: MessageInitShape<typeof ContentSchema>;
  resolve: (a: SendAck) => void;
  reject: (e: MissiveError) => void;
  inFlight: boolean;
  /** When `send` was called (Date.now()). */
  createdAt: number;
}

interface Conv {
  state: ConversationState;
  /** Highest seq such that everything from the client's starting point up to it is held or was skipped as history. */
  contiguous: bigint;
  messages: Map<bigint, Message>;
}

/** Next reconnect delay: exponential with full jitter in [d/2, d]. */
export function backoffDelay(attempt: number, initial: number, max: number, rand = Math.random): number {
  const d = Math.min(max, initial * 2 ** Math.min(attempt, 20));
  return Math.round(d / 2 + (rand() * d) / 2);
}

export class MissiveClient {
  private conn?: Connection;
  private convs = new Map<string, Conv>();
  private outbox: Outbox[] = [];
  /** Per conversation: the highest seq a running gap pull will bring. */
  private filling = new Map<string, bigint>();
  private listeners: { [K in keyof ClientEvents]?: ClientEvents[K][] } = {};
  private running = false;
  private attempt = 0;
  private timer?: ReturnType<typeof setTimeout>;
  private seqCounter = 0;
  private readonly store: KeyValueStore;
  state: ConnectionState = "offline";
  /** The transport of the current session ("websocket", "webtransport"), if online. */
  get transport(): string | undefined {
    return this.conn?.transport;
  }
  userId = "";

  constructor(private readonly o: ClientOptions) {
    this.store = o.store ?? new MemoryStore();
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

  /** Closes the session and stops reconnecting; pending sends stay queued. */
  stop() {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
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
    for (const e of this.outbox) e.inFlight = false;
    this.flushOutbox();
    this.sync().catch((e) => console.warn("missive: sync failed", e));
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
    const raw = this.store.getItem(this.key("convs"));
    if (!raw || this.convs.size > 0) return;
    try {
      for (const [id, v] of Object.entries(JSON.parse(raw) as Record<string, { s: unknown; l: string }>)) {
        const state = fromJson(ConversationStateSchema, v.s as never);
        this.convs.set(id, { state, contiguous: BigInt(v.l), messages: new Map() });
      }
    } catch {
      this.store.setItem(this.key("convs"), "{}");
    }
  }

  private saveLocal() {
    const out: Record<string, { s: unknown; l: string }> = {};
    for (const [id, c] of this.convs) out[id] = { s: toJson(ConversationStateSchema, c.state), l: c.contiguous.toString() };
    this.store.setItem(this.key("convs"), JSON.stringify(out));
  }

  private conv(id: string): Conv {
    let c = this.convs.get(id);
    if (!c) {
      c = { state: create(ConversationStateSchema, { convId: id }), contiguous: 0n, messages: new Map() };
      this.convs.set(id, c);
    }
    return c;
  }

  /** Stores a message; emits it if it is new. Returns true if new. */
  private store1(m: Message): boolean {
    const c = this.conv(m.convId);
    if (c.messages.has(m.seq)) return false;
    c.messages.set(m.seq, m);
    // Keep the list view current between authoritative states from the server.
    if (m.seq > c.state.maxSeq) {
      c.state.maxSeq = m.seq;
      c.state.lastMessage = m;
      c.state.hidden = false;
      if (m.sender !== this.userId && m.seq > c.state.readSeq && m.seq > c.state.clearedSeq) c.state.unread += 1n;
    }
    while (c.messages.has(c.contiguous + 1n)) c.contiguous += 1n;
    this.emit("message", m);
    return true;
  }

  // ---------------------------------------------------------------- sync

  private async sync() {
    const conn = this.conn;
    if (!conn) return;
    let token = this.store.getItem(this.key("sync")) ?? "";
    for (;;) {
      let r;
      try {
        r = await conn.request({ case: "sync", value: { syncToken: token } });
      } catch (e) {
        if (e instanceof MissiveError && e.code === ErrorCodes.INVALID_SYNC_TOKEN && token !== "") {
          token = "";
          continue;
        }
        throw e;
      }
      if (r.case !== "sync") return;
      for (const s of r.value.conversations) {
        const known = this.convs.get(s.convId);
        if (!known) {
          // First sight: everything up to max_seq is history (loaded on demand).
          this.convs.set(s.convId, { state: s, contiguous: s.maxSeq, messages: new Map() });
        } else {
          known.state = s;
          if (s.maxSeq > known.contiguous) await this.pull(s.convId, known.contiguous + 1n, s.maxSeq);
        }
        this.emit("conversation", s);
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

  private onPush(ev: import("./gen/frame_pb.ts").Push["event"]) {
    switch (ev.case) {
      case "message": {
        const m = ev.value;
        const c = this.conv(m.convId);
        if (m.seq <= c.contiguous || c.messages.has(m.seq)) return; // already delivered
        if (m.seq === c.contiguous + 1n) {
          this.store1(m);
          this.saveLocal();
          return;
        }
        // A gap (sent while this session was down, or a catch-up still running):
        // pull the gap and this message together so events stay in seq order.
        // `contiguous` stays put until they are stored, so if the pull fails
        // (the connection drops), the next sync pulls them again.
        // One gap pull per conversation at a time (a later push extends it).
        if ((this.filling.get(m.convId) ?? 0n) >= m.seq) return;
        this.filling.set(m.convId, m.seq);
        this.pull(m.convId, c.contiguous + 1n, m.seq)
          .then(() => this.saveLocal())
          .catch(() => {})
          .finally(() => {
            if (this.filling.get(m.convId) === m.seq) this.filling.delete(m.convId);
          });
        return;
      }
      case "readReceipt": {
        const c = this.conv(ev.value.convId);
        if (ev.value.reader !== this.userId && ev.value.readSeq > c.state.peerReadSeq) c.state.peerReadSeq = ev.value.readSeq;
        this.emit("receipt", ev.value);
        return;
      }
      case "conversation":
        this.conv(ev.value.convId).state = ev.value;
        this.saveLocal();
        this.emit("conversation", ev.value);
        return;
      case "presence":
        this.emit("presence", ev.value);
        return;
      case "kicked":
        this.emit("kicked", ev.value);
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------- sending

  /** Sends text; resolves once acknowledged (retrying across reconnects). */
  sendText(convId: string, text: string): Promise<SendAck> {
    return this.send(convId, { body: { case: "text", value: { text } } });
  }

  send(convId: string, content: MessageInitShape<typeof ContentSchema>): Promise<SendAck> {
    const clientMsgId = `${this.o.deviceId}-${Date.now().toString(36)}-${(this.seqCounter++).toString(36)}`;
    return new Promise((resolve, reject) => {
      this.outbox.push({ convId, clientMsgId, content, resolve, reject, inFlight: false, createdAt: Date.now() });
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
      conn
        .request({ case: "send", value: { convId: e.convId, clientMsgId: e.clientMsgId, content: e.content } })
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

  private async req(op: RequestOp) {
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

  /** Loads one page of older messages (before the oldest held, or the newest page). */
  async history(convId: string, limit = this.o.pageSize ?? 30): Promise<{ messages: Message[]; more: boolean }> {
    const held = this.messages(convId);
    const before = held.length ? held[0].seq : 0n;
    if (before === 1n) return { messages: [], more: false };
    const r = await this.req({ case: "history", value: { convId, beforeSeq: before, limit } });
    if (r.case !== "messages") return { messages: [], more: false };
    const c = this.conv(convId);
    const fresh: Message[] = [];
    for (const m of r.value.messages) {
      if (!c.messages.has(m.seq)) {
        c.messages.set(m.seq, m);
        fresh.push(m);
      }
    }
    if (r.value.maxSeq > c.state.maxSeq) c.state.maxSeq = r.value.maxSeq;
    return { messages: fresh, more: r.value.more };
  }

  /** Marks everything up to `seq` read; the state comes back as a `conversation` event too. */
  async markRead(convId: string, seq: bigint): Promise<ConversationState | undefined> {
    const r = await this.req({ case: "markRead", value: { convId, seq } });
    if (r.case !== "conversation") return undefined;
    this.conv(convId).state = r.value;
    this.saveLocal();
    this.emit("conversation", r.value);
    return r.value;
  }

  /** Subscribes to presence of users; resolves with their current state (empty if unsupported). */
  async subscribePresence(userIds: string[]): Promise<Presence[]> {
    try {
      const r = await this.req({ case: "subscribePresence", value: { userIds } });
      return r.case === "presence" ? r.value.presences : [];
    } catch (e) {
      if (e instanceof MissiveError && e.code === ErrorCodes.UNKNOWN_REQUEST) return [];
      throw e;
    }
  }
}

/** The id of the 1:1 conversation of two users (spec 6.1). */
export function directConvId(a: string, b: string): string {
  return a < b ? `p:${a}:${b}` : `p:${b}:${a}`;
}
