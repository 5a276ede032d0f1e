/**
 * Behavioural tests of the SDK's request methods and push events against a
 * REAL broker (the release `missive` binary) on loopback: accounts, profiles,
 * presence, friends, the blacklist, groups, conversation flags across a
 * user's devices, global DND, sync and pull, group mentions and receipts
 * against the broker's states, and the spec's error codes.
 * One broker serves the file; each test uses its own user ids. Every wait is
 * bounded (events: 5 s; the file: well under the runner's 60 s per test).
 * Skipped, saying why, when the broker binary is not built.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import {
  AddFriendStatus,
  ErrorCodes,
  FriendVerification,
  GroupRole,
  GroupType,
  JoinMode,
  JoinStatus,
  ApplicationState,
  MissiveError,
  RequestState,
  directConvId,
  groupConvId,
  type MissiveClient,
} from "../src/index.ts";
import { brokerBinary, connectClient, nextEvent, startBroker, type Broker } from "./broker.ts";

const skip = existsSync(brokerBinary()) ? false : `broker binary not built (${brokerBinary()})`;
let broker: Broker;
const clients: MissiveClient[] = [];

before(async () => {
  if (!skip) broker = await startBroker();
});

after(async () => {
  for (const c of clients) c.stop();
  await broker?.stop();
});

const live = (name: string, fn: () => Promise<void>) => test(name, { skip, timeout: 45_000 }, fn);

async function connect(user: string, device = "web1", role: "user" | "admin" = "user", setup?: (c: MissiveClient) => void) {
  const c = await connectClient(broker, user, device, role, setup);
  clients.push(c);
  return c;
}

/** Asserts that `p` rejects with a MissiveError carrying `code`. */
async function rejectsWith(p: Promise<unknown>, code: number, what = "") {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof MissiveError, `${what}: a MissiveError, got ${e}`);
    assert.equal(e.code, code, `${what}: code ${e.code} (${e.message})`);
    return true;
  });
}

live("accounts: admin import and accountsExist; a user's admin request is refused with 2003", async () => {
  const admin = await connect("sdk-admin", "ops", "admin");
  const p = await admin.importUser({ userId: "acc-ann", profile: { nickname: "Ann" } });
  assert.equal(p.nickname, "Ann");
  await rejectsWith(admin.importUser({ userId: "acc-ann" }), ErrorCodes.ACCOUNT_EXISTS, "import twice");
  const r = await admin.accountsExist({ userIds: ["acc-ann", "acc-nobody"] });
  assert.deepEqual(r.accounts.map((a) => [a.userId, a.exists]), [["acc-ann", true], ["acc-nobody", false]]);
  await admin.setAccountDisabled({ userId: "acc-ann", disabled: false });

  const user = await connect("acc-bo");
  await rejectsWith(user.importUser({ userId: "acc-cy" }), ErrorCodes.PERMISSION_DENIED, "user imports");
  await rejectsWith(user.accountsExist({ userIds: [] }), ErrorCodes.INVALID_ARGUMENT, "empty list");
});

live("profiles: setProfile, getProfiles; a friend's change arrives as a `profile` event", async () => {
  const admin = await connect("sdk-admin", "ops2", "admin");
  const amy = await connect("pr-amy");
  const ben = await connect("pr-ben");
  await admin.importFriendship({ userA: "pr-amy", userB: "pr-ben" });

  const seen = nextEvent(amy, "profile", (p) => p.userId === "pr-ben" && p.nickname === "Benjamin");
  const mine = await ben.setProfile({ patch: { nickname: "Benjamin", signature: "hi", ex: { team: "blue" } } });
  assert.equal(mine.nickname, "Benjamin");
  assert.ok(mine.updatedMs > 0n);
  await seen;

  const got = await amy.getProfiles({ userIds: ["pr-ben", "pr-nobody"] });
  assert.deepEqual(got.profiles.map((p) => [p.userId, p.nickname, p.ex.team]), [["pr-ben", "Benjamin", "blue"]]);
  await rejectsWith(ben.setProfile({ patch: { birthday: "2023-02-30" } }), ErrorCodes.INVALID_ARGUMENT, "bad birthday");
});

