/**
 * Parity of the TypeScript SDK with the protocol schema: every `Request.op`
 * case of frame.proto has a public method on `MissiveClient`, each new method
 * sends its own case, and every `Push.event` case reaches a typed event.
 * The cases are read from the generated descriptors at run time, so adding a
 * case to the schema without a method (or an event) fails here.
 * Also: result unwrapping, and the local state taken from answers
 * (conversation flags, clear history, group notify, global DND), against an
 * in-process fake server.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ConversationStateSchema,
  MessageUpdate_Kind,
  MissiveClient,
  MissiveError,
  PushSchema,
  RequestSchema,
  directConvId,
  groupConvId,
  type ClientEvents,
  type ConversationState,
  type RequestOp,
} from "../src/index.ts";
import { create } from "@bufbuild/protobuf";
import { fakeClient, fakeServer, online, until, type ResultInit } from "./fake.ts";

/** Request cases whose method is not named after the case. */
const METHOD_OF: Record<string, string> = { sync: "syncNow", pull: "pullRange" };

/** Methods that keep their older positional signatures (covered by sdk.test.ts and lifecycle.test.ts). */
const POSITIONAL = new Set([
  "send", "syncNow", "pullRange", "history", "markRead", "subscribePresence", "recall", "edit", "deleteMessages",
  "clearAllMessages", "react", "getReactions", "listReactionUsers", "setExtensions", "pullUpdates", "typing",
  "forward", "translate",
]);

/** Push cases whose event is not named after the case. */
const EVENT_OF: Record<string, keyof ClientEvents> = { readReceipt: "receipt", deliveryReceipt: "delivery" };

const requestCases = () => {
  const op = RequestSchema.oneofs.find((o) => o.name === "op");
  assert.ok(op, "Request has the oneof op");
  return op.fields.map((f) => f.localName);
};

const client = fakeClient;

test("parity: every Request.op case of frame.proto has a method on MissiveClient", () => {
  const cases = requestCases();
  assert.ok(cases.length >= 60, `read ${cases.length} cases from the descriptor`);
  const proto = MissiveClient.prototype as unknown as Record<string, unknown>;
  const missing = cases.map((c) => METHOD_OF[c] ?? c).filter((m) => typeof proto[m] !== "function");
  assert.deepEqual(missing, [], `Request.op cases without a MissiveClient method: ${missing.join(", ")}`);
});

test("parity: each request method sends its own op case and rejects with the broker's error", async () => {
  const s = fakeServer("alice", (op) => {
    if (op?.case === "sync") return undefined; // the default empty sync
    throw { code: 3000, message: `refused ${op?.case}` };
  });
  const c = client(s.factory);
  await online(c);
  const api = c as unknown as Record<string, (req: object) => Promise<unknown>>;
  for (const kase of requestCases()) {
    const method = METHOD_OF[kase] ?? kase;
    if (POSITIONAL.has(method)) continue;
    const before = s.requests.length;
    await assert.rejects(api[method]({}), (e: unknown) => e instanceof MissiveError && e.code === 3000, method);
    assert.equal(s.requests[before]?.case, kase, `${method} sends Request.op ${kase}`);
  }
  c.stop();
});

