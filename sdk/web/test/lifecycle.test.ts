/**
 * Unit tests of the message lifecycle in the SDK (spec section 18) against an
 * in-process fake server speaking the real protobuf frames: encoding of every
 * lifecycle request and push, the update_seq catch-up ([UP-2]), merging of
 * pushed updates, delivery receipts and PushAck, send flags, typing throttling.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import {
  ContentSchema,
  MemoryStore,
  MissiveClient,
  MessageSchema,
  MessageUpdate_Kind,
  MessageUpdateSchema,
  ReactionSummarySchema,
  TypingNotifier,
  TypingTracker,
  applyUpdate,
  decodeFrame,
  directConvId,
  encodeFrame,
  mergeReactionsMe,
  tickOf,
  type Frame,
  type FrameInit,
  type Message,
  type MessageUpdate,
  type RequestOp,
  type Transport,
  type TransportFactory,
} from "../src/index.ts";

const conv = directConvId("alice", "bob");

const until = async (cond: () => boolean, what: string, ms = 2000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};
const settle = () => new Promise((r) => setTimeout(r, 30));

const text = (seq: bigint, t: string, sender = "bob", extra: { updateSeq?: bigint } = {}) =>
  create(MessageSchema, { convId: conv, seq, sender, serverTimeMs: 1000n + seq, content: { body: { case: "text", value: { text: t } } }, ...extra });

/**
 * A fake broker for one 1:1 conversation of alice (the client) and bob: holds
 * messages (current forms), the conversation's update_seq, and records every
 * request and PushAck. `updates` answers PullUpdates from the held forms.
 */
function fakeBroker() {
  const messages = new Map<bigint, Message>();
  const state = { updateSeq: 0n, peerReadSeq: 0n, peerDeliveredSeq: 0n };
  const requests: RequestOp[] = [];
  const acks: { convId: string; seq: bigint }[][] = [];
  let pageLimit = 100;
  let sendConn: ((f: FrameInit) => void) | undefined;
  const conns: { push: (f: FrameInit) => void; drop: () => void }[] = [];
  const stateOf = () => ({
    convId: conv,
    maxSeq: BigInt(messages.size),
    updateSeq: state.updateSeq,
    peerReadSeq: state.peerReadSeq,
    peerDeliveredSeq: state.peerDeliveredSeq,
  });
  const handler = (f: Frame, reply: (f: FrameInit) => void) => {
    if (f.body.case === "hello") {
      return reply({
        body: { case: "helloOk", value: { version: 1, userId: "alice", sessionId: "s", maxFrameSize: 1 << 20, pingIntervalSecs: 30, idleTimeoutSecs: 90 } },
      });
    }
    if (f.body.case === "pushAck") {
      acks.push(f.body.value.delivered.map((d) => ({ convId: d.convId, seq: d.seq })));
      return;
    }
    if (f.body.case !== "request") return;
    const { id } = f.body.value;
    const op = f.body.value.op!;
    requests.push(op as RequestOp);
    const ok = (result: any) => reply({ body: { case: "response", value: { id, result } } });
    switch (op.case) {
      case "sync":
        return ok({ case: "sync", value: { conversations: [stateOf()], syncToken: `t${messages.size}.${state.updateSeq}` } });
      case "history":
      case "pull": {
        const all = [...messages.values()].sort((a, b) => (a.seq < b.seq ? -1 : 1));
        const msgs = op.case === "pull" ? all.filter((m) => m.seq >= op.value.fromSeq && m.seq <= op.value.toSeq) : all;
        return ok({ case: "messages", value: { convId: conv, messages: msgs, maxSeq: BigInt(messages.size) } });
      }
      case "pullUpdates": {
        const changed = [...messages.values()]
          .filter((m) => m.updateSeq > op.value.afterUpdateSeq)
          .sort((a, b) => (a.updateSeq < b.updateSeq ? -1 : 1));
        const page = changed.slice(0, pageLimit);
        const more = changed.length > page.length;
        const upTo = more ? page.at(-1)!.updateSeq : state.updateSeq;
        return ok({ case: "updates", value: { convId: conv, messages: page, updateSeq: upTo, more } });
      }
      case "send":
        return ok({ case: "sendAck", value: { convId: conv, seq: op.value.flags?.onlineOnly ? 0n : BigInt(messages.size + 1) } });
      case "react": {
        const m = messages.get(op.value.seq)!;
        state.updateSeq += 1n;
        m.updateSeq = state.updateSeq;
        m.reactions = [create(ReactionSummarySchema, { key: op.value.key, count: 1, users: ["alice"], me: true })];
        return ok({ case: "reactions", value: { convId: conv, seq: m.seq, reactions: m.reactions, updateSeq: m.updateSeq } });
      }
      case "typing":
        return ok({ case: "ok", value: {} });
      default:
        return reply({ body: { case: "response", value: { id, error: { code: 1006, message: "unknown" } } } });
    }
  };
  const factory: TransportFactory = async () => {
    let closed = false;
    const t: Transport = {
      kind: "fake",
      send(payload) {
        if (closed) return;
        const f = decodeFrame(payload);
        queueMicrotask(() => handler(f, (r) => t2.push(r)));
      },
      close() {
        t2.drop();
      },
      onMessage: () => {},
      onClose: () => {},
    };
    const t2 = {
      push(r: FrameInit) {
        if (!closed) queueMicrotask(() => t.onMessage(encodeFrame(r)));
      },
      drop() {
        if (closed) return;
        closed = true;
        queueMicrotask(() => t.onClose("dropped"));
      },
    };
    conns.push(t2);
    sendConn = t2.push;
    return t;
  };
  return {
    factory,
    messages,
    state,
    requests,
    acks,
    conns,
    stateOf,
    setPageLimit: (n: number) => (pageLimit = n),
    push: (f: FrameInit) => sendConn?.(f),
    /** Changes a message on the server (a new update_seq) without pushing anything. */
    change(seq: bigint, fn: (m: Message) => void) {
      const m = messages.get(seq)!;
      fn(m);
      state.updateSeq += 1n;
      m.updateSeq = state.updateSeq;
      return m;
    },
    pulls: () => requests.filter((r) => r?.case === "pullUpdates").map((r) => (r!.value as { afterUpdateSeq: bigint }).afterUpdateSeq),
  };
}