live("presence: subscribe, a status change arrives as a `presence` event; list, get, unsubscribe", async () => {
  const cat = await connect("ps-cat");
  const dan = await connect("ps-dan");
  const now = await cat.subscribePresence(["ps-dan"]);
  assert.equal(now[0]?.online, true);

  const seen = nextEvent(cat, "presence", (p) => p.userId === "ps-dan" && p.statusText === "in a meeting");
  await dan.setPresenceStatus({ text: "in a meeting" });
  await seen;

  const subs = await cat.listPresenceSubscriptions();
  assert.deepEqual(subs.presences.map((p) => [p.userId, p.statusText]), [["ps-dan", "in a meeting"]]);
  const got = await cat.getPresence({ userIds: ["ps-dan", "ps-ghost"] });
  assert.deepEqual(got.presences.map((p) => p.online), [true, false]);
  await cat.unsubscribePresence({ userIds: ["ps-dan"] });
  assert.equal((await cat.listPresenceSubscriptions()).presences.length, 0);
  await rejectsWith(cat.subscribePresence(["ps-cat"]), ErrorCodes.SELF_TARGET, "subscribe to self");
});

live("friends: request, `relation` on both sides, accept, list, check, update, search, delete", async () => {
  const eve = await connect("fr-eve");
  const fay = await connect("fr-fay");

  const incoming = nextEvent(fay, "relation", (r) => r.userId === "fr-eve" && r.incoming?.state === RequestState.PENDING);
  const add = await eve.addFriend({ userId: "fr-fay", message: "hello", remark: "Fay" });
  assert.equal(add.status, AddFriendStatus.REQUESTED);
  await incoming;
  const reqs = await fay.listFriendRequests();
  assert.deepEqual(reqs.requests.map((r) => [r.fromUser, r.message]), [["fr-eve", "hello"]]);

  const accepted = nextEvent(eve, "relation", (r) => r.userId === "fr-fay" && r.isFriend && r.peerHasMe);
  const rel = await fay.respondFriendRequest({ userId: "fr-eve", accept: true });
  assert.ok(rel.isFriend && rel.peerHasMe);
  const r = await accepted;
  assert.equal(r.remark, "Fay", "the requester's remark becomes its friend entry");

  const list = await eve.listFriends({ withProfiles: true });
  assert.deepEqual(list.friends.map((f) => f.userId), ["fr-fay"]);
  assert.deepEqual((await fay.listFriends()).friends.map((f) => f.userId), ["fr-eve"]);
  const check = await eve.checkRelations({ userIds: ["fr-fay", "fr-nobody"] });
  assert.deepEqual(check.relations.map((x) => x.isFriend), [true, false]);
  assert.equal((await eve.updateFriend({ userId: "fr-fay", remark: "Faye" })).remark, "Faye");
  assert.deepEqual((await eve.searchFriends({ query: "faye" })).friends.map((f) => f.userId), ["fr-fay"]);

  // A new device of eve learns the relation and her profile from its first sync ([N-2]).
  await eve.setProfile({ patch: { nickname: "Eve" } });
  const synced: string[] = [];
  await connect("fr-eve", "web2", "user", (c) => {
    c.on("relation", (x) => synced.push(`relation ${x.userId} ${x.isFriend}`));
    c.on("profile", (x) => synced.push(`profile ${x.userId}`));
  });
  assert.ok(synced.includes("relation fr-fay true"), `sync relations: ${synced}`);
  assert.ok(synced.includes("profile fr-eve"), `sync profiles (the user's own): ${synced}`);

  await rejectsWith(fay.respondFriendRequest({ userId: "fr-eve", accept: true }), ErrorCodes.NO_PENDING_REQUEST, "answer twice");
  await rejectsWith(eve.addFriend({ userId: "fr-fay" }), ErrorCodes.ALREADY_FRIENDS, "add a friend");
  await rejectsWith(eve.addFriend({ userId: "fr-eve" }), ErrorCodes.SELF_TARGET, "add oneself");
  await rejectsWith(eve.addFriend({ userId: "fr-unknown-user" }), ErrorCodes.USER_NOT_FOUND, "add an unknown user");

  const gone = nextEvent(fay, "relation", (x) => x.userId === "fr-eve" && !x.peerHasMe);
  const del = await eve.deleteFriend({ userId: "fr-fay", bothSides: true });
  assert.equal(del.isFriend, false);
  await gone;
  await rejectsWith(eve.deleteFriend({ userId: "fr-fay" }), ErrorCodes.NOT_FRIENDS, "delete twice");

  // ALLOW_ANYONE: added at once.
  await fay.setProfile({ patch: { friendVerification: FriendVerification.ALLOW_ANYONE } });
  assert.equal((await eve.addFriend({ userId: "fr-fay" })).status, AddFriendStatus.ADDED);
});

