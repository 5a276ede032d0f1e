/**
 * The held ConversationState between authoritative states, against an
 * in-process fake server that computes `mentioned` as the broker does
 * (views.rs: the latest mention of the user, or @all, above `read_seq`;
 * the sender's own message moves its `read_seq`):
 * - mentions ([GR-19]): a pushed or pulled group message naming the user (or
 *   @all), not the user's own, above `read_seq`, sets `mentioned` and emits
 *   `conversation`; `markRead` past it (the answered state) and one's own
 *   later message clear it; a stale answer does not take back a newer mention;
 * - group read receipts ([GR-21]) are emitted and never written to
 *   `peerReadSeq` (a 1:1 field); a 1:1 peer's receipt is.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { directConvId, groupConvId, type ConversationState, type MissiveError, type RequestOp } from "../src/index.ts";
import { fakeClient, fakeServer, online, until, type ResultInit } from "./fake.ts";

const client = fakeClient;

type Mentions = { userIds?: string[]; all?: boolean };
const G = groupConvId("g1");

/** A group log held by the fake server, with alice's read position and mention as the broker keeps them. */
function groupServer() {
  const log = new Map<bigint, { convId: string; seq: bigint; sender: string; content: object }>();
  let read = 1n;
  let mention = 0n;
  let max = 1n;
  const state = (maxSeq = max) => ({
    convId: G,
    maxSeq,
    readSeq: read,
    unread: maxSeq > read ? maxSeq - read : 0n,
    mentioned: mention > read && mention <= maxSeq,
    minReadableSeq: 1n,
  });
  /** Stores a message as the broker would; returns it (to push or to leave for a pull). */
  const store = (seq: bigint, sender: string, mentions?: Mentions) => {
    const m = { convId: G, seq, sender, content: { body: { case: "text" as const, value: { text: `m${seq}` } }, mentions } };
    log.set(seq, m);
    if (seq > max) max = seq;
    if (sender === "alice" && seq > read) read = seq;
    if (sender !== "alice" && (mentions?.all || mentions?.userIds?.includes("alice"))) mention = seq;
    return m;
  };
  let onMarkRead: (() => void) | undefined;
  const s = fakeServer("alice", (op: RequestOp): ResultInit | undefined => {
    switch (op?.case) {
      case "sync":
        return { case: "sync", value: { conversations: [state()], syncToken: "t" } };
      case "markRead": {
        const stale = max; // the answer's state is computed now; a hook may store a message after it
        const seq = op.value.seq || max;
        if (seq > read) read = seq > max ? max : seq;
        const answer = state(stale);
        onMarkRead?.();
        return { case: "conversation", value: answer };
      }
      case "pull": {
        const msgs = [];
        for (let q = op.value.fromSeq ?? 1n; q <= (op.value.toSeq || max); q++) if (log.has(q)) msgs.push(log.get(q)!);
        return { case: "messages", value: { convId: G, messages: msgs, maxSeq: max } };
      }
      default:
        return undefined;
    }
  });
  return { s, store, setOnMarkRead: (f: (() => void) | undefined) => (onMarkRead = f) };
}

