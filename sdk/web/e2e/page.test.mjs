// Browser end-to-end tests of the chat page's settings and layout: headless Debian
// Chromium (playwright-core) against a real broker.
// - pin, mute, clear history, hide and global do-not-disturb made in one tab of a user
//   show live in another tab of the same user (`conversation` and `settings` pushes);
// - the same device id signing in elsewhere ends this session: the kick banner says why;
// - a phone-sized viewport (390x844) shows the list and the conversation as separate
//   screens with a back button (and the group panel full-screen);
// - every visible control has an accessible name and a test id;
// - older history loads when the message list is scrolled to the top;
// - without Web Locks, tabs of one user still take different device ids.
// Screenshots land in sdk/web/test-results/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { browserSuite, openChat, send, shot } from "./harness.mjs";

// The confirmation of clearing the history is accepted.
const { newContext, openPage, login } = browserSuite({ timeout: 15_000, acceptDialogs: true });

/** The list's conversation keys, top to bottom. */
const order = (p) => p.getByTestId("conv-list").locator("> li").evaluateAll((els) => els.map((e) => e.dataset.testid));

test("pin, mute, clear, hide and do-not-disturb sync between two tabs of one user", async () => {
  const ctx = await newContext();
  const tab1 = await login("pat", { context: ctx });
  const tab2 = await openPage(ctx, "pat"); // same browser profile: the stored session signs in
  await tab2.getByTestId("conn-state").filter({ hasText: "online" }).waitFor();
  const [d1, d2] = await Promise.all([tab1, tab2].map((p) => p.evaluate(() => window.missive.deviceId)));
  assert.notEqual(d1, d2, "each tab has its own device id (one would end the other's session)");

  const quinn = await login("quinn");
  const rex = await login("rex");
  await openChat(quinn, "pat");
  await send(quinn, "hello pat, quinn here");
  await tab2.getByTestId("conv-quinn").waitFor();
  await openChat(rex, "pat");
  await send(rex, "hello pat, rex here");
  for (const p of [tab1, tab2]) {
    await p.getByTestId("conv-rex").waitFor();
    await p.waitForFunction(() => document.querySelector('[data-testid="conv-list"] > li')?.dataset.testid === "conv-rex");
  }

  // Pin in tab 1: pinned first in both tabs. (A background tab runs no animation
  // frames, which Playwright's clicks wait for: the tab acted in is brought to the front.)
  await tab1.bringToFront();
  await tab1.getByTestId("conv-quinn").click();
  await tab1.getByTestId("conv-settings-toggle").click();
  await tab1.getByTestId("conv-pin").click();
  await tab1.getByTestId("conv-pin").and(tab1.locator('[aria-pressed="true"]')).waitFor();
  await tab2.getByTestId("pinned-quinn").waitFor();
  assert.deepEqual(await order(tab2), ["conv-quinn", "conv-rex"], "pinned first, although rex wrote last");

  // Mute in tab 1.
  await tab1.getByTestId("conv-mute").click();
  await tab2.getByTestId("muted-quinn").waitFor();
  assert.equal(await tab2.getByTestId("muted-rex").count(), 0);

  // Global do-not-disturb in tab 1.
  assert.equal(await tab2.getByTestId("global-dnd").getAttribute("aria-pressed"), "false");
  await tab1.getByTestId("global-dnd").click();
  await tab2.getByTestId("global-dnd").and(tab2.locator('[aria-pressed="true"]')).waitFor();
  await shot(tab2, "settings-tab2.png");

  // And back from tab 2: unpin, unmute, DND off.
  await tab2.bringToFront();
  await tab2.getByTestId("conv-quinn").click();
  await tab2.getByTestId("message").filter({ hasText: "hello pat, quinn here" }).waitFor();
  await tab2.getByTestId("conv-settings-toggle").click();
  await tab2.getByTestId("conv-pin").click();
  await tab2.getByTestId("conv-mute").click();
  await tab2.getByTestId("global-dnd").click();
  await tab1.getByTestId("pinned-quinn").waitFor({ state: "detached" });
  await tab1.getByTestId("muted-quinn").waitFor({ state: "detached" });
  await tab1.getByTestId("global-dnd").and(tab1.locator('[aria-pressed="false"]')).waitFor();
  await tab1.getByTestId("conv-pin").and(tab1.locator('[aria-pressed="false"]')).waitFor(); // the open settings follow too

  // Clear history in tab 1: tab 2, which shows the conversation, drops the messages.
  await tab1.bringToFront();
  await tab1.getByTestId("conv-clear").click();
  await tab1.getByTestId("message").waitFor({ state: "detached" });
  await tab2.getByTestId("message").waitFor({ state: "detached" });
  await send(quinn, "after the clear");
  await tab2.getByTestId("message").filter({ hasText: "after the clear" }).waitFor();
  assert.equal(await tab2.getByTestId("message").count(), 1, "only the message after the clear");

  // Hide rex in tab 1: gone from both lists, back when rex writes again.
  await tab1.getByTestId("conv-rex").click();
  await tab1.getByTestId("conv-settings-toggle").click();
  await tab1.getByTestId("conv-hide").click();
  await tab1.getByTestId("conv-rex").waitFor({ state: "detached" });
  await tab2.getByTestId("conv-rex").waitFor({ state: "detached" });
  await send(rex, "still there?");
  await tab1.getByTestId("conv-rex").waitFor();
  await tab2.getByTestId("conv-rex").waitFor();
  await shot(tab1, "settings-tab1.png");
  await ctx.close();
  for (const p of [quinn, rex]) await p.context().close();
});