live("blacklist: a blocked user's send is refused with 4008 until removed", async () => {
  const gil = await connect("bl-gil");
  const hal = await connect("bl-hal");
  const conv = directConvId("bl-gil", "bl-hal");
  await hal.sendText(conv, "before");

  const blocked = await gil.addToBlacklist({ userId: "bl-hal" });
  assert.equal(blocked.blocked, true);
  assert.deepEqual((await gil.listBlacklist()).users.map((u) => u.userId), ["bl-hal"]);
  await rejectsWith(hal.sendText(conv, "while blocked"), ErrorCodes.BLOCKED_BY_USER, "blocked send");
  await rejectsWith(hal.addFriend({ userId: "bl-gil" }), ErrorCodes.BLOCKED_BY_USER, "blocked friend request");
  await rejectsWith(gil.addFriend({ userId: "bl-hal" }), ErrorCodes.IN_YOUR_BLACKLIST, "request to a blocked user");
  await gil.sendText(conv, "the blocker may still write");

  assert.equal((await gil.removeFromBlacklist({ userId: "bl-hal" })).blocked, false);
  const got = nextEvent(gil, "message", (m) => m.convId === conv && m.sender === "bl-hal");
  const ack = await hal.sendText(conv, "after");
  assert.ok(ack.seq > 0n);
  await got;
  await rejectsWith(gil.addToBlacklist({ userId: "bl-gil" }), ErrorCodes.SELF_TARGET, "block oneself");
});

live("groups: create, invite with consent, roles, mute, transfer, dismiss; spec error codes", async () => {
  const ivy = await connect("gr-ivy");
  const jon = await connect("gr-jon");
  const kim = await connect("gr-kim");
  const gid = "sdk-work-1";
  const conv = groupConvId(gid);

  await rejectsWith(ivy.createGroup({ groupId: "sdk-bad", info: { name: "x" }, memberIds: ["gr-unknown-user"] }), ErrorCodes.USER_NOT_FOUND, "unknown member");
  await rejectsWith(ivy.createGroup({ groupId: "sdk-bad", type: GroupType.MEETING, info: { name: "x" } }), ErrorCodes.INVALID_ARGUMENT, "reserved type");

  const g = await ivy.createGroup({ groupId: gid, info: { name: "Work", inviteeConsent: true }, memberIds: ["gr-jon"] });
  assert.equal(g.owner, "gr-ivy");
  assert.equal(g.memberCount, 2);
  await rejectsWith(ivy.createGroup({ groupId: gid, info: { name: "again" } }), ErrorCodes.GROUP_EXISTS, "same id");
  assert.deepEqual((await jon.listJoinedGroups()).groups.map((x) => x.groupId), [gid]);

  // Consent: kim gets an invitation (groupApplication) and joins by joinGroup.
  const invitation = nextEvent(kim, "groupApplication", (a) => a.groupId === gid && a.inviter === "gr-ivy");
  const pending = await ivy.inviteToGroup({ groupId: gid, userIds: ["gr-kim"] });
  assert.equal(pending?.groupId, gid, "consent needed: the answer is the group");
  assert.equal((await invitation).state, ApplicationState.PENDING);
  assert.equal((await kim.joinGroup({ groupId: gid })).status, JoinStatus.JOINED);
  const members = await ivy.listGroupMembers({ groupId: gid });
  assert.deepEqual(members.members.map((m) => m.userId), ["gr-ivy", "gr-jon", "gr-kim"]);
  assert.equal(members.memberCount, 3);

  // Roles and mute.
  assert.equal((await ivy.setGroupRole({ groupId: gid, userId: "gr-jon", role: GroupRole.ADMIN })).role, GroupRole.ADMIN);
  await rejectsWith(kim.setGroupRole({ groupId: gid, userId: "gr-jon", role: GroupRole.MEMBER }), ErrorCodes.GROUP_PERMISSION_DENIED, "member sets a role");
  const muted = await jon.muteGroupMember({ groupId: gid, userId: "gr-kim", durationSecs: 600n });
  assert.ok(muted.muteUntilMs > 0n);
  await rejectsWith(kim.sendText(conv, "muted"), ErrorCodes.MEMBER_MUTED, "muted member sends");
  await jon.muteGroupMember({ groupId: gid, userId: "gr-kim", durationSecs: 0n });
  const heard = nextEvent(ivy, "message", (m) => m.convId === conv && m.sender === "gr-kim");
  await kim.sendText(conv, "unmuted");
  await heard;
  assert.equal((await ivy.muteGroupAll({ groupId: gid, muted: true })).muteAll, true);
  await rejectsWith(kim.sendText(conv, "all muted"), ErrorCodes.GROUP_MUTED, "member under mute-all");
  await ivy.muteGroupAll({ groupId: gid, muted: false });
  assert.equal((await kim.setGroupNickname({ groupId: gid, userId: "", nickname: "K" })).nickname, "K");
  assert.equal((await ivy.updateGroup({ groupId: gid, patch: { notice: "read me" } })).notice, "read me");
  const receipt = await ivy.getGroupReceipt({ groupId: gid, seq: 1n });
  assert.equal(receipt.groupId, gid);

  // Transfer, quit, dismiss.
  await rejectsWith(ivy.quitGroup({ groupId: gid }), ErrorCodes.OWNER_CANNOT_QUIT, "owner quits");
  assert.equal((await ivy.transferGroup({ groupId: gid, newOwner: "gr-jon" })).owner, "gr-jon");
  await ivy.quitGroup({ groupId: gid });
  await rejectsWith(ivy.dismissGroup({ groupId: gid }), ErrorCodes.NOT_GROUP_MEMBER, "former owner dismisses");
  await jon.kickFromGroup({ groupId: gid, userIds: ["gr-kim"] });
  await jon.dismissGroup({ groupId: gid });
  assert.equal((await kim.getGroups({ groupIds: [gid] })).groups[0]?.dismissed, true);
  await rejectsWith(jon.listGroupMembers({ groupId: gid }), ErrorCodes.GROUP_NOT_FOUND, "members of a dismissed group");
});