test("mentions: a pushed or pulled group message naming me (or @all) sets `mentioned`; markRead past it and my own message clear it", async () => {
  const { s, store, setOnMarkRead } = groupServer();
  store(1n, "bob");
  const c = client(s.factory);
  await online(c);
  assert.equal(c.conversation(G)?.mentioned, false);
  const events: ConversationState[] = [];
  c.on("conversation", (x) => x.convId === G && events.push({ ...x }));
  const push = (m: ReturnType<typeof store>) => s.push({ case: "message", value: m });

  // Someone else is mentioned: nothing for me.
  push(store(2n, "bob", { userIds: ["carol"] }));
  await until(() => c.conversation(G)?.maxSeq === 2n, "seq 2");
  assert.equal(c.conversation(G)?.mentioned, false);
  assert.equal(events.length, 0, "no conversation event without a change");

  // Bob names me: mentioned, and `conversation` fires.
  push(store(3n, "bob", { userIds: ["carol", "alice"] }));
  await until(() => events.length === 1, "the conversation event of the mention");
  assert.equal(events[0].mentioned, true);
  assert.equal(c.conversation(G)?.mentioned, true);
  assert.equal(c.conversation(G)?.unread, 2n);

  // Reading below the mention keeps it; reading past it clears it (the answered state).
  await c.markRead(G, 2n);
  assert.equal(c.conversation(G)?.mentioned, true, "the mention at 3 is still above read_seq 2");
  await c.markRead(G, 3n);
  assert.equal(c.conversation(G)?.mentioned, false, "read past the mention");
  assert.equal(events.at(-1)?.mentioned, false);

  // My own message (another device), even with @all, is no mention.
  push(store(4n, "alice", { all: true }));
  await until(() => c.conversation(G)?.maxSeq === 4n, "seq 4");
  assert.equal(c.conversation(G)?.mentioned, false);
  assert.equal(c.conversation(G)?.readSeq, 4n, "my own message moves read_seq");

  // @all from bob mentions me; my next message (another device) reads past it, as the broker counts.
  push(store(5n, "bob", { all: true }));
  await until(() => c.conversation(G)?.mentioned === true, "@all");
  const n = events.length;
  push(store(6n, "alice"));
  await until(() => events.length === n + 1, "the conversation event of the cleared mention");
  assert.equal(c.conversation(G)?.mentioned, false);
  assert.equal(c.conversation(G)?.unread, 0n);

  // A gap: the pushed 9 pulls 7 and 8; the pulled 8 names me.
  store(7n, "bob");
  store(8n, "bob", { userIds: ["alice"] });
  push(store(9n, "bob"));
  await until(() => c.conversation(G)?.maxSeq === 9n, "the gap pulled");
  assert.equal(c.conversation(G)?.mentioned, true, "a pulled message sets it too");
  await c.markRead(G, 0n);
  assert.equal(c.conversation(G)?.mentioned, false);

  // An answer computed before a mention was stored (its push came first) does not take it back.
  setOnMarkRead(() => push(store(10n, "bob", { userIds: ["alice"] })));
  await c.markRead(G, 9n);
  setOnMarkRead(undefined);
  await until(() => c.messages(G).some((m) => m.seq === 10n), "seq 10");
  assert.equal(c.conversation(G)?.maxSeq, 10n, "the held 10 is applied to the older answer");
  assert.equal(c.conversation(G)?.mentioned, true);
  assert.equal(c.conversation(G)?.unread, 1n);

  // A fresh sync agrees with the local state.
  const c2 = client(s.factory);
  await online(c2);
  assert.equal(c2.conversation(G)?.mentioned, true);
  assert.equal(c2.conversation(G)?.maxSeq, 10n);
  c.stop();
  c2.stop();
});

test("mentions: not in 1:1 conversations; a pulled message the server's state already counts changes nothing", async () => {
  const conv = directConvId("alice", "bob");
  const mention = (convId: string, seq: bigint) => ({
    convId,
    seq,
    sender: "bob",
    content: { body: { case: "text" as const, value: { text: "@alice" } }, mentions: { userIds: ["alice"] } },
  });
  let moved = false;
  const s = fakeServer("alice", (op): ResultInit | undefined => {
    if (op?.case === "sync") {
      // Once moved: the group is at 3 and alice read it all on another device.
      const g = moved ? { convId: G, maxSeq: 3n, readSeq: 3n } : { convId: G, maxSeq: 1n, readSeq: 1n };
      return { case: "sync", value: { conversations: [{ convId: conv, maxSeq: 1n, readSeq: 1n }, g], syncToken: "t" } };
    }
    if (op?.case === "pull") return { case: "messages", value: { convId: G, messages: [mention(G, 2n), mention(G, 3n)], maxSeq: 3n } };
    return undefined;
  });
  const c = client(s.factory);
  await online(c);
  s.push({ case: "message", value: mention(conv, 2n) });
  await until(() => c.conversation(conv)?.maxSeq === 2n, "the 1:1 message");
  assert.equal(c.conversation(conv)?.mentioned, false, "mentions are a group thing ([GR-19])");
  const pulled: bigint[] = [];
  c.on("message", (m) => m.convId === G && pulled.push(m.seq));
  moved = true;
  await c.syncNow();
  assert.deepEqual(pulled, [2n, 3n], "the sync pulled both");
  assert.equal(c.conversation(G)?.mentioned, false, "already read: the synced state says so");
  assert.equal(c.conversation(G)?.unread, 0n);
  c.stop();
});