function newClient(b: ReturnType<typeof fakeBroker>, store = new MemoryStore()) {
  const c = new MissiveClient({ transports: [b.factory], token: "t", deviceId: "w1", store, backoffMs: { initial: 5, max: 20 }, pushAckDelayMs: 10 });
  const updates: { u: MessageUpdate; m: Message | undefined }[] = [];
  c.on("messageUpdate", (u, m) => updates.push({ u, m }));
  return { c, updates, store };
}

test("every lifecycle request, result and push round-trips through the frame codec", () => {
  const ops: RequestOp[] = [
    { case: "recall", value: { convId: conv, seq: 3n } },
    { case: "edit", value: { convId: conv, seq: 3n, content: { body: { case: "text", value: { text: "fixed" } } } } },
    { case: "deleteMessages", value: { convId: conv, seqs: [1n, 2n], forEveryone: true } },
    { case: "clearAllMessages", value: {} },
    { case: "react", value: { convId: conv, seq: 3n, key: "👍", remove: true } },
    { case: "getReactions", value: { convId: conv, seqs: [3n] } },
    { case: "listReactionUsers", value: { convId: conv, seq: 3n, key: "👍", cursor: "c", limit: 5 } },
    { case: "setExtensions", value: { convId: conv, seq: 3n, set: { k: "v" }, remove: ["x"], ifVersion: 0n } },
    { case: "pullUpdates", value: { convId: conv, afterUpdateSeq: 9n, limit: 50 } },
    { case: "typing", value: { convId: conv, typing: true } },
    { case: "forward", value: { fromConvId: conv, seqs: [1n], toConvId: "g:x", merged: true, title: "t", clientMsgId: "m1" } },
    { case: "translate", value: { convId: conv, seq: 3n, language: "zh-Hans" } },
    { case: "send", value: { convId: conv, clientMsgId: "c1", content: { body: { case: "text", value: { text: "hi" } } }, flags: { noUnread: true, noPush: true } } },
  ];
  for (const op of ops) {
    if (!op) continue;
    const f = decodeFrame(encodeFrame({ body: { case: "request", value: { id: 1n, op } } }));
    assert.equal(f.body.case, "request");
    const got = f.body.value as { op: { case: string; value: Record<string, unknown> } };
    assert.equal(got.op.case, op.case);
    for (const [k, v] of Object.entries(op.value as Record<string, unknown>)) {
      if (typeof v !== "object") assert.deepEqual(got.op.value[k], v, `${op.case}.${k}`);
    }
  }
  const set = decodeFrame(encodeFrame({ body: { case: "request", value: { id: 1n, op: ops[7] } } }));
  assert.equal((set.body.value as any).op.value.ifVersion, 0n, "if_version 0 is present (optional), not unset");
  const unset = decodeFrame(encodeFrame({ body: { case: "request", value: { id: 1n, op: { case: "setExtensions", value: { convId: conv, seq: 1n } } } } }));
  assert.equal((unset.body.value as any).op.value.ifVersion, undefined);
  const sendF = decodeFrame(encodeFrame({ body: { case: "request", value: { id: 1n, op: ops.at(-1) } } }));
  assert.deepEqual([(sendF.body.value as any).op.value.flags.noUnread, (sendF.body.value as any).op.value.flags.onlineOnly], [true, false]);

  // Pushes.
  const pushes: FrameInit[] = [
    {
      body: {
        case: "push",
        value: {
          event: {
            case: "messageUpdate",
            value: { kind: MessageUpdate_Kind.EDITED, convId: conv, seq: 3n, by: "bob", atMs: 5n, updateSeq: 7n, message: { convId: conv, seq: 3n, editVersion: 2, editedAtMs: 5n } },
          },
        },
      },
    },
    { body: { case: "push", value: { event: { case: "typing", value: { convId: conv, userId: "bob", deviceId: "d", typing: true } } } } },
    { body: { case: "push", value: { event: { case: "deliveryReceipt", value: { convId: conv, userId: "bob", deliveredSeq: 4n } } } } },
  ];
  const kinds = pushes.map((p) => {
    const f = decodeFrame(encodeFrame(p));
    return f.body.case === "push" ? f.body.value.event.case : "";
  });
  assert.deepEqual(kinds, ["messageUpdate", "typing", "deliveryReceipt"]);

  // The lifecycle fields of Message and ConversationState.
  const m = create(MessageSchema, {
    convId: conv,
    seq: 3n,
    recalled: { by: "bob", atMs: 9n },
    editVersion: 1,
    editedAtMs: 8n,
    deleted: true,
    reactions: [{ key: "❤️", count: 2, users: ["bob", "carol"], me: false }],
    extensions: { k: { value: "v", version: 3n, by: "bob", atMs: 2n } },
    updateSeq: 11n,
    flags: { noHistory: true },
  });
  const back = decodeFrame(encodeFrame({ body: { case: "push", value: { event: { case: "message", value: m } } } }));
  const bm = (back.body.value as any).event.value as Message;
  assert.equal(bm.recalled?.by, "bob");
  assert.equal(bm.reactions[0].count, 2);
  assert.equal(bm.extensions.k.version, 3n);
  assert.equal(bm.updateSeq, 11n);
  assert.equal(bm.flags?.noHistory, true);
  assert.equal(bm.deleted, true);
  const st = decodeFrame(
    encodeFrame({ body: { case: "push", value: { event: { case: "conversation", value: { convId: conv, updateSeq: 4n, peerDeliveredSeq: 2n } } } } }),
  );
  assert.deepEqual([(st.body.value as any).event.value.updateSeq, (st.body.value as any).event.value.peerDeliveredSeq], [4n, 2n]);
});

