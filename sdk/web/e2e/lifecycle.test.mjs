// Browser end-to-end tests of the message lifecycle (spec section 18) on the chat page:
// headless Debian Chromium (playwright-core) against a real broker, two browser contexts
// as two users. Reply/quote, edit, recall, reactions, offline catch-up through
// PullUpdates, typing, delivered/read ticks, images and files sent by URL.
//
// A lifecycle request the broker does not serve yet (UNKNOWN_REQUEST, 1006) fails the
// test with a message saying so; with E2E_ALLOW_MISSING=1 that test is skipped instead
// (for running the page against a broker that is still being built).
import { test } from "node:test";
import assert from "node:assert/strict";
import { browserSuite, openChat, send, shot } from "./harness.mjs";

// Editing 1:1 messages is off by default (messages.edit_direct).
const suite = browserSuite({ brokerConfig: "[messages]\nedit_direct = true\n" });
const { login } = suite;

const bubble = (page, text) => page.getByTestId("message").filter({ has: page.getByTestId("message-text").filter({ hasText: text }) });

/** Clicks one of a message's actions (shown on hover). */
async function act(page, text, action) {
  const m = bubble(page, text);
  await m.hover();
  await m.getByTestId(`action-${action}`).click();
}

/**
 * Whether the broker serves a request: `probe` runs in the page with the client and
 * returns the error code it got (0 = served). 1006 fails the test, or skips it when
 * E2E_ALLOW_MISSING=1.
 */
async function requireServed(t, page, what, probe) {
  const code = await page.evaluate(probe);
  if (code !== 1006) return true;
  const msg = `the broker does not serve ${what} yet (UNKNOWN_REQUEST)`;
  if (process.env.E2E_ALLOW_MISSING === "1") {
    t.skip(msg);
    return false;
  }
  assert.fail(msg);
}
const codeOf = `(e) => (e && typeof e.code === "number" ? e.code : -1)`;

test("reply with a quote: the quote bar, the quoted preview above the answer, Escape cancels", async () => {
  const alice = await login("alice");
  const bob = await login("bob");
  await openChat(alice, "bob");
  await send(alice, "original text");
  await bob.getByTestId("conv-alice").click();
  await bubble(bob, "original text").waitFor();

  // Bob replies: the quote bar shows what he answers, his message carries the quote.
  await act(bob, "original text", "reply");
  await bob.getByTestId("compose-bar").filter({ hasText: "Replying to alice" }).waitFor();
  assert.match(await bob.getByTestId("compose-preview").textContent(), /original text/);
  await send(bob, "a reply");
  assert.equal(await bob.getByTestId("compose-bar").isHidden(), true, "the quote bar closes after sending");
  const quoted = bubble(alice, "a reply").getByTestId("message-quote");
  await quoted.waitFor();
  assert.equal(await quoted.textContent(), "You original text", "alice's page: her own quoted message");
  assert.equal(await bubble(bob, "a reply").getByTestId("message-quote").textContent(), "alice original text");
  assert.equal(await bubble(alice, "original text").getByTestId("message-quote").count(), 0);
  // Escape cancels a reply: the next message has no quote.
  await act(alice, "a reply", "reply");
  await alice.getByTestId("compose-bar").waitFor();
  await alice.getByTestId("composer").press("Escape");
  await alice.getByTestId("compose-bar").waitFor({ state: "hidden" });
  await send(alice, "no quote here");
  await bubble(bob, "no quote here").waitFor();
  assert.equal(await bubble(bob, "no quote here").getByTestId("message-quote").count(), 0);
  await shot(bob, "reply-bob.png");
  await alice.context().close();
  await bob.context().close();
});