test("read receipts: a group's never touch peerReadSeq (a 1:1 field); the receipt event still fires; a 1:1 peer's do", async () => {
  const direct = directConvId("alice", "bob");
  const s = fakeServer("alice", (op): ResultInit | undefined =>
    op?.case === "sync"
      ? { case: "sync", value: { conversations: [{ convId: G, maxSeq: 5n, readSeq: 5n }, { convId: direct, maxSeq: 5n }], syncToken: "t" } }
      : undefined,
  );
  const c = client(s.factory);
  await online(c);
  const receipts: string[] = [];
  c.on("receipt", (r) => receipts.push(`${r.convId} ${r.reader} ${r.readSeq}`));

  s.push({ case: "readReceipt", value: { convId: G, reader: "bob", readSeq: 4n } });
  s.push({ case: "readReceipt", value: { convId: G, reader: "alice", readSeq: 5n, readerDevice: "phone" } });
  await until(() => receipts.length === 2, "the group receipts");
  assert.deepEqual(receipts, [`${G} bob 4`, `${G} alice 5`]);
  assert.equal(c.conversation(G)?.peerReadSeq, 0n, "a group state keeps peer_read_seq 0 ([GR-18])");

  s.push({ case: "readReceipt", value: { convId: direct, reader: "alice", readSeq: 5n, readerDevice: "phone" } });
  s.push({ case: "readReceipt", value: { convId: direct, reader: "bob", readSeq: 3n } });
  await until(() => receipts.length === 4, "the 1:1 receipts");
  assert.equal(c.conversation(direct)?.peerReadSeq, 3n, "the peer's read position, not my other device's");
  c.stop();
});

test("read receipts: one from another of my devices moves my read_seq (8.10), never backwards", async () => {
  const direct = directConvId("alice", "bob");
  const s = fakeServer("alice", (op): ResultInit | undefined =>
    op?.case === "sync"
      ? {
          case: "sync",
          value: {
            conversations: [
              { convId: G, maxSeq: 6n, readSeq: 2n, unread: 4n, mentioned: true },
              { convId: direct, maxSeq: 5n, readSeq: 1n, unread: 4n },
            ],
            syncToken: "t",
          },
        }
      : undefined,
  );
  const c = client(s.factory);
  await online(c);
  const states: string[] = [];
  c.on("conversation", (st) => states.push(`${st.convId} ${st.readSeq} ${st.unread} ${st.mentioned}`));

  // Part of the way: read_seq moves; the counts wait for the broker's state push.
  s.push({ case: "readReceipt", value: { convId: direct, reader: "alice", readSeq: 3n, readerDevice: "tablet" } });
  await until(() => states.length === 1, "a state event");
  assert.equal(c.conversation(direct)?.readSeq, 3n);
  assert.equal(c.conversation(direct)?.unread, 4n, "exact count comes with the broker's state");
  // Up to the newest message: nothing unread, no mention.
  s.push({ case: "readReceipt", value: { convId: G, reader: "alice", readSeq: 6n, readerDevice: "tablet" } });
  await until(() => states.length === 2, "a second state event");
  assert.deepEqual(states[1], `${G} 6 0 false`);
  // Older than what I hold: ignored.
  s.push({ case: "readReceipt", value: { convId: direct, reader: "alice", readSeq: 2n, readerDevice: "tablet" } });
  s.push({ case: "readReceipt", value: { convId: direct, reader: "bob", readSeq: 4n } });
  await until(() => c.conversation(direct)?.peerReadSeq === 4n, "the peer's receipt");
  assert.equal(c.conversation(direct)?.readSeq, 3n, "never backwards");
  assert.equal(states.length, 2);
  c.stop();
});

test("stop({ rejectPending }) rejects the queued sends (not retryable) and empties the outbox; plain stop() keeps them", async () => {
  const s = fakeServer("alice", () => undefined);
  const c = client(s.factory); // never started: sends wait in the outbox
  const kept = c.sendText(G, "kept");
  let outcome = "pending";
  kept.then(
    () => (outcome = "resolved"),
    (e: MissiveError) => (outcome = `rejected ${e.code} ${e.retryable}`),
  );
  c.stop();
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(outcome, "pending", "plain stop keeps the send queued");
  c.stop({ rejectPending: true });
  await until(() => outcome !== "pending", "the send settles");
  assert.equal(outcome, "rejected 0 false");
  // Nothing is left to resend: a start() sends no SendMessage.
  c.start();
  await until(() => c.state === "online", "online");
  await c.syncNow();
  assert.equal(s.requests.filter((op) => op?.case === "send").length, 0, "the outbox was emptied");
  c.stop();
});