test("a ConversationState with a higher update_seq makes the client pull updates and emit the current forms", async () => {
  const b = fakeBroker();
  b.messages.set(1n, text(1n, "one"));
  b.messages.set(2n, text(2n, "two"));
  const { c, updates, store } = newClient(b);
  c.start();
  await until(() => c.conversations().length === 1, "synced");
  await c.history(conv);
  assert.equal(c.messages(conv).length, 2);
  assert.equal(c.appliedUpdateSeq(conv), 0n);
  assert.deepEqual(b.pulls(), [], "a new conversation (update_seq 0) needs no pull");

  // Bob recalls seq 2: the push is lost; the next ConversationState says update_seq 1.
  b.change(2n, (m) => {
    m.content = undefined;
    m.recalled = create(MessageSchema, { recalled: { by: "bob", atMs: 5n } }).recalled;
  });
  b.push({ body: { case: "push", value: { event: { case: "conversation", value: b.stateOf() } } } });
  await until(() => updates.length === 1, "the pulled update");
  assert.deepEqual(b.pulls(), [0n]);
  assert.equal(updates[0].u.kind, MessageUpdate_Kind.RECALLED);
  assert.equal(updates[0].m?.recalled?.by, "bob");
  assert.equal(c.messages(conv)[1].recalled?.by, "bob", "the held message is the current form");
  assert.equal(c.messages(conv)[1].content, undefined);
  assert.equal(c.appliedUpdateSeq(conv), 1n);
  assert.match(store.getItem("missive:alice:w1:convs") ?? "", /"u":"1"/, "the applied update_seq is persisted");

  // The same update_seq again: nothing to pull.
  b.push({ body: { case: "push", value: { event: { case: "conversation", value: b.stateOf() } } } });
  await settle();
  assert.deepEqual(b.pulls(), [0n]);
  c.stop();

  // Offline: three edits of seq 1; the next session's sync pulls them in pages from the stored value.
  for (const t of ["one!", "one!!", "one!!!"]) {
    b.change(1n, (m) => {
      m.content = create(ContentSchema, { body: { case: "text", value: { text: t } } });
      m.editVersion += 1;
    });
  }
  b.change(2n, () => {}); // another change of seq 2 (e.g. an extension)
  b.setPageLimit(1);
  const again = newClient(b, store);
  again.c.start();
  await until(() => again.c.appliedUpdateSeq(conv) === 5n, "caught up after the sync");
  // The fake returns every changed message once, at its latest: seq 1 (update 4), then seq 2 (5).
  assert.deepEqual(b.pulls(), [0n, 1n, 4n]);
  assert.deepEqual(
    again.updates.map((x) => [x.m?.seq, x.m?.updateSeq]),
    [
      [1n, 4n],
      [2n, 5n],
    ],
  );
  again.c.stop();
});

