// Browser end-to-end tests of the Contacts and Me views (spec 12, 13): headless
// Chromium (playwright-core) against a real broker, one browser context per user.
// 1. a friend request round trip (look up, request with a message, live incoming
//    request, accept with a remark, presence dots, remark, search, delete both
//    ways) and a rejected request;
// 2. a blacklist refusing a 1:1 message (the sender's page shows the error) and
//    the next message arriving once the block is lifted;
// 3. the add-friend policy (ALLOW_ANYONE adds at once) and a friend's nickname,
//    signature and custom status updating live on the other page.
// Every wait is bounded (context default timeout); screenshots land in test-results/ (with
// E2E_UPDATE_DOCS=1 the phone-width one also replaces docs/img/web-contacts.png).
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { repo } from "./broker.mjs";
import { browserSuite, compose, out, send, shot, texts, withPages } from "./harness.mjs";

/** Each user signs in on their own browser context (own storage, own device id). */
const { login } = browserSuite({ viewport: { width: 1100, height: 760 }, timeout: 15_000 });

const tab = (page, name) => page.getByTestId(`tab-${name}`).click();
const contacts = (page) => page.getByTestId("contacts-view");

test("friend request round trip: look up, request, accept with remark, presence, remark, search, delete; a rejected request", async () => {
  const alice = await login("alice");
  const bob = await login("bob");
  const carol = await login("carol");
  await withPages("friends", { alice, bob, carol }, async () => {
    await tab(alice, "contacts");
    await tab(bob, "contacts");
    await contacts(bob).getByTestId("friend-list-empty").waitFor();

    // Alice looks bob up: registered, approves each request.
    await alice.getByTestId("add-friend-user").fill("bob");
    await alice.getByTestId("add-friend-lookup").click();
    await alice.getByTestId("lookup-policy").filter({ hasText: "Approves each friend request" }).waitFor();
    assert.equal(await alice.getByTestId("add-friend-submit").textContent(), "Send request");
    // Someone who does not exist is reported, and cannot be added.
    await alice.getByTestId("add-friend-user").fill("nobody-here");
    await alice.getByTestId("add-friend-lookup").click();
    await alice.getByTestId("lookup-missing").waitFor();
    assert.equal(await alice.getByTestId("add-friend-submit").isDisabled(), true);

    await alice.getByTestId("add-friend-user").fill("bob");
    await alice.getByTestId("add-friend-message").fill("Hi Bob, it's Alice from the book club");
    await alice.getByTestId("add-friend-submit").click();
    await alice.getByTestId("contacts-status").filter({ hasText: "Friend request sent to bob" }).waitFor();
    const sent = alice.getByTestId("request-out-bob");
    await sent.getByTestId("request-state").filter({ hasText: "Waiting for approval" }).waitFor();

    // Bob sees it arrive live, with its message, and accepts it with a remark.
    const incoming = bob.getByTestId("request-in-alice");
    await incoming.getByTestId("request-message").filter({ hasText: "Hi Bob, it's Alice from the book club" }).waitFor();
    assert.equal(await bob.getByTestId("requests-pending-count").textContent(), "1");
    await bob.getByTestId("request-remark-alice").fill("Alice (book club)");
    await bob.getByTestId("request-accept-alice").click();
    await bob.getByTestId("contacts-status").filter({ hasText: "now friends" }).waitFor();
    await incoming.getByTestId("request-state").filter({ hasText: "Accepted" }).waitFor();

    // Both friend lists show each other, with online presence dots.
    const bobsAlice = bob.getByTestId("friend-alice");
    await bobsAlice.getByTestId("friend-name").filter({ hasText: "Alice (book club)" }).waitFor();
    await bob.locator('[data-testid="presence-dot-alice"][data-online="true"]').waitFor();
    const alicesBob = alice.getByTestId("friend-bob");
    await alicesBob.getByTestId("friend-name").filter({ hasText: "bob" }).waitFor();
    await alice.locator('[data-testid="presence-dot-bob"][data-online="true"]').waitFor();
    await sent.getByTestId("request-state").filter({ hasText: "Accepted" }).waitFor();

    // Alice gives bob a remark (keyboard: Enter saves).
    await alice.getByTestId("friend-remark-bob").click();
    await alice.getByTestId("friend-remark-input-bob").fill("Bobby");
    await alice.getByTestId("friend-remark-input-bob").press("Enter");
    await alicesBob.getByTestId("friend-name").filter({ hasText: "Bobby" }).waitFor();

    // Search finds bob by remark; a query without a match shows none.
    await alice.getByTestId("friend-search").fill("bobb");
    await alice.getByTestId("friend-search-note").filter({ hasText: "1 of 1 friends match" }).waitFor();
    await alice.getByTestId("friend-search").fill("zzz");
    await alice.getByTestId("friend-search-note").filter({ hasText: "0 of 1 friends match" }).waitFor();
    await alice.getByTestId("friend-search-clear").click();
    await alicesBob.waitFor();

    await shot(bob, "contacts-bob-friends.png");

    // A friend's row opens the 1:1 conversation.
    await alice.getByTestId("friend-chat-bob").click();
    await alice.locator('[data-testid="peer-name"][data-user="bob"]').filter({ hasText: "Bobby" }).waitFor(); // my remark for him
    await send(alice, "Hello friend!");

    // Alice removes bob both ways: both lists lose the other, live.
    await tab(alice, "contacts");
    await alice.getByTestId("friend-delete-bob").click();
    await alice.getByTestId("friend-delete-both-bob").click();
    await alicesBob.waitFor({ state: "detached" });
    await bobsAlice.waitFor({ state: "detached" });

    // Carol's request to alice is rejected; carol's page shows it, live.
    await tab(carol, "contacts");
    await carol.getByTestId("add-friend-user").fill("alice");
    await carol.getByTestId("add-friend-message").fill("Can we connect?");
    await carol.getByTestId("add-friend-submit").click();
    await carol.getByTestId("request-out-alice").waitFor();
    await alice.getByTestId("request-in-carol").getByTestId("request-message").filter({ hasText: "Can we connect?" }).waitFor();
    await alice.getByTestId("request-reject-carol").click();
    await alice.getByTestId("request-in-carol").getByTestId("request-state").filter({ hasText: "Rejected" }).waitFor();
    await carol.getByTestId("request-out-alice").getByTestId("request-state").filter({ hasText: "Rejected" }).waitFor();
    assert.equal(await carol.getByTestId("friend-alice").count(), 0);
    // The request is no longer pending: the broker refuses to accept it now.
    await alice.evaluate(() => window.missive.client.respondFriendRequest({ userId: "carol", accept: true }).catch((e) => e.code)).then((code) => assert.equal(code, 4006));

    await shot(alice, "contacts-alice.png");
  });
});