test("parity: every Push.event case is emitted as a typed event", async () => {
  const conv = directConvId("alice", "bob");
  const samples: Record<string, object> = {
    message: { convId: conv, seq: 1n, sender: "bob", content: { body: { case: "text", value: { text: "hi" } } } },
    readReceipt: { convId: conv, reader: "bob", readSeq: 1n },
    conversation: { convId: conv, maxSeq: 1n },
    settings: { globalDnd: true },
    kicked: { reason: 1, message: "bye" },
    profile: { userId: "bob", nickname: "Bob" },
    relation: { userId: "bob", isFriend: true },
    presence: { userId: "bob", online: true },
    groupApplication: { groupId: "g1", userId: "alice", inviter: "bob" },
    messageUpdate: { convId: conv, seq: 1n, kind: MessageUpdate_Kind.EDITED, updateSeq: 1n },
    typing: { convId: conv, userId: "bob", typing: true },
    deliveryReceipt: { convId: conv, userId: "bob", deliveredSeq: 1n },
  };
  const event = PushSchema.oneofs.find((o) => o.name === "event");
  assert.ok(event);
  const s = fakeServer("alice", (op) => {
    if (op?.case === "sync") return undefined;
    throw { code: 3000, message: "no" };
  });
  const c = client(s.factory);
  await online(c);
  for (const f of event.fields) {
    const name = EVENT_OF[f.localName] ?? (f.localName as keyof ClientEvents);
    assert.ok(samples[f.localName], `a sample for Push.${f.localName} (add one with its event)`);
    let seen = 0;
    const off = c.on(name, (() => seen++) as never);
    s.push({ case: f.localName, value: samples[f.localName] } as never);
    await until(() => seen > 0, `event ${name} for Push.${f.localName}`);
    off();
  }
  assert.equal(c.globalDnd, true, "a settings push sets globalDnd");
  c.stop();
});

test("an answer with another result case rejects with a MissiveError naming both", async () => {
  let invite: "ok" | "group" = "ok";
  const s = fakeServer("alice", (op): ResultInit | undefined => {
    if (op?.case === "getProfiles") return { case: "ok", value: {} };
    if (op?.case === "inviteToGroup") return invite === "ok" ? { case: "ok", value: {} } : { case: "group", value: { groupId: "g1" } };
    return undefined;
  });
  const c = client(s.factory);
  await online(c);
  await assert.rejects(c.getProfiles({ userIds: ["bob"] }), (e: unknown) => {
    assert.ok(e instanceof MissiveError);
    assert.equal(e.code, 0);
    assert.match(e.message, /getProfiles: unexpected result ok \(expected profiles\)/);
    return true;
  });
  assert.equal(await c.inviteToGroup({ groupId: "g1", userIds: ["bob"] }), undefined, "ok: joined at once");
  invite = "group";
  assert.equal((await c.inviteToGroup({ groupId: "g1", userIds: ["bob"] }))?.groupId, "g1", "group: consent needed");
  c.stop();
  await assert.rejects(c.getProfiles({ userIds: ["bob"] }), (e: unknown) => e instanceof MissiveError && e.retryable);
});

test("answered conversation states and settings are taken at once and emitted", async () => {
  const conv = directConvId("alice", "bob");
  const state = create(ConversationStateSchema, { convId: conv, maxSeq: 3n, readSeq: 3n });
  const s = fakeServer("alice", (op: RequestOp): ResultInit | undefined => {
    switch (op?.case) {
      case "updateConversation":
        if (op.value.pinned !== undefined) state.pinned = op.value.pinned;
        if (op.value.hidden !== undefined) state.hidden = op.value.hidden;
        return { case: "conversation", value: state };
      case "clearHistory":
        state.clearedSeq = 3n;
        return { case: "conversation", value: state };
      case "setGroupNotify":
        return { case: "conversation", value: { convId: groupConvId(op.value.groupId ?? ""), groupNotify: op.value.notify } };
      case "setGlobalDnd":
        return { case: "ok", value: {} };
      case "sync":
        return { case: "sync", value: { conversations: [state], settings: { globalDnd: false }, syncToken: "t1" } };
      default:
        return undefined;
    }
  });
  const c = client(s.factory);
  const states: ConversationState[] = [];
  const settings: boolean[] = [];
  c.on("conversation", (x) => states.push(x));
  c.on("settings", (x) => settings.push(x.globalDnd));
  await online(c);
  assert.ok(settings.length >= 1 && settings.every((x) => x === false), "a sync page's settings are emitted");
  settings.length = 0;

  const pinned = await c.updateConversation({ convId: conv, pinned: true });
  assert.equal(pinned.pinned, true);
  assert.equal(c.conversation(conv)?.pinned, true, "held state updated from the answer");
  assert.equal(states.at(-1)?.pinned, true, "conversation emitted");
  await c.updateConversation({ convId: conv, hidden: true });
  assert.equal(c.conversations().some((x) => x.convId === conv), false, "hidden leaves the list at once");

  await c.clearHistory({ convId: conv });
  assert.equal(c.conversation(conv)?.clearedSeq, 3n);

  const g = await c.setGroupNotify({ groupId: "g1", notify: 1 });
  assert.equal(c.conversation(groupConvId("g1"))?.groupNotify, g.groupNotify);

  assert.equal(c.globalDnd, false);
  await c.setGlobalDnd({ enabled: true });
  assert.equal(c.globalDnd, true);
  assert.deepEqual(settings, [true], "settings emitted from the answer");
  c.stop();
});