test("pushed updates apply to the held message; a stale push is ignored; reactions keep `me`", async () => {
  const b = fakeBroker();
  b.messages.set(1n, text(1n, "hello", "alice"));
  const { c, updates } = newClient(b);
  c.start();
  await until(() => c.conversations().length === 1, "synced");
  await c.history(conv);
  await c.react(conv, 1n, "👍");
  assert.equal(updates.length, 1, "the own reaction is emitted from the answer");
  assert.equal(c.messages(conv)[0].reactions[0].me, true);

  // Bob reacts too: the push carries me = false for everyone.
  const push = (u: Partial<MessageUpdate>) =>
    b.push({ body: { case: "push", value: { event: { case: "messageUpdate", value: create(MessageUpdateSchema, { convId: conv, seq: 1n, ...u } as any) } } } });
  push({
    kind: MessageUpdate_Kind.REACTIONS,
    by: "bob",
    updateSeq: 3n,
    message: create(MessageSchema, { convId: conv, seq: 1n, updateSeq: 3n, reactions: [{ key: "👍", count: 2, users: ["bob", "carol"] }, { key: "😂", count: 1, users: ["bob"] }] }),
  });
  await until(() => updates.length === 2, "reaction push");
  const r = c.messages(conv)[0].reactions;
  assert.deepEqual(
    r.map((x) => [x.key, x.count, x.me]),
    [
      ["👍", 2, true],
      ["😂", 1, false],
    ],
    "me kept from the held form",
  );
  // An edit at update 4, then a late push of update 2: ignored.
  push({
    kind: MessageUpdate_Kind.EDITED,
    by: "alice",
    updateSeq: 4n,
    atMs: 77n,
    message: create(MessageSchema, { convId: conv, seq: 1n, editVersion: 1, editedAtMs: 77n, content: { body: { case: "text", value: { text: "hello!" } } } }),
  });
  push({ kind: MessageUpdate_Kind.RECALLED, by: "alice", updateSeq: 2n });
  await until(() => updates.length === 3, "edit push");
  await settle();
  const m = c.messages(conv)[0];
  assert.equal(updates.length, 3, "the stale recall was not emitted");
  assert.equal(m.content?.body.case === "text" && m.content.body.value.text, "hello!");
  assert.deepEqual([m.editVersion, m.editedAtMs, m.updateSeq, m.recalled], [1, 77n, 4n, undefined]);
  assert.equal(m.reactions.length, 2, "an edit keeps the reactions");
  c.stop();
});