test("a blacklisted user's message is refused with a readable error; after removal the next one arrives", async () => {
  const bob = await login("bob");
  const carol = await login("carol");
  await withPages("blacklist", { bob, carol }, async () => {
    await tab(bob, "contacts");
    await bob.getByTestId("blacklist-user").fill("carol");
    await bob.getByTestId("blacklist-add").click();
    await bob.getByTestId("blocked-carol").waitFor();
    await bob.getByTestId("contacts-status").filter({ hasText: "carol is blacklisted" }).waitFor();

    // Carol writes to bob: refused, and her page says why.
    await carol.getByTestId("new-chat-user").fill("bob");
    await carol.getByTestId("new-chat-go").click();
    await compose(carol, "are you there?");
    await carol.getByText(/blacklisted you/).first().waitFor();
    // One wording of errors on every view: "NAME (code): message" (context.ts describeError).
    assert.match(await carol.getByTestId("composer-error").textContent(), /^BLOCKED_BY_USER \(4008\): .*blacklisted you/);
    await shot(carol, "contacts-blocked-sender.png");

    // Carol's friend request is refused too (BLOCKED_BY_USER), shown in her contacts view.
    await tab(carol, "contacts");
    await carol.getByTestId("add-friend-user").fill("bob");
    await carol.getByTestId("add-friend-submit").click();
    await carol.getByTestId("contacts-error").filter({ hasText: /BLOCKED_BY_USER \(4008\): \S/ }).waitFor();

    // Bob lifts the block; carol's next message arrives.
    await bob.getByTestId("blacklist-remove-carol").click();
    await bob.getByTestId("blocked-carol").waitFor({ state: "detached" });
    await tab(carol, "chats");
    await send(carol, "second try");
    await tab(bob, "chats");
    await bob.getByTestId("conv-carol").click();
    await bob.getByTestId("message").filter({ hasText: "second try" }).waitFor();
    const got = await texts(bob);
    assert.ok(!got.includes("are you there?"), `the refused message never reached bob: ${got}`);
  });
});