test("edit: own text messages only, '(edited)' on both pages; an offline page catches up through PullUpdates", async (t) => {
  const alice = await login("ann");
  const bob = await login("ben");
  const probe = `window.missive.client.editText("p:ann:ben", 0n, "x").then(() => 0, ${codeOf})`;
  if (!(await requireServed(t, alice, "EditMessage", probe))) return;
  await openChat(alice, "ben");
  await send(alice, "original text");
  await bob.getByTestId("conv-ann").click();
  await bubble(bob, "original text").waitFor();
  await send(bob, "bob's own");
  await bubble(alice, "bob's own").waitFor();

  assert.equal(await bubble(bob, "bob's own").getByTestId("action-edit").count(), 1, "own text messages can be edited");
  assert.equal(await bubble(bob, "original text").getByTestId("action-edit").count(), 0, "others' cannot");
  await act(alice, "original text", "edit");
  await alice.getByTestId("compose-bar").filter({ hasText: "Editing message" }).waitFor();
  assert.equal(await alice.getByTestId("composer").inputValue(), "original text");
  await alice.getByTestId("composer").fill("edited text");
  await alice.getByTestId("composer").press("Enter");
  await bubble(alice, "edited text").getByTestId("edited").waitFor();
  await bubble(bob, "edited text").getByTestId("edited").waitFor();
  assert.equal(await bubble(bob, "original text").count(), 0, "the old text is gone");
  assert.equal(await bubble(bob, "bob's own").getByTestId("edited").count(), 0);

  // Bob's connection drops (the page keeps its messages); alice edits meanwhile. No push
  // reaches bob: his next sync sees a higher update_seq and pulls the change.
  await bob.evaluate(() => window.missive.client.stop());
  await bob.getByTestId("conn-state").filter({ hasText: "offline" }).waitFor();
  await act(alice, "edited text", "edit");
  await alice.getByTestId("composer").fill("edited while bob was away");
  await alice.getByTestId("composer").press("Enter");
  await bubble(alice, "edited while bob was away").waitFor();
  assert.equal(await bubble(bob, "edited while bob was away").count(), 0, "bob is offline");
  await bob.evaluate(() => window.missive.client.start());
  await bubble(bob, "edited while bob was away").getByTestId("edited").waitFor();
  const applied = await bob.evaluate(() => String(window.missive.client.appliedUpdateSeq("p:ann:ben")));
  assert.ok(BigInt(applied) > 0n, `bob's applied update_seq moved (${applied})`);
  await shot(bob, "edit-bob.png");

  // Delete for me: a tombstone on bob's page only.
  await act(bob, "bob's own", "delete");
  await bob.getByTestId("deleted-notice").waitFor();
  assert.equal(await bubble(bob, "bob's own").count(), 0);
  await alice.waitForTimeout(300);
  assert.equal(await bubble(alice, "bob's own").count(), 1, "the other user still has it");
  await alice.context().close();
  await bob.context().close();
});

test("recall: a notice in place on both pages; an offline page catches up through PullUpdates", async (t) => {
  const alice = await login("amy");
  const bob = await login("bill");
  const probe = `window.missive.client.recall("p:amy:bill", 0n).then(() => 0, ${codeOf})`;
  if (!(await requireServed(t, alice, "RecallMessage", probe))) return;
  await openChat(alice, "bill");
  await send(alice, "keep this");
  await send(alice, "oops, wrong chat");
  await bob.getByTestId("conv-amy").click();
  await bubble(bob, "oops, wrong chat").waitFor();
  assert.equal(await bubble(bob, "oops, wrong chat").getByTestId("action-recall").count(), 0, "only one's own messages");
  await act(alice, "oops, wrong chat", "recall");
  await alice.getByTestId("recalled-notice").filter({ hasText: "You recalled a message" }).waitFor();
  await bob.getByTestId("recalled-notice").filter({ hasText: "amy recalled a message" }).waitFor();
  assert.equal(await bubble(bob, "oops").count(), 0);
  assert.equal(await bubble(alice, "oops").count(), 0);
  await bob.getByTestId("conv-amy").filter({ hasText: "amy recalled a message" }).waitFor();

  // Offline: the held message turns into a notice after the reconnect's PullUpdates.
  await bob.evaluate(() => window.missive.client.stop());
  await bob.getByTestId("conn-state").filter({ hasText: "offline" }).waitFor();
  await act(alice, "keep this", "recall");
  await alice.getByTestId("recalled-notice").nth(1).waitFor();
  assert.equal(await bubble(bob, "keep this").count(), 1, "bob is offline");
  await bob.evaluate(() => window.missive.client.start());
  await bubble(bob, "keep this").waitFor({ state: "detached" });
  assert.equal(await bob.getByTestId("recalled-notice").count(), 2);
  await shot(alice, "recall-alice.png");
  await alice.context().close();
  await bob.context().close();
});