test("applyUpdate: recall and delete drop the content; unknown kinds and stale updates change nothing", () => {
  const held = text(4n, "secret", "bob", { updateSeq: 2n });
  const u = (kind: MessageUpdate_Kind, updateSeq: bigint, message?: Partial<Message>) =>
    create(MessageUpdateSchema, { kind, convId: conv, seq: 4n, by: "bob", atMs: 9n, updateSeq, message: message as any });
  const rec = applyUpdate(held, u(MessageUpdate_Kind.RECALLED, 3n), "alice")!.message;
  assert.deepEqual([rec.content, rec.recalled?.by, rec.recalled?.atMs, rec.updateSeq], [undefined, "bob", 9n, 3n]);
  assert.equal(held.content?.body.case, "text", "the held form is not mutated");
  const del = applyUpdate(held, u(MessageUpdate_Kind.DELETED_FOR_ME, 3n), "alice")!.message;
  assert.deepEqual([del.deleted, del.content], [true, undefined]);
  assert.equal(applyUpdate(held, u(MessageUpdate_Kind.RECALLED, 2n), "alice"), undefined, "not newer");
  assert.equal(applyUpdate(held, u(99 as MessageUpdate_Kind, 5n), "alice"), undefined, "unknown kind");
  const ext = applyUpdate(held, u(MessageUpdate_Kind.EXTENSIONS, 6n, { extensions: { a: { value: "1", version: 1n, by: "bob", atMs: 1n } } as any }), "alice")!.message;
  assert.deepEqual(Object.keys(ext.extensions), ["a"]);

  // This user reacted from another device: listed -> me; not listed in a truncated list -> unknown.
  const mine = mergeReactionsMe([create(ReactionSummarySchema, { key: "a", count: 3, users: ["alice"] })], [], "alice", "alice");
  assert.deepEqual([mine.reactions[0].me, mine.unknown], [true, false]);
  const hidden = mergeReactionsMe([create(ReactionSummarySchema, { key: "a", count: 30, users: ["x"] })], [], "alice", "alice");
  assert.deepEqual([hidden.reactions[0].me, hidden.unknown], [false, true]);
  const gone = mergeReactionsMe([create(ReactionSummarySchema, { key: "a", count: 1, users: ["x"] })], [create(ReactionSummarySchema, { key: "a", me: true })], "alice", "alice");
  assert.deepEqual([gone.reactions[0].me, gone.unknown], [false, false], "a complete list without me: removed");
});

test("pushed messages are acknowledged with PushAck; delivery receipts move the ticks", async () => {
  const b = fakeBroker();
  const { c } = newClient(b);
  const receipts: bigint[] = [];
  c.on("delivery", (d) => receipts.push(d.deliveredSeq));
  c.start();
  await until(() => c.conversations().length === 1, "synced");
  b.messages.set(1n, text(1n, "a"));
  b.messages.set(2n, text(2n, "b"));
  for (const seq of [1n, 2n]) b.push({ body: { case: "push", value: { event: { case: "message", value: b.messages.get(seq)! } } } });
  await until(() => b.acks.length > 0, "a PushAck");
  assert.deepEqual(b.acks.flat().at(-1), { convId: conv, seq: 2n }, "cumulative, batched");

  await c.sendText(conv, "mine"); // seq 3
  assert.equal(tickOf(c.conversation(conv), 3n), "sent");
  b.push({ body: { case: "push", value: { event: { case: "deliveryReceipt", value: { convId: conv, userId: "bob", deliveredSeq: 3n } } } } });
  await until(() => receipts.length === 1, "receipt event");
  assert.equal(c.conversation(conv)?.peerDeliveredSeq, 3n);
  assert.equal(tickOf(c.conversation(conv), 3n), "delivered");
  b.push({ body: { case: "push", value: { event: { case: "readReceipt", value: { convId: conv, reader: "bob", readSeq: 3n } } } } });
  await until(() => tickOf(c.conversation(conv), 3n) === "read", "read tick");
  // An older receipt never moves the tick back.
  b.push({ body: { case: "push", value: { event: { case: "deliveryReceipt", value: { convId: conv, userId: "bob", deliveredSeq: 1n } } } } });
  await until(() => receipts.length === 2, "second receipt");
  assert.equal(c.conversation(conv)?.peerDeliveredSeq, 3n);
  c.stop();
});