test("the same device signing in elsewhere shows the kick banner", async () => {
  const first = await login("kim");
  const device = await first.evaluate(() => window.missive.deviceId);
  assert.equal(device, await first.evaluate(() => localStorage.getItem("missive-device:kim")), "a tab's first device id");

  // Another browser with the same device id (as if the profile were copied).
  const second = await login("kim", { deviceId: device });
  assert.equal(await second.evaluate(() => window.missive.deviceId), device);

  const banner = first.getByTestId("kicked-banner");
  await banner.waitFor();
  assert.match(await banner.textContent(), /signed in again in another window or browser/);
  assert.equal(await banner.getAttribute("data-reason"), "SAME_DEVICE");
  await first.getByTestId("conn-state").filter({ hasText: "signed out" }).waitFor();
  // The new session stays up: the old page does not reconnect by itself.
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await second.getByTestId("conn-state").textContent(), "online");
  assert.equal(await second.getByTestId("kicked-banner").isHidden(), true);
  await shot(first, "kicked-banner.png");
  await first.context().close();
  await second.context().close();
});

test("narrow layout: the list and a conversation are separate screens with a back button", async () => {
  const nina = await login("nina", { viewport: { width: 390, height: 844 } });
  const otto = await login("otto");
  await openChat(otto, "nina");
  await send(otto, "hi nina, on your phone?");

  await nina.getByTestId("conv-otto").waitFor();
  assert.equal(await nina.getByTestId("messages").isVisible(), false, "the list screen shows no conversation");
  assert.equal(await nina.getByTestId("back").isVisible(), false);
  await shot(nina, "narrow-list.png");

  await nina.getByTestId("conv-otto").click();
  await nina.getByTestId("message").filter({ hasText: "hi nina, on your phone?" }).waitFor();
  assert.equal(await nina.getByTestId("conv-list").isVisible(), false, "the conversation screen hides the list");
  await nina.getByTestId("back").waitFor();
  await send(nina, "yes, 390 pixels wide");
  const box = await nina.getByTestId("composer").boundingBox();
  assert.ok(box && box.x >= 0 && box.x + box.width <= 390, "the composer fits the screen");
  await shot(nina, "narrow-chat.png");

  await nina.getByTestId("back").click();
  await nina.getByTestId("conv-otto").filter({ hasText: "yes, 390 pixels wide" }).waitFor();
  assert.equal(await nina.getByTestId("messages").isVisible(), false);
  // Keyboard: the conversation is focusable and opens with Enter.
  await nina.getByTestId("conv-otto").focus();
  await nina.keyboard.press("Enter");
  await nina.getByTestId("message").filter({ hasText: "yes, 390 pixels wide" }).waitFor();

  // A group's info panel takes the whole screen and closes back to the conversation.
  await nina.getByTestId("back").click();
  await nina.getByTestId("new-group").click();
  await nina.getByTestId("cg-name").fill("Phone friends");
  await nina.getByTestId("cg-members").fill("otto");
  await nina.getByTestId("cg-create").click();
  await nina.getByTestId("peer-name").filter({ hasText: "Phone friends" }).waitFor();
  await nina.getByTestId("group-info-toggle").click();
  await nina.getByTestId("member-otto").waitFor();
  const panel = await nina.getByTestId("group-panel").boundingBox();
  assert.ok(panel && panel.width === 390 && panel.x === 0, "the panel covers the screen");
  await shot(nina, "narrow-group-panel.png");
  await nina.keyboard.press("Escape");
  await nina.getByTestId("group-panel").waitFor({ state: "hidden" });
  await nina.getByTestId("composer").waitFor();
  await nina.getByTestId("back").click();
  await nina.getByTestId("conv-list").waitFor();
  await nina.context().close();
  await otto.context().close();
});