test("reactions: pick, count, toggle between two users", async (t) => {
  const carol = await login("carol");
  const dave = await login("dave");
  if (!(await requireServed(t, carol, "React", `window.missive.client.react("p:carol:dave", 0n, "👍").then(() => 0, ${codeOf})`))) return;
  await openChat(carol, "dave");
  await send(carol, "react to me");
  await dave.getByTestId("conv-carol").click();
  await bubble(dave, "react to me").waitFor();

  // Dave picks 👍 from the picker (keyboard: the picker's first button has focus).
  await act(dave, "react to me", "react");
  await dave.getByTestId("reaction-picker").waitFor();
  await dave.getByTestId("pick-reaction").and(dave.locator('[data-key="👍"]')).click();
  const chip = (page) => bubble(page, "react to me").getByTestId("reaction-chip").and(page.locator('[data-key="👍"]'));
  await chip(dave).filter({ hasText: "👍 1" }).waitFor();
  assert.equal(await chip(dave).getAttribute("aria-pressed"), "true");
  await chip(carol).filter({ hasText: "👍 1" }).waitFor();
  assert.equal(await chip(carol).getAttribute("aria-pressed"), "false", "carol has not reacted");

  // Carol clicks the chip: 2, hers; again: back to 1.
  await chip(carol).click();
  await chip(carol).filter({ hasText: "👍 2" }).waitFor();
  assert.equal(await chip(carol).getAttribute("aria-pressed"), "true");
  await chip(dave).filter({ hasText: "👍 2" }).waitFor();
  assert.equal(await chip(dave).getAttribute("aria-pressed"), "true", "dave's own flag survives carol's push");
  await chip(carol).click();
  await chip(carol).filter({ hasText: "👍 1" }).waitFor();
  await chip(dave).filter({ hasText: "👍 1" }).waitFor();

  // A second key by keyboard, then dave removes his 👍: only ❤️ stays.
  await bubble(carol, "react to me").hover();
  await bubble(carol, "react to me").getByTestId("action-react").focus();
  await carol.keyboard.press("Enter");
  await carol.getByTestId("reaction-picker").waitFor();
  await carol.locator('[data-testid="pick-reaction"][data-key="❤️"]').focus();
  await carol.keyboard.press("Enter");
  await bubble(dave, "react to me").locator('[data-testid="reaction-chip"][data-key="❤️"]').filter({ hasText: "❤️ 1" }).waitFor();
  await chip(dave).click();
  await chip(carol).waitFor({ state: "detached" });
  await chip(dave).waitFor({ state: "detached" });
  assert.equal(await bubble(carol, "react to me").getByTestId("reaction-chip").count(), 1);
  await shot(carol, "reactions-carol.png");

  await carol.context().close();
  await dave.context().close();
});