test("pullRange: history below the contiguous seq is held, not emitted; new messages are emitted gap-free in order", async () => {
  const conv = directConvId("alice", "bob");
  const msg = (seq: bigint) => ({ convId: conv, seq, sender: "bob", content: { body: { case: "text" as const, value: { text: `m${seq}` } } } });
  const s = fakeServer("alice", (op) => {
    if (op?.case === "sync") return { case: "sync", value: { conversations: [{ convId: conv, maxSeq: 4n }], syncToken: "t" } };
    if (op?.case !== "pull") return undefined;
    const from = op.value.fromSeq ?? 1n;
    const to = op.value.toSeq || 8n;
    // Two messages per page, as a cut page ([P-3]).
    const seqs = [];
    for (let q = from; q <= to && seqs.length < 2; q++) seqs.push(q);
    const last = seqs.at(-1) ?? 0n;
    return { case: "messages", value: { convId: conv, messages: seqs.map(msg), maxSeq: 8n, more: last < to } };
  });
  const c = client(s.factory);
  await online(c); // first sight: 1..=4 is history
  const emitted: bigint[] = [];
  c.on("message", (m) => emitted.push(m.seq));

  const old = await c.pullRange(conv, 2n, 3n);
  assert.deepEqual(old.map((m) => m.seq), [2n, 3n]);
  assert.deepEqual(emitted, [], "history is not emitted");

  const fresh = await c.pullRange(conv, 7n);
  assert.deepEqual(fresh.map((m) => m.seq), [7n, 8n], "resolves with the asked range");
  assert.deepEqual(emitted, [5n, 6n, 7n, 8n], "the gap below comes too, in order, each once");
  const pulls = s.requests.filter((r) => r?.case === "pull").map((r) => (r?.case === "pull" ? r.value.fromSeq : undefined));
  assert.deepEqual(pulls, [2n, 5n, 7n], "the second pull starts right after the contiguous seq, then pages on");
  assert.deepEqual(c.messages(conv).map((m) => m.seq), [2n, 3n, 5n, 6n, 7n, 8n]);
  c.stop();
});

test("a pushed conversation state ahead of the held messages pulls the missing range (8.10)", async () => {
  const conv = directConvId("alice", "bob");
  const msg = (seq: bigint) => ({ convId: conv, seq, sender: "bob", content: { body: { case: "text" as const, value: { text: `m${seq}` } } } });
  const s = fakeServer("alice", (op): ResultInit | undefined => {
    if (op?.case === "sync") return { case: "sync", value: { conversations: [{ convId: conv, maxSeq: 1n }], syncToken: "t" } };
    if (op?.case !== "pull") return undefined;
    const seqs = [];
    for (let q = op.value.fromSeq ?? 1n; q <= (op.value.toSeq ?? 0n); q++) seqs.push(q);
    return { case: "messages", value: { convId: conv, messages: seqs.map(msg), maxSeq: 3n } };
  });
  const c = client(s.factory);
  await online(c);
  const emitted: bigint[] = [];
  c.on("message", (m) => emitted.push(m.seq));
  s.push({ case: "conversation", value: { convId: conv, maxSeq: 3n, readSeq: 3n } });
  await until(() => emitted.length === 2, "the missing messages");
  assert.deepEqual(emitted, [2n, 3n]);
  assert.equal(c.conversation(conv)?.readSeq, 3n);
  c.stop();
});