test("every control has an accessible name and a test id (chat, group panel, settings, dialog)", async () => {
  const uma = await login("uma");
  const vic = await login("vic");
  await uma.getByTestId("new-group").click();
  const unnamed = () =>
    uma.evaluate(() => {
      const nameOf = (el) => {
        const by = el.getAttribute("aria-labelledby");
        const labelled = by ? by.split(/\s+/).map((id) => document.getElementById(id)?.textContent ?? "").join(" ") : "";
        const label = el.labels?.[0]?.textContent ?? "";
        const text = ["BUTTON", "A"].includes(el.tagName) || el.getAttribute("role") === "tab" ? el.textContent : "";
        return (el.getAttribute("aria-label") || labelled || label || text || el.getAttribute("title") || "").trim();
      };
      const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
      // The contacts and Me views are checked by contacts.test.mjs.
      const mine = (el) => !el.closest("#panel-contacts, #panel-me");
      return [...document.querySelectorAll("button, input, select, textarea, [role=tab], [role=button]")]
        .filter((el) => visible(el) && mine(el))
        .filter((el) => !nameOf(el) || !el.dataset.testid)
        .map((el) => el.outerHTML.slice(0, 120));
    });
  assert.deepEqual(await unnamed(), [], "the create-group dialog");
  await uma.getByTestId("cg-name").fill("Names");
  await uma.getByTestId("cg-members").fill("vic");
  await uma.getByTestId("cg-create").click();
  await uma.getByTestId("peer-name").filter({ hasText: "Names" }).waitFor();
  await uma.getByTestId("conv-settings-toggle").click();
  await uma.getByTestId("group-info-toggle").click();
  await uma.getByTestId("member-vic").waitFor();
  await uma.getByTestId("group-edit").click();
  await uma.getByTestId("join-group-toggle").click();
  await uma.getByTestId("composer").fill("@");
  await uma.getByTestId("mention-option").first().waitFor();
  assert.deepEqual(await unnamed(), [], "chat, settings, group panel (editing), join form, mention list");
  await uma.context().close();
  await vic.context().close();
});

test("older history loads when the message list is scrolled to the top", async () => {
  const wes = await login("wes");
  // 45 messages before xena ever signs in (the page loads 30 per history page).
  await wes.evaluate(async () => {
    const c = window.missive.client;
    for (let i = 1; i <= 45; i++) await c.sendText("p:wes:xena", `old message ${i}`);
  });
  const xena = await login("xena");
  await xena.getByTestId("conv-wes").click();
  await xena.getByTestId("message").filter({ hasText: "old message 45" }).waitFor();
  await xena.getByTestId("load-older").waitFor();
  assert.equal(await xena.getByTestId("message").filter({ hasText: /^old message 1\b/ }).count(), 0, "the first page is the newest");
  await xena.getByTestId("messages").evaluate((el) => el.scrollTo(0, 0));
  await xena.getByTestId("message").filter({ has: xena.getByTestId("message-text").filter({ hasText: /^old message 1$/ }) }).waitFor();
  assert.equal(await xena.getByTestId("message").count(), 45);
  await xena.getByTestId("load-older").waitFor({ state: "detached" }); // nothing older
  await wes.context().close();
  await xena.context().close();
});

