/**
 * The held state against conversations the client has not synced yet and
 * against states that arrive out of order (review fixes):
 * - a `conversation` push, a read or delivery receipt, or a message update for
 *   a conversation no sync brought yet never leaves a placeholder that the next
 *   sync would take for a known conversation and pull from seq 1: a pushed state
 *   is taken as sync takes a first sight (everything up to `max_seq` is history);
 * - `history()` never moves the held `max_seq` without the messages: newer ones
 *   are pulled by the gap rule and update the last message, `unread`, `mentioned`;
 * - `read_seq`, `cleared_seq` and the peer's positions never go back when an
 *   older state (an answer overtaken by a push, [PU-2]) is taken;
 * - a sync drops held messages at or below a raised `cleared_seq` ([Y-9] step 4);
 * - a message pushed for a conversation not held yet makes the older seqs
 *   history (this client keeps the newest page, spec 9), not a gap from seq 1.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { directConvId, groupConvId, type RequestOp } from "../src/index.ts";
import { fakeClient, fakeServer, online, until, type ResultInit } from "./fake.ts";

const D = directConvId("alice", "bob");
const G = groupConvId("g1");
const text = (convId: string, seq: bigint, sender = "bob", mentions?: { userIds?: string[]; all?: boolean }) => ({
  convId,
  seq,
  sender,
  serverTimeMs: 1000n + seq,
  content: { body: { case: "text" as const, value: { text: `m${seq}` } }, mentions },
});

test("first sight: a pushed state, receipts and updates of a conversation not synced yet pull nothing from seq 1", async () => {
  const pulls: RequestOp[] = [];
  let synced = false;
  const s = fakeServer("alice", (op): ResultInit | undefined => {
    if (op?.case === "sync")
      return {
        case: "sync",
        value: { conversations: synced ? [{ convId: D, maxSeq: 500n, readSeq: 500n }] : [], syncToken: "t" },
      };
    if (op?.case === "pull") {
      pulls.push(op);
      return { case: "messages", value: { convId: op.value.convId, messages: [], maxSeq: 500n } };
    }
    return undefined;
  });
  const c = fakeClient(s.factory);
  await online(c);
  const receipts: string[] = [];
  const updates: string[] = [];
  const messages: bigint[] = [];
  c.on("receipt", (r) => receipts.push(r.convId));
  c.on("delivery", (d) => receipts.push(`delivery ${d.convId}`));
  c.on("messageUpdate", (u) => updates.push(u.convId));
  c.on("message", (m) => messages.push(m.seq));

  // Receipts and an update for a conversation the first sync has not brought yet.
  s.push({ case: "readReceipt", value: { convId: D, reader: "bob", readSeq: 400n } });
  s.push({ case: "deliveryReceipt", value: { convId: D, userId: "bob", deliveredSeq: 450n } });
  s.push({ case: "messageUpdate", value: { convId: D, seq: 10n, by: "bob", updateSeq: 3n } });
  await until(() => receipts.length === 2 && updates.length === 1, "the events");
  assert.equal(c.conversation(D), undefined, "no placeholder state");
  assert.deepEqual(c.conversations(), []);

  // The sync then brings it: first sight, nothing pulled.
  synced = true;
  await c.syncNow();
  assert.equal(c.conversation(D)?.maxSeq, 500n);
  assert.equal(pulls.length, 0, "history stays on demand");
  assert.deepEqual(messages, []);

  // A pushed state of another conversation seen for the first time: no pull either.
  s.push({ case: "conversation", value: { convId: G, maxSeq: 300n, readSeq: 300n, pinned: true } });
  await until(() => c.conversation(G)?.pinned === true, "the pushed state");
  s.push({ case: "message", value: text(G, 301n) });
  await until(() => c.conversation(G)?.maxSeq === 301n, "the next message");
  assert.equal(pulls.length, 0, "the next message follows the pushed max_seq: no gap");
  assert.deepEqual(messages, [301n]);
  assert.equal(c.conversation(G)?.unread, 1n);
  c.stop();
});

test("history: a newest page past the held messages is pulled as new (last message, unread, mention), max_seq not moved alone", async () => {
  let max = 3n;
  const log = new Map<bigint, ReturnType<typeof text>>();
  for (let q = 1n; q <= 3n; q++) log.set(q, text(G, q));
  const s = fakeServer("alice", (op): ResultInit | undefined => {
    switch (op?.case) {
      case "sync":
        return { case: "sync", value: { conversations: [{ convId: G, maxSeq: 3n, readSeq: 3n, minReadableSeq: 1n }], syncToken: "t" } };
      case "history": {
        const before = op.value.beforeSeq || max + 1n;
        const page = [...log.values()].filter((m) => m.seq < before);
        return { case: "messages", value: { convId: G, messages: page, maxSeq: max, minReadableSeq: 1n } };
      }
      case "pull": {
        const to = op.value.toSeq || max;
        const page = [...log.values()].filter((m) => m.seq >= (op.value.fromSeq ?? 1n) && m.seq <= to);
        return { case: "messages", value: { convId: G, messages: page, maxSeq: max, minReadableSeq: 1n } };
      }
      default:
        return undefined;
    }
  });
  const c = fakeClient(s.factory);
  await online(c);
  const got: bigint[] = [];
  c.on("message", (m) => got.push(m.seq));
  // Stored meanwhile, its push missed: the history page's max_seq says 4.
  max = 4n;
  log.set(4n, text(G, 4n, "bob", { userIds: ["alice"] }));
  await c.history(G);
  await until(() => got.includes(4n), "the newer message pulled");
  const st = c.conversation(G)!;
  assert.equal(st.maxSeq, 4n);
  assert.equal(st.lastMessage?.seq, 4n, "the last message follows");
  assert.equal(st.unread, 1n, "counted once");
  assert.equal(st.mentioned, true, "its mention counts");
  assert.deepEqual(got, [4n], "history itself emits nothing; the new message once");
  c.stop();
});

test("positions never go back: an answer computed before a pushed newer state keeps read_seq, cleared_seq and the peer's", async () => {
  let answer: ResultInit | undefined;
  const s = fakeServer("alice", (op): ResultInit | undefined => {
    if (op?.case === "sync")
      return { case: "sync", value: { conversations: [{ convId: D, maxSeq: 6n, readSeq: 2n, unread: 4n }], syncToken: "t" } };
    if (op?.case === "updateConversation") return answer;
    return undefined;
  });
  const c = fakeClient(s.factory);
  await online(c);
  // Another device read everything and cleared up to 3; the peer read 5.
  s.push({ case: "conversation", value: { convId: D, maxSeq: 6n, readSeq: 6n, unread: 0n, clearedSeq: 3n, peerReadSeq: 5n } });
  await until(() => c.conversation(D)?.readSeq === 6n, "the pushed state");
  // This device's pin, answered with a state the broker computed before those changes.
  answer = { case: "conversation", value: { convId: D, maxSeq: 6n, readSeq: 2n, unread: 4n, pinned: true, peerReadSeq: 1n } };
  const st = await c.updateConversation({ convId: D, pinned: true });
  assert.equal(st.pinned, true, "the answer's flags are taken");
  assert.equal(st.readSeq, 6n, "read_seq never goes back");
  assert.equal(st.unread, 0n, "nothing above the read position");
  assert.equal(st.clearedSeq, 3n);
  assert.equal(st.peerReadSeq, 5n);
  assert.equal(c.conversation(D), st);
  c.stop();
});

test("sync: a raised cleared_seq drops the held messages at or below it ([Y-9] step 4)", async () => {
  let cleared = 0n;
  const s = fakeServer("alice", (op): ResultInit | undefined => {
    if (op?.case === "sync")
      return { case: "sync", value: { conversations: [{ convId: D, maxSeq: 3n, readSeq: 3n, clearedSeq: cleared }], syncToken: "t" } };
    if (op?.case === "history")
      return { case: "messages", value: { convId: D, messages: [text(D, 1n), text(D, 2n), text(D, 3n)], maxSeq: 3n } };
    return undefined;
  });
  const c = fakeClient(s.factory);
  await online(c);
  await c.history(D);
  assert.equal(c.messages(D).length, 3);
  cleared = 2n; // cleared on another device while this one was away
  await c.syncNow();
  assert.deepEqual(
    c.messages(D).map((m) => m.seq),
    [3n],
  );
  c.stop();
});

test("first sight through a message push: older messages are history, not a gap pulled from seq 1", async () => {
  const pulls: RequestOp[] = [];
  const s = fakeServer("alice", (op): ResultInit | undefined => {
    if (op?.case === "pull") {
      pulls.push(op);
      return { case: "messages", value: { convId: op.value.convId, messages: [], maxSeq: 41n } };
    }
    return undefined;
  });
  const c = fakeClient(s.factory);
  await online(c);
  const messages: string[] = [];
  c.on("message", (m) => messages.push(`${m.convId} ${m.seq}`));
  s.push({ case: "message", value: text(G, 40n) });
  await until(() => messages.length === 1, "the pushed message");
  assert.deepEqual(messages, [`${G} 40`]);
  assert.equal(c.conversation(G)?.maxSeq, 40n);
  assert.equal(c.conversation(G)?.unread, 1n);
  // The next one follows; a later gap is still filled.
  s.push({ case: "message", value: text(G, 41n) });
  await until(() => messages.length === 2, "the next message");
  s.push({ case: "message", value: text(G, 43n) });
  await until(() => pulls.length === 1, "a gap pull");
  const p = pulls[0];
  assert.ok(p?.case === "pull" && p.value.fromSeq === 42n, `gap pulled from 42, not from 1: ${JSON.stringify(p?.value, (_, v) => (typeof v === "bigint" ? `${v}` : v))}`);
  // A first message of a new conversation (seq 1) is taken as is.
  s.push({ case: "message", value: text(D, 1n) });
  await until(() => messages.includes(`${D} 1`), "seq 1 of a new conversation");
  c.stop();
});
