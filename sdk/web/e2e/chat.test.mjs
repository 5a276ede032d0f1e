// Browser end-to-end test: headless Debian Chromium (playwright-core) against a
// real broker. Two browser contexts are two users; one goes offline, messages
// arrive while it is away and appear in order after it reconnects; a read
// receipt shows on the sender's page; screenshots land in test-results/.
// 1:1 chats show names, not ids: the list, the header and the reply label use my
// remark for a friend, else the peer's profile nickname, else the id, and follow
// `relation` / `profile` pushes and the Contacts view's own remark edits.
import { test } from "node:test";
import assert from "node:assert/strict";
import { browserSuite, send, shot, texts, withPages } from "./harness.mjs";

const suite = browserSuite();
const { login } = suite;

test("two users chat; offline messages arrive in order; read receipts show", async () => {
  const alice = await login("alice");
  let bob = await login("bob");
  const ctxA = alice.context();
  const ctxB = bob.context();

  // Alice opens a chat with bob and writes.
  await alice.getByTestId("new-chat-user").fill("bob");
  await alice.getByTestId("new-chat-go").click();
  await send(alice, "Hi Bob!");

  // Bob sees the conversation with an unread badge, opens it, reads it.
  await bob.getByTestId("unread-alice").filter({ hasText: "1" }).waitFor().catch(async (e) => {
    await shot(bob, "fail-bob.png");
    throw e;
  });
  await bob.getByTestId("conv-alice").click();
  await bob.getByTestId("message").filter({ hasText: "Hi Bob!" }).waitFor();
  // ... and alice's page shows the read receipt.
  await alice.getByTestId("receipt-read").first().waitFor();
  await send(bob, "Hey Alice, how are you?");
  await alice.getByTestId("message").filter({ hasText: "Hey Alice" }).waitFor();

  // Bob goes away (page closed); alice writes three messages meanwhile.
  await bob.close();
  for (const t of ["first while away", "second while away", "third while away"]) await send(alice, t);
  assert.equal(await alice.getByTestId("receipt-read").count(), 1, "only the first message was read");

  // Bob comes back (same browser profile: stored session and sync token).
  bob = await suite.openPage(ctxB, "bob");
  await bob.getByTestId("conn-state").filter({ hasText: "online" }).waitFor();
  await bob.getByTestId("unread-alice").filter({ hasText: "3" }).waitFor();
  await bob.getByTestId("conv-alice").click();
  await bob.getByTestId("message").filter({ hasText: "third while away" }).waitFor();
  // The page shows the messages it pulled at once and loads older history when the chat opens
  // (one History round trip): wait for the oldest before reading the list.
  await bob.getByTestId("message").filter({ hasText: "Hi Bob!" }).waitFor();
  assert.deepEqual(await texts(bob), ["Hi Bob!", "Hey Alice, how are you?", "first while away", "second while away", "third while away"]);

  // The connection drops without the page closing: the client reconnects and catches up.
  await bob.evaluate(() => window.missive.client.stop());
  await bob.getByTestId("conn-state").filter({ hasText: "offline" }).waitFor();
  await send(alice, "fourth");
  await send(alice, "fifth");
  await bob.evaluate(() => window.missive.client.start());
  await bob.getByTestId("message").filter({ hasText: "fifth" }).waitFor();
  const all = await texts(bob);
  assert.deepEqual(all.slice(-3), ["third while away", "fourth", "fifth"]);

  // Bob has read everything: alice sees every message of hers as read.
  // (Unread messages may show "delivered" on the way: wait for every tick to be "read".)
  await alice.waitForFunction(() => document.querySelectorAll('[data-testid="receipt-read"]').length === 6);
  assert.equal(await alice.getByTestId("receipt-sent").count() + (await alice.getByTestId("receipt-delivered").count()), 0);

  await shot(alice, "chat-alice.png");
  await shot(bob, "chat-bob.png");
  await ctxA.close();
  await ctxB.close();
});