live("groups: applications under APPROVAL reach the owner and the applicant as `groupApplication`", async () => {
  const lea = await connect("ga-lea");
  const max = await connect("ga-max");
  const gid = "sdk-public-1";
  await lea.createGroup({ groupId: gid, type: GroupType.PUBLIC, info: { name: "Open" } });
  assert.equal((await lea.getGroups({ groupIds: [gid] })).groups[0]?.joinMode, JoinMode.APPROVAL);

  const toOwner = nextEvent(lea, "groupApplication", (a) => a.groupId === gid && a.userId === "ga-max");
  assert.equal((await max.joinGroup({ groupId: gid, reason: "let me in" })).status, JoinStatus.APPLIED);
  assert.equal((await toOwner).reason, "let me in");
  const apps = await lea.listGroupApplications({ groupId: gid });
  assert.deepEqual(apps.applications.map((a) => a.userId), ["ga-max"]);
  await rejectsWith(max.listGroupApplications({ groupId: gid }), ErrorCodes.NOT_GROUP_MEMBER, "the applicant (not a member) lists");

  const outcome = nextEvent(max, "groupApplication", (a) => a.groupId === gid && a.state === ApplicationState.ACCEPTED);
  await lea.respondGroupApplication({ groupId: gid, userId: "ga-max", accept: true });
  await outcome;
  await rejectsWith(lea.respondGroupApplication({ groupId: gid, userId: "ga-max", accept: true }), ErrorCodes.NO_PENDING_APPLICATION, "answer twice");
  await rejectsWith(max.listGroupApplications({ groupId: gid }), ErrorCodes.GROUP_PERMISSION_DENIED, "an ordinary member lists");
  assert.deepEqual((await max.listGroupApplications({ groupId: "", outgoing: true })).applications.map((a) => a.state), [ApplicationState.ACCEPTED]);

  const state = await max.setGroupNotify({ groupId: gid, notify: 1 });
  assert.equal(max.conversation(groupConvId(gid))?.groupNotify, state.groupNotify);
  await rejectsWith(max.joinGroup({ groupId: gid }), ErrorCodes.ALREADY_GROUP_MEMBER, "join twice");
});

live("conversation flags: pin on device A arrives as `conversation` on device B; clear history too", async () => {
  const a = await connect("cv-nia", "phone");
  const b = await connect("cv-nia", "laptop");
  const peer = await connect("cv-oz");
  const conv = directConvId("cv-nia", "cv-oz");
  await peer.sendText(conv, "one");
  await peer.sendText(conv, "two");
  await a.syncNow();

  const pinnedOnB = nextEvent(b, "conversation", (s) => s.convId === conv && s.pinned);
  const s = await a.updateConversation({ convId: conv, pinned: true });
  assert.equal(s.pinned, true);
  assert.equal(a.conversations()[0]?.convId, conv, "pinned first on A at once");
  await pinnedOnB;
  assert.equal(b.conversation(conv)?.pinned, true);

  const hiddenOnB = nextEvent(b, "conversation", (x) => x.convId === conv && x.hidden);
  await a.updateConversation({ convId: conv, hidden: true });
  assert.equal(a.conversations().some((x) => x.convId === conv), false, "hidden on A at once");
  await hiddenOnB;

  const clearedOnB = nextEvent(b, "conversation", (x) => x.convId === conv && x.clearedSeq === 2n);
  assert.equal((await a.clearHistory({ convId: conv })).clearedSeq, 2n);
  await clearedOnB;
  assert.equal((await a.history(conv)).messages.length, 0, "cleared history is not served");
  await rejectsWith(a.updateConversation({ convId: "p:cv-oz:cv-nia", pinned: true }), ErrorCodes.INVALID_CONV_ID, "unsorted id");
  await rejectsWith(a.updateConversation({ convId: directConvId("cv-x", "cv-y"), pinned: true }), ErrorCodes.NOT_PARTICIPANT, "someone else's");
});

