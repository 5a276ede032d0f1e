/**
 * Message lifecycle helpers (spec/PROTOCOL.md section 18), pure and I/O-free so
 * they are unit-testable: merging a `MessageUpdate` push into the held form of
 * a message, the tick state of one's own message, and typing throttling on the
 * sending side and expiry on the receiving side.
 *
 * Invariants:
 * - a change is applied only when it is newer than the held form (by
 *   `update_seq`, [UP-1]), so a late push never undoes a newer pulled form;
 * - a pushed reaction summary has `me = false` ([UP-4]): `me` is kept from the
 *   held form unless the acting user is this user (then the caller refreshes
 *   it with `GetReactions`, see `applyUpdate`'s `refreshReactions`);
 * - the typing tracker holds at most `maxEntries` entries; every entry expires.
 */
import { clone, create } from "@bufbuild/protobuf";
import { type Message, MessageSchema, RecalledSchema, type ReactionSummary, ReactionSummarySchema } from "./gen/message_pb.ts";
import { type MessageUpdate, MessageUpdate_Kind } from "./gen/lifecycle_pb.ts";
import type { ConversationState } from "./gen/conversation_pb.ts";

export interface Applied {
  /** The new current form. */
  message: Message;
  /** The reactions were changed by this user on another device: `me` is unknown, refresh it. */
  refreshReactions: boolean;
}

/**
 * Applies a pushed `MessageUpdate` to the held form of its message. Returns
 * undefined when the update is not newer than `held` or its kind is unknown
 * ([V-4]: the next `PullUpdates` brings the current form anyway).
 */
export function applyUpdate(held: Message, u: MessageUpdate, me: string): Applied | undefined {
  if (u.updateSeq !== 0n && held.updateSeq >= u.updateSeq) return undefined;
  const m = clone(MessageSchema, held);
  const part = u.message;
  let refreshReactions = false;
  switch (u.kind) {
    case MessageUpdate_Kind.RECALLED:
      m.recalled = part?.recalled ? clone(RecalledSchema, part.recalled) : create(RecalledSchema, { by: u.by, atMs: u.atMs });
      m.content = undefined;
      break;
    case MessageUpdate_Kind.EDITED:
      if (part?.content) m.content = part.content;
      m.editVersion = part?.editVersion || held.editVersion + 1;
      m.editedAtMs = part?.editedAtMs || u.atMs;
      break;
    case MessageUpdate_Kind.DELETED:
    case MessageUpdate_Kind.DELETED_FOR_ME:
      m.deleted = true;
      m.content = undefined;
      break;
    case MessageUpdate_Kind.REACTIONS: {
      const r = mergeReactionsMe(part?.reactions ?? [], held.reactions, u.by, me);
      m.reactions = r.reactions;
      refreshReactions = r.unknown;
      break;
    }
    case MessageUpdate_Kind.EXTENSIONS:
      // The pushed map is the message's whole extension map (a removed key is absent).
      m.extensions = { ...(part?.extensions ?? {}) };
      break;
    default:
      return undefined;
  }
  if (u.updateSeq > m.updateSeq) m.updateSeq = u.updateSeq;
  return { message: m, refreshReactions };
}

/**
 * Fills `me` of pushed reaction summaries (which carry `me = false`): true when
 * this user is listed, otherwise as held, unless this user made the change
 * (from another device) and is not listed in a truncated user list: `unknown`.
 */
export function mergeReactionsMe(
  pushed: ReactionSummary[],
  held: ReactionSummary[],
  by: string,
  me: string,
): { reactions: ReactionSummary[]; unknown: boolean } {
  const heldMe = new Set(held.filter((r) => r.me).map((r) => r.key));
  let unknown = false;
  const reactions = pushed.map((r) => {
    const out = clone(ReactionSummarySchema, r);
    if (r.users.includes(me)) out.me = true;
    else if (by === me) {
      // Listed users are the first who reacted: a complete list without me means not me.
      out.me = false;
      if (r.users.length < r.count) unknown = true;
    } else out.me = heldMe.has(r.key);
    return out;
  });
  return { reactions, unknown };
}