test("typing indicator in the header: shown while typing, gone when cleared or sent", async (t) => {
  const erin = await login("erin");
  const frank = await login("frank");
  if (!(await requireServed(t, erin, "Typing", `window.missive.client.typing("p:erin:frank", true).then(() => 0, ${codeOf})`))) return;
  await openChat(erin, "frank");
  await send(erin, "hi frank");
  await frank.getByTestId("conv-erin").click();
  await bubble(frank, "hi frank").waitFor();

  await frank.getByTestId("composer").pressSequentially("hel", { delay: 30 });
  await erin.getByTestId("typing").filter({ hasText: "frank is typing…" }).waitFor();
  await frank.getByTestId("composer").fill("");
  await erin.getByTestId("typing").filter({ hasText: "typing" }).waitFor({ state: "hidden" });
  // Typing again, then the message: the indicator ends with the message.
  await frank.getByTestId("composer").pressSequentially("hello erin", { delay: 10 });
  await erin.getByTestId("typing").filter({ hasText: "frank is typing…" }).waitFor();
  await frank.getByTestId("composer").press("Enter");
  await bubble(erin, "hello erin").waitFor();
  await erin.getByTestId("typing").filter({ hasText: "typing" }).waitFor({ state: "hidden" });
  assert.equal(await frank.getByTestId("typing").textContent(), "", "one's own typing is not shown");
  await erin.context().close();
  await frank.context().close();
});

test("ticks on one's own 1:1 messages: sent, then delivered while the peer is online elsewhere, then read", async (t) => {
  const gail = await login("gail");
  await openChat(gail, "hugh");
  await send(gail, "first");
  // Hugh is offline: sent.
  await bubble(gail, "first").getByTestId("receipt-sent").waitFor();
  // Hugh comes online with the chat closed: his client acknowledges the message: delivered.
  const hugh = await login("hugh");
  await hugh.getByTestId("conv-gail").waitFor();
  await send(gail, "second");
  try {
    await bubble(gail, "second").getByTestId("receipt-delivered").waitFor({ timeout: 10_000 });
  } catch (e) {
    const msg = "no delivered tick within 10 s: the broker sends no delivery receipts yet?";
    if (process.env.E2E_ALLOW_MISSING === "1") return t.skip(msg);
    throw new Error(`${msg}\n${e}`);
  }
  await bubble(gail, "first").getByTestId("receipt-delivered").waitFor();
  // Hugh opens the chat: read.
  await hugh.getByTestId("conv-gail").click();
  await bubble(gail, "second").getByTestId("receipt-read").waitFor();
  await bubble(gail, "first").getByTestId("receipt-read").waitFor();
  await shot(gail, "ticks-gail.png");
  await gail.context().close();
  await hugh.context().close();
});

test("images and files sent by URL render as an image and a download link", async () => {
  const gina = await login("gina");
  const hank = await login("hank");
  await openChat(gina, "hank");
  const base = `http://${suite.broker.ws}`;
  await gina.getByTestId("attach-toggle").click();
  await gina.getByTestId("attach-url").fill(`${base}/style.css?img=1`);
  await gina.getByTestId("attach-image").click();
  await gina.getByTestId("attach-toggle").click();
  await gina.getByTestId("attach-url").fill(`${base}/files/report%20q3.pdf`);
  await gina.getByTestId("attach-file").click();
  // A javascript: URL is refused by the page.
  await gina.getByTestId("attach-toggle").click();
  await gina.getByTestId("attach-url").fill("javascript:alert(1)");
  await gina.getByTestId("attach-file").click();
  await gina.getByTestId("composer-error").filter({ hasText: "http(s)" }).waitFor();

  await hank.getByTestId("conv-gina").click();
  const img = hank.getByTestId("message-image");
  await img.waitFor();
  assert.equal(await img.getAttribute("src"), `${base}/style.css?img=1`);
  assert.match(await img.getAttribute("alt"), /gina/);
  const file = hank.getByTestId("message-file");
  await file.waitFor();
  assert.equal(await file.getAttribute("href"), `${base}/files/report%20q3.pdf`);
  assert.match(await file.textContent(), /report q3\.pdf/);
  // The list shows a readable preview.
  await gina.getByTestId("conv-hank").filter({ hasText: "[file] report q3.pdf" }).waitFor();
  await shot(hank, "media-hank.png");

  await gina.context().close();
  await hank.context().close();
});