test("1:1 chats show my remark, else the nickname, else the id; live from relation and profile changes", async () => {
  const uma = await login("uma", { timeout: 15_000 });
  const vic = await login("vic", { timeout: 15_000 });
  const item = vic.getByTestId("conv-uma");
  const listName = vic.getByTestId("conv-name-uma");
  const header = vic.locator('[data-testid="peer-name"][data-user="uma"]');
  await withPages("names", { vic, uma }, async () => {
    // Vic writes to uma before she has a nickname: the id.
    await vic.getByTestId("new-chat-user").fill("uma");
    await vic.getByTestId("new-chat-go").click();
    await send(vic, "hello uma");
    await header.filter({ hasText: /^uma$/ }).waitFor();
    assert.equal(await item.getAttribute("data-user"), "uma", "the list item carries the id");

    // Uma sets a nickname; vic (not a friend: no profile push) reads it when his page reconnects.
    await uma.evaluate(() => window.missive.client.setProfile({ patch: { nickname: "Uma Thurman" } }));
    await send(vic, "still there?"); // messages keep flowing meanwhile
    await vic.evaluate(() => window.missive.client.stop());
    await vic.evaluate(() => window.missive.client.start());
    await listName.filter({ hasText: "Uma Thurman" }).waitFor();
    await header.filter({ hasText: "Uma Thurman" }).waitFor();
    assert.equal(await header.getAttribute("title"), "uma", "the id stays readable");

    // Vic asks uma to be friends with a remark; once she accepts (a `relation` push), the remark wins.
    await vic.evaluate(() => window.missive.client.addFriend({ userId: "uma", remark: "Umbrella", message: "" }));
    await uma.evaluate(() => window.missive.client.respondFriendRequest({ userId: "vic", accept: true }));
    await listName.filter({ hasText: "Umbrella" }).waitFor();
    await header.filter({ hasText: "Umbrella" }).waitFor();

    // A reply to her message names her the same way.
    await uma.getByTestId("conv-vic").click();
    await send(uma, "hi vic");
    const hers = vic.getByTestId("message").filter({ hasText: "hi vic" });
    await hers.hover();
    await hers.getByTestId("action-reply").click();
    await vic.getByTestId("compose-bar").filter({ hasText: "Replying to Umbrella" }).waitFor();
    await vic.getByTestId("compose-cancel").click();

    // The remark edited in the Contacts view (an answer, no push to this connection) shows at once.
    await vic.getByTestId("tab-contacts").click();
    await vic.getByTestId("friend-remark-uma").click();
    await vic.getByTestId("friend-remark-input-uma").fill("Umi");
    await vic.getByTestId("friend-remark-input-uma").press("Enter");
    await vic.getByTestId("friend-uma").getByTestId("friend-name").filter({ hasText: "Umi" }).waitFor();
    await vic.getByTestId("tab-chats").click();
    await listName.filter({ hasText: "Umi" }).waitFor();
    // Cleared: her nickname again; then her new nickname arrives live (a friend's `profile` push).
    await vic.getByTestId("tab-contacts").click();
    await vic.getByTestId("friend-remark-uma").click();
    await vic.getByTestId("friend-remark-input-uma").fill("");
    await vic.getByTestId("friend-remark-input-uma").press("Enter");
    await vic.getByTestId("contacts-status").filter({ hasText: "Cleared the remark" }).waitFor();
    await vic.getByTestId("tab-chats").click();
    await listName.filter({ hasText: "Uma Thurman" }).waitFor();
    await uma.evaluate(() => window.missive.client.setProfile({ patch: { nickname: "Uma T." } }));
    await listName.filter({ hasText: "Uma T." }).waitFor();
    await header.filter({ hasText: "Uma T." }).waitFor();
    await shot(vic, "chat-names-vic.png");
  });
});

test("the page refuses dev tokens when the broker is not in dev mode", async () => {
  const res = await fetch(`http://${suite.broker.ws}/api/info`);
  assert.equal((await res.json()).dev, true, "this broker runs in dev mode");
  // The static route and WebSocket upgrade path exist; a non-dev broker is covered by the Rust tests.
  assert.equal((await fetch(`http://${suite.broker.ws}/nope`)).status, 404);
});