live("global DND: setGlobalDnd on one device arrives as `settings` on another; a new device syncs it", async () => {
  const a = await connect("dnd-pia", "phone");
  const b = await connect("dnd-pia", "laptop");
  assert.equal(a.globalDnd, false);
  const onB = nextEvent(b, "settings", (s) => s.globalDnd);
  await a.setGlobalDnd({ enabled: true });
  assert.equal(a.globalDnd, true);
  await onB;
  assert.equal(b.globalDnd, true);
  const c = await connect("dnd-pia", "tablet");
  assert.equal(c.globalDnd, true, "from the first sync");
});

live("sync and pull: syncNow brings what was missed; pullRange reads history and new messages", async () => {
  const quinn = await connect("sp-quinn");
  const rae = await connect("sp-rae");
  const conv = directConvId("sp-quinn", "sp-rae");
  for (const t of ["a", "b", "c"]) await rae.sendText(conv, t);
  await quinn.syncNow();
  assert.equal(quinn.conversation(conv)?.maxSeq, 3n);
  const old = await quinn.pullRange(conv, 1n, 2n);
  assert.deepEqual(old.map((m) => m.content?.body.case === "text" && m.content.body.value.text), ["a", "b"]);

  quinn.stop();
  await rae.sendText(conv, "d");
  await rae.sendText(conv, "e");
  await rejectsWith(quinn.syncNow(), ErrorCodes.CONNECTION_LOST, "sync while stopped");
  const back = await connect("sp-quinn", "web2");
  const fresh = await back.pullRange(conv, 4n);
  assert.deepEqual(fresh.map((m) => m.seq), [4n, 5n]);
  await rejectsWith(back.pullRange("p:x", 1n), ErrorCodes.INVALID_CONV_ID, "malformed id");
});

live("group mentions and receipts: `mentioned` follows the broker's state (push, markRead, own send); a group receipt leaves peerReadSeq alone", async () => {
  const ada = await connect("mn-ada");
  const bea = await connect("mn-bea");
  const gid = "sdk-mentions";
  const conv = groupConvId(gid);
  await ada.createGroup({ groupId: gid, info: { name: "Mentions" }, memberIds: ["mn-bea"] });
  await bea.syncNow();
  const text = (t: string, mentions?: { userIds?: string[]; all?: boolean }) => ({ body: { case: "text" as const, value: { text: t } }, mentions });

  const marked = nextEvent(bea, "conversation", (s) => s.convId === conv && s.mentioned);
  const ack = await ada.send(conv, text("@mn-bea look", { userIds: ["mn-bea"] }));
  await marked;
  assert.equal(bea.conversation(conv)?.mentioned, true, "set from the pushed message");
  const other = await connect("mn-bea", "web2");
  assert.equal(other.conversation(conv)?.mentioned, true, "a fresh sync agrees");

  const readByBea = nextEvent(ada, "receipt", (r) => r.convId === conv && r.reader === "mn-bea");
  assert.equal((await bea.markRead(conv, ack.seq))?.mentioned, false);
  assert.equal(bea.conversation(conv)?.mentioned, false, "cleared by reading past it");
  await readByBea;
  assert.equal(ada.conversation(conv)?.peerReadSeq, 0n, "a group receipt is not a 1:1 peer_read_seq");

  const all = nextEvent(bea, "conversation", (s) => s.convId === conv && s.mentioned);
  await ada.send(conv, text("@all stand-up", { all: true }));
  await all;
  const cleared = nextEvent(other, "conversation", (s) => s.convId === conv && !s.mentioned);
  await bea.sendText(conv, "on my way"); // the sender reads up to its own message ([GR-17])
  assert.equal(bea.conversation(conv)?.mentioned, false, "my own message reads past the mention");
  await cleared; // bea's other device: its pushed copy of bea's message clears it too
  const third = await connect("mn-bea", "web3");
  assert.equal(third.conversation(conv)?.mentioned, false, "the broker agrees");
});