test("without Web Locks (an insecure origin) two tabs still take different device ids", async () => {
  const ctx = await newContext();
  await ctx.addInitScript(() => Object.defineProperty(navigator, "locks", { value: undefined }));
  const tab1 = await login("yara", { context: ctx });
  const tab2 = await openPage(ctx, "yara");
  await tab2.getByTestId("conn-state").filter({ hasText: "online" }).waitFor();
  const ids = await Promise.all([tab1, tab2].map((p) => p.evaluate(() => [navigator.locks === undefined, window.missive.deviceId])));
  assert.deepEqual(ids.map(([noLocks]) => noLocks), [true, true]);
  assert.notEqual(ids[0][1], ids[1][1]);
  await new Promise((r) => setTimeout(r, 1000));
  for (const p of [tab1, tab2]) {
    assert.equal(await p.getByTestId("conn-state").textContent(), "online");
    assert.equal(await p.getByTestId("kicked-banner").isHidden(), true);
  }
  await ctx.close();
});

test("signing out and in as another user leaves nothing of the first user on the page", async () => {
  const sol = await login("sol");
  const tia = await login("tia");
  await openChat(tia, "sol");
  await send(tia, "a secret for sol");
  // A group invitation waiting for sol's consent (sidebar).
  await tia.evaluate(async () => {
    const c = window.missive.client;
    await c.createGroup({ groupId: "tiagrp", type: 1, info: { name: "Tia's group", inviteeConsent: true }, memberIds: [] });
    await c.inviteToGroup({ groupId: "tiagrp", userIds: ["sol"] });
  });
  await sol.getByTestId("invite-tiagrp").waitFor();
  await sol.getByTestId("conv-tia").click();
  const secret = sol.getByTestId("message").filter({ hasText: "a secret for sol" });
  await secret.waitFor();
  await secret.hover();
  await secret.getByTestId("action-reply").click();
  await sol.getByTestId("compose-bar").waitFor();
  await sol.getByTestId("composer").fill("an unsent draft");

  await sol.getByTestId("logout").click();
  await sol.getByTestId("login-user").waitFor();
  const leftovers = () =>
    sol.evaluate(() => ({
      messages: document.querySelectorAll('[data-testid="message"]').length,
      list: document.querySelectorAll('[data-testid="conv-list"] > li').length,
      invites: document.querySelectorAll('[data-testid^="invite-"]').length,
      draft: document.querySelector('[data-testid="composer"]').value,
      replyBar: !document.querySelector('[data-testid="compose-bar"]').hidden,
      header: document.querySelector('[data-testid="peer-name"]').textContent,
    }));
  const clean = { messages: 0, list: 0, invites: 0, draft: "", replyBar: false, header: "Select a conversation" };
  assert.deepEqual(await leftovers(), clean, "signed out: nothing of sol's stays in the page");

  await sol.getByTestId("login-user").fill("ursa");
  await sol.getByTestId("login-submit").click();
  await sol.getByTestId("conn-state").filter({ hasText: "online" }).waitFor();
  assert.deepEqual(await leftovers(), clean, "ursa sees nothing of sol's");
  await sol.context().close();
  await tia.context().close();
});

test("a hidden conversation opened again from New chat stays open (its read answer still says hidden)", async () => {
  const ivy = await login("ivy");
  const hal = await login("hal");
  await openChat(hal, "ivy");
  await send(hal, "one for ivy");
  await ivy.getByTestId("unread-hal").waitFor();
  // Hidden unread (from another device, say): gone from the list.
  await ivy.evaluate(() => window.missive.client.updateConversation({ convId: "p:hal:ivy", hidden: true }));
  await ivy.getByTestId("conv-hal").waitFor({ state: "detached" });

  await openChat(ivy, "hal");
  await ivy.getByTestId("message").filter({ hasText: "one for ivy" }).waitFor();
  // Opening reads it: the answered state is still hidden (nothing un-hides it but a message).
  await ivy.waitForFunction(() => window.missive.client.conversation("p:hal:ivy")?.readSeq === 1n);
  assert.equal(await ivy.getByTestId("peer-name").getAttribute("data-user"), "hal", "still open");
  assert.equal(await ivy.getByTestId("message").filter({ hasText: "one for ivy" }).count(), 1);
  // A reply un-hides it: back in the list.
  await send(ivy, "hi hal");
  await ivy.getByTestId("conv-hal").waitFor();
  await ivy.context().close();
  await hal.context().close();
});