test("send flags go out with the send; an online-only message (seq 0) is emitted but not held", async () => {
  const b = fakeBroker();
  const { c } = newClient(b);
  const seen: bigint[] = [];
  c.on("message", (m) => seen.push(m.seq));
  c.start();
  await until(() => c.state === "online", "online");
  const ack = await c.send(conv, { body: { case: "text", value: { text: "ping" } } }, { flags: { onlineOnly: true } });
  assert.equal(ack.seq, 0n);
  const sent = b.requests.find((r) => r?.case === "send")!.value as { flags?: { onlineOnly: boolean } };
  assert.equal(sent.flags?.onlineOnly, true);
  b.push({ body: { case: "push", value: { event: { case: "message", value: text(0n, "live") } } } });
  await until(() => seen.length === 2, "the pushed online-only message");
  assert.deepEqual(seen, [0n, 0n]);
  assert.equal(c.messages(conv).length, 0, "never held");
  c.stop();
});

test("typing notifier: throttled while typing, one stop after idle or on stop()", () => {
  let now = 0;
  const timers: { fn: () => void; at: number }[] = [];
  const sent: boolean[] = [];
  const n = new TypingNotifier((t) => sent.push(t), {
    intervalMs: 3000,
    idleMs: 5000,
    now: () => now,
    setTimer: (fn, ms) => {
      const t = { fn, at: now + ms };
      timers.push(t);
      return t;
    },
    clearTimer: (t) => timers.splice(timers.indexOf(t as never), 1),
  });
  const tick = (ms: number) => {
    now += ms;
    for (const t of [...timers]) if (t.at <= now) (timers.splice(timers.indexOf(t), 1), t.fn());
  };
  for (let i = 0; i < 10; i++) {
    n.input();
    tick(500);
  }
  assert.deepEqual(sent, [true, true], "5 s of typing: at 0 and at 3 s");
  tick(4499); // the last input was at 4.5 s
  assert.deepEqual(sent, [true, true]);
  tick(1);
  assert.deepEqual(sent, [true, true, false], "stopped after 5 s idle");
  n.stop();
  assert.deepEqual(sent, [true, true, false], "no second stop");
  n.input();
  n.stop();
  assert.deepEqual(sent, [true, true, false, true, false]);
  assert.equal(timers.length, 0);
});

test("typing tracker: entries expire, stop ends them, the map is bounded", () => {
  let now = 0;
  const t = new TypingTracker(6000, 3, () => now);
  assert.equal(t.apply({ convId: "c", userId: "bob", typing: true }), true);
  assert.equal(t.apply({ convId: "c", userId: "bob", typing: true }), false, "a renewal is no change");
  assert.deepEqual(t.typing("c"), ["bob"]);
  now = 5999;
  assert.deepEqual(t.typing("c"), ["bob"]);
  now = 6000;
  assert.deepEqual(t.typing("c"), []);
  t.apply({ convId: "c", userId: "bob", typing: true });
  assert.equal(t.apply({ convId: "c", userId: "bob", typing: false }), true);
  assert.deepEqual(t.typing("c"), []);
  for (const u of ["a", "b", "c", "d", "e"]) t.apply({ convId: "g", userId: u, typing: true });
  assert.deepEqual(t.typing("g"), ["c", "d", "e"], "oldest dropped beyond the bound");
  assert.equal(t.nextExpiryMs(), 6000);
});

test("states that arrive during a running catch-up do not start a second PullUpdates of the same range", async () => {
  const b = fakeBroker();
  b.messages.set(1n, text(1n, "one"));
  const { c, updates } = newClient(b);
  c.start();
  await until(() => c.conversations().length === 1, "synced");
  await c.history(conv);
  b.change(1n, (m) => (m.editVersion = 1));
  const s1 = b.stateOf();
  b.change(1n, (m) => (m.editVersion = 2));
  const s2 = b.stateOf();
  // Both states arrive before the first pull is answered.
  b.push({ body: { case: "push", value: { event: { case: "conversation", value: s1 } } } });
  b.push({ body: { case: "push", value: { event: { case: "conversation", value: s2 } } } });
  await until(() => c.appliedUpdateSeq(conv) === 2n, "caught up");
  await settle();
  assert.deepEqual(b.pulls(), [0n], "one pull brought both changes");
  assert.equal(updates.length, 1);
  assert.equal(c.messages(conv)[0].editVersion, 2);
  c.stop();
});