test("add-friend policy and a friend's profile and custom status update live", async () => {
  const bob = await login("bob");
  const alice = await login("alice");
  const carol = await login("carol");
  await withPages("profile", { alice, bob, carol }, async () => {
    // Carol asks first, while bob still approves each request: it waits for him.
    await tab(carol, "contacts");
    await carol.getByTestId("add-friend-user").fill("bob");
    await carol.getByTestId("add-friend-message").fill("We met at the book club!");
    await carol.getByTestId("add-friend-submit").click();
    await carol.getByTestId("request-out-bob").waitFor();
    await carol.context().close();

    // Bob lets anyone add him; alice's look-up says so and her add makes them friends at once.
    await tab(bob, "me");
    await bob.getByTestId("profile-friend-verification").selectOption({ label: "Anyone can add me directly" });
    await bob.getByTestId("profile-save").click();
    await bob.getByTestId("profile-status").filter({ hasText: "Profile saved" }).waitFor();
    await tab(alice, "contacts");
    await alice.getByTestId("add-friend-user").fill("bob");
    await alice.getByTestId("add-friend-lookup").click();
    await alice.getByTestId("lookup-policy").filter({ hasText: "Anyone can add them directly" }).waitFor();
    await alice.getByTestId("add-friend-submit").click();
    await alice.getByTestId("contacts-status").filter({ hasText: "now friends" }).waitFor();
    await alice.getByTestId("friend-bob").waitFor();
    await tab(bob, "contacts");
    const bobsAlice = bob.getByTestId("friend-alice");
    await bobsAlice.waitFor();
    await bob.locator('[data-testid="presence-dot-alice"][data-online="true"]').waitFor();

    // Alice edits her profile and status; bob's page follows live.
    await tab(alice, "me");
    await alice.getByTestId("profile-nickname").fill("Alice Liddell");
    await alice.getByTestId("profile-signature").fill("Curiouser and curiouser");
    await alice.getByTestId("profile-ex-key").fill("city");
    await alice.getByTestId("profile-ex-value").fill("Oxford");
    await alice.getByTestId("profile-ex-add").click();
    await alice.getByTestId("profile-save").click();
    await alice.getByTestId("profile-status").filter({ hasText: "Profile saved" }).waitFor();
    await alice.getByTestId("me-display-name").filter({ hasText: "Alice Liddell" }).waitFor();
    await alice.getByTestId("profile-ex-city").waitFor();
    await bobsAlice.getByTestId("friend-name").filter({ hasText: "Alice Liddell" }).waitFor();
    await bobsAlice.getByTestId("friend-signature").filter({ hasText: "Curiouser and curiouser" }).waitFor();

    await alice.getByTestId("presence-status-input").fill("Down the rabbit hole");
    await alice.getByTestId("presence-status-set").click();
    await alice.getByTestId("my-status-text").filter({ hasText: "Down the rabbit hole" }).waitFor();
    await bobsAlice.getByTestId("friend-status-text").filter({ hasText: "Down the rabbit hole" }).waitFor();

    // A nickname over 64 bytes is refused by the broker ([PR-2]) with a readable message.
    await alice.getByTestId("profile-nickname").fill("é".repeat(40)); // 40 characters, 80 bytes: over max_name_bytes (64)
    await alice.getByTestId("profile-save").click();
    await alice.getByTestId("profile-error").filter({ hasText: /INVALID_ARGUMENT \(3000\): \S/ }).waitFor();
    await alice.getByTestId("profile-reset").click();

    // Every control of both views has a test id and an accessible name.
    const unlabelled = await bob.evaluate(() =>
      [...document.querySelectorAll('[data-testid="contacts-view"], [data-testid="profile-view"]')]
        .flatMap((v) => [...v.querySelectorAll("button, input, select, textarea")])
        .filter((c) => !c.dataset.testid || !(c.getAttribute("aria-label") || c.labels?.length || c.textContent.trim()))
        .map((c) => c.outerHTML.slice(0, 120)),
    );
    assert.deepEqual(unlabelled, []);

    // Carol's request waits on bob's page, announced above his friend list.
    await bob.getByTestId("requests-pending-banner").filter({ hasText: "1 friend request waiting" }).waitFor();
    await bob.getByTestId("request-in-carol").getByTestId("request-message").filter({ hasText: "We met at the book club!" }).waitFor();

    await shot(bob, "contacts-bob.png");
    // The same view at phone width.
    await bob.setViewportSize({ width: 390, height: 1000 });
    await shot(bob, "contacts-bob-390.png");
    await tab(bob, "me");
    await bob.getByTestId("friend-presence-alice").getByTestId("friend-presence-status").filter({ hasText: "Down the rabbit hole" }).waitFor();
    await shot(bob, "profile-bob-390.png");
    await bob.setViewportSize({ width: 1100, height: 760 });

    // Alice clears her status and leaves: bob sees the status go and the dot turn offline.
    await alice.getByTestId("presence-status-clear").click();
    await bob.waitForFunction(
      () => document.querySelector('[data-testid="friend-presence-alice"] [data-testid="friend-presence-status"]')?.textContent === "",
    );
    await alice.context().close();
    await bob.locator('[data-testid="friend-presence-dot-alice"][data-online="false"]').waitFor();
    await tab(bob, "contacts");
    await bob.locator('[data-testid="presence-dot-alice"][data-online="false"]').waitFor();
  });
  // The README picture is replaced only on request (as groups.test.mjs), so a test run leaves the tree clean.
  if (process.env.E2E_UPDATE_DOCS === "1") {
    mkdirSync(join(repo, "docs/img"), { recursive: true });
    copyFileSync(join(out, "contacts-bob-390.png"), join(repo, "docs/img/web-contacts.png"));
  }
});