/** The tick of one's own message in a 1:1 conversation. */
export type Tick = "read" | "delivered" | "sent";

export function tickOf(state: Pick<ConversationState, "peerReadSeq" | "peerDeliveredSeq"> | undefined, seq: bigint): Tick {
  if (!state || seq === 0n) return "sent";
  if (seq <= state.peerReadSeq) return "read";
  if (seq <= state.peerDeliveredSeq) return "delivered";
  return "sent";
}

export interface TypingNotifierOptions {
  /** While input keeps changing, `typing: true` is repeated at most this often (ms; default 3000). */
  intervalMs?: number;
  /** After this long without input, `typing: false` is sent (ms; default 5000). */
  idleMs?: number;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
}

/**
 * Sending side of typing indicators (18.6): call `input()` on every change of
 * the composer and `stop()` when the message is sent or the conversation
 * closed. Sends `true` at most once per `intervalMs`, and `false` once after
 * `idleMs` without input or on `stop()` (only if `true` was sent).
 */
export class TypingNotifier {
  private typing = false;
  private lastSent = -Infinity;
  private timer: unknown;
  private readonly intervalMs: number;
  private readonly idleMs: number;
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (t: unknown) => void;

  constructor(
    private readonly send: (typing: boolean) => void,
    o: TypingNotifierOptions = {},
  ) {
    this.intervalMs = o.intervalMs ?? 3000;
    this.idleMs = o.idleMs ?? 5000;
    this.now = o.now ?? Date.now;
    this.setTimer = o.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = o.clearTimer ?? ((t) => clearTimeout(t as ReturnType<typeof setTimeout>));
  }

  input() {
    const t = this.now();
    if (!this.typing || t - this.lastSent >= this.intervalMs) {
      this.typing = true;
      this.lastSent = t;
      this.send(true);
    }
    if (this.timer !== undefined) this.clearTimer(this.timer);
    this.timer = this.setTimer(() => this.stop(), this.idleMs);
  }

  stop() {
    if (this.timer !== undefined) this.clearTimer(this.timer);
    this.timer = undefined;
    if (!this.typing) return;
    this.typing = false;
    this.lastSent = -Infinity;
    this.send(false);
  }
}

/**
 * Receiving side: who is typing where. A `typing: true` event holds for
 * `ttlMs` (default 6000: twice the notifier's repeat interval) unless renewed
 * or ended by `typing: false`. Bounded by `maxEntries` (oldest dropped).
 */
export class TypingTracker {
  private entries = new Map<string, { convId: string; userId: string; until: number }>();

  constructor(
    private readonly ttlMs = 6000,
    private readonly maxEntries = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Applies one event; returns true when the set of typing users of its conversation changed. */
  apply(e: { convId: string; userId: string; typing: boolean }): boolean {
    const k = `${e.convId}\u0000${e.userId}`;
    const had = this.live(k);
    this.entries.delete(k);
    if (!e.typing) return had;
    this.entries.set(k, { convId: e.convId, userId: e.userId, until: this.now() + this.ttlMs });
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    return !had;
  }

  /** Users typing in a conversation now (insertion order). Drops expired entries. */
  typing(convId: string): string[] {
    const t = this.now();
    const out: string[] = [];
    for (const [k, v] of this.entries) {
      if (v.until <= t) this.entries.delete(k);
      else if (v.convId === convId) out.push(v.userId);
    }
    return out;
  }

  /** Forgets one user everywhere in a conversation (e.g. their message arrived). */
  clear(convId: string, userId: string) {
    this.entries.delete(`${convId}\u0000${userId}`);
  }

  /** Milliseconds until the next entry expires (for a re-render timer), or undefined. */
  nextExpiryMs(): number | undefined {
    let min: number | undefined;
    const t = this.now();
    for (const v of this.entries.values()) min = min === undefined ? v.until - t : Math.min(min, v.until - t);
    return min === undefined ? undefined : Math.max(0, min);
  }

  private live(k: string): boolean {
    const v = this.entries.get(k);
    return v !== undefined && v.until > this.now();
  }
}
