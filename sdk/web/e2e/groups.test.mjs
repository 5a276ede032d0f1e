// Browser end-to-end test of groups on the chat page (spec section 14): headless Debian
// Chromium (playwright-core) against a real broker, one browser context per user.
// One group from creation to dismissal: create with a member, rename and a notice,
// an invitation that needs consent (pending, then accepted; another one declined), an
// application approved, an admin, a muted member whose send is refused with the error
// shown, an @-mention picked from the autocomplete (the mentioned user's list shows
// "[@me]"), who-read counts, a kick, a transfer of ownership, leaving, and dismissal (members see the tip
// and the group turns read-only). Screenshots land in sdk/web/test-results/; with
// E2E_UPDATE_DOCS=1 the group screenshot also replaces docs/img/web-group.png (README).
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { repo } from "./broker.mjs";
import { browserSuite, compose, out, send, shot, withPages } from "./harness.mjs";

// Confirmations (kick, transfer, leave, dismiss) are accepted.
const suite = browserSuite({ viewport: { width: 1280, height: 760 }, timeout: 15_000, acceptDialogs: true });
const { login } = suite;

const tip = (page, text) => page.getByTestId("tip-notice").filter({ hasText: text });
const GID = "rocket";
const conv = (page) => page.getByTestId(`conv-g-${GID}`);

async function openGroup(page) {
  await conv(page).click();
  await page.getByTestId("peer-name").filter({ hasText: /Team|Rocket/ }).waitFor();
}

async function openPanel(page) {
  if (await page.getByTestId("group-panel").isHidden()) await page.getByTestId("group-info-toggle").click();
  await page.getByTestId("group-name").waitFor();
}

test("a group from creation to dismissal", async () => {
  const alice = await login("alice");
  const bob = await login("bob");
  const carol = await login("carol");
  const dave = await login("dave");
  await withPages("group", { alice, bob, carol, dave }, async () => {
    // ---- create with a member
    await alice.getByTestId("new-group").click();
    await alice.getByTestId("cg-name").fill("Team");
    await alice.getByTestId("cg-members").fill("bob");
    await alice.getByTestId("cg-id").fill(GID);
    await alice.getByTestId("cg-create").click();
    await tip(alice, "You created the group with bob").waitFor();
    await alice.getByTestId("peer-name").filter({ hasText: "Team" }).waitFor();
    await conv(bob).filter({ hasText: "alice created the group with you" }).waitFor();
    await conv(bob).getByTestId(`unread-g-${GID}`).filter({ hasText: "1" }).waitFor();

    // ---- rename and a notice (owner edits the info)
    await openPanel(alice);
    await alice.getByTestId("group-edit").click();
    await alice.getByTestId("edit-name").fill("Rocket Team");
    await alice.getByTestId("edit-notice").fill("Stand-up at 10:00 every day");
    await alice.getByTestId("edit-intro").fill("Where rockets are planned.");
    await alice.getByTestId("edit-save").click();
    await alice.getByTestId("group-name").filter({ hasText: "Rocket Team" }).waitFor();
    await alice.getByTestId("group-notice").filter({ hasText: "Stand-up at 10:00" }).waitFor();
    await tip(alice, "You updated the group info").waitFor();
    await conv(bob).filter({ hasText: "Rocket Team" }).waitFor();
    await openGroup(bob);
    await tip(bob, "alice updated the group info").waitFor();
    await openPanel(bob);
    await bob.getByTestId("group-notice").filter({ hasText: "Stand-up at 10:00" }).waitFor();
    assert.equal(await bob.getByTestId("my-role").textContent(), "Your role: Member");
    assert.equal(await bob.getByTestId("group-dismiss").count(), 0, "a member cannot dismiss");
    assert.equal(await bob.getByTestId("set-join-mode").count(), 0, "a member cannot change settings");

    // ---- invitation with consent: pending until carol accepts
    await alice.getByTestId("set-consent").check();
    await alice.getByTestId("set-consent").and(alice.locator(":checked")).waitFor();
    await alice.getByTestId("invite-users").fill("carol");
    await alice.getByTestId("invite-go").click();
    await alice.getByTestId("invite-status").filter({ hasText: "waiting" }).waitFor();
    await alice.getByTestId("pending-invite-carol").waitFor();
    await carol.getByTestId(`invite-${GID}`).filter({ hasText: "alice invites you to Rocket Team" }).waitFor();
    assert.equal(await conv(carol).count(), 0, "not a member before accepting");
    // dave declines his invitation ([GR-9a]): nobody joins, the inviter is told.
    await alice.getByTestId("invite-users").fill("dave");
    await alice.getByTestId("invite-go").click();
    await alice.getByTestId("pending-invite-dave").waitFor();
    await dave.getByTestId(`invite-${GID}`).filter({ hasText: "alice invites you to Rocket Team" }).waitFor();
    await dave.getByTestId(`invite-decline-${GID}`).click();
    await dave.getByTestId(`invite-${GID}`).waitFor({ state: "detached" });
    await alice.getByTestId("toast").filter({ hasText: "dave declined the invitation to Rocket Team" }).waitFor();
    await alice.getByTestId("pending-invite-dave").waitFor({ state: "detached" });
    assert.equal(await conv(dave).count(), 0, "a declined invitation joins nobody");
    await carol.getByTestId(`invite-accept-${GID}`).click();
    await tip(carol, "You joined the group").waitFor();
    await tip(alice, "carol joined the group").waitFor();
    await alice.getByTestId("pending-invite-carol").waitFor({ state: "detached" });
    await alice.getByTestId("member-carol").waitFor();

    // ---- an application, approved
    await alice.getByTestId("set-join-mode").selectOption({ label: "Join by application (approval)" });
    await tip(alice, "You updated the group info").nth(1).waitFor();
    await dave.getByTestId("join-group-toggle").click();
    await dave.getByTestId("join-group-id").fill(GID);
    await dave.getByTestId("join-group-reason").fill("I build engines");
    await dave.getByTestId("join-group-go").click();
    await dave.getByTestId("join-status").filter({ hasText: "Application sent" }).waitFor();
    await alice.getByTestId(`request-${GID}-dave`).filter({ hasText: "I build engines" }).waitFor(); // the push, in the sidebar
    await alice.getByTestId("application-dave").waitFor(); // and in the group panel
    await alice.getByTestId("app-approve-dave").click();
    await tip(alice, "dave joined (approved by you)").waitFor();
    await conv(dave).waitFor();
    await alice.getByTestId(`request-${GID}-dave`).waitFor({ state: "detached" });

    // ---- bob becomes an admin, and mutes carol: her send is refused with the reason
    await alice.getByTestId("member-admin-bob").click();
    await alice.getByTestId("role-bob").filter({ hasText: "Admin" }).waitFor();
    await tip(bob, "alice made you an admin").waitFor();
    await bob.getByTestId("my-role").filter({ hasText: "Admin" }).waitFor();
    await bob.getByTestId("member-carol").waitFor();
    assert.equal(await bob.getByTestId("member-mute-alice").count(), 0, "an admin cannot mute the owner");
    await bob.getByTestId("member-mute-carol").click();
    await bob.getByTestId("muted-carol").waitFor();
    await tip(carol, "bob muted you until").waitFor();
    await compose(carol, "can I still talk?");
    await carol.getByTestId("composer-error").filter({ hasText: "MEMBER_MUTED (4110)" }).waitFor();
    await shot(carol, "group-muted-carol.png");
    await bob.getByTestId("member-mute-carol").click(); // unmute
    await bob.getByTestId("muted-carol").waitFor({ state: "detached" });
    await tip(carol, "bob unmuted you").waitFor();
    // Mute all: ordinary members cannot send, admins still can.
    await alice.getByTestId("set-mute-all").check();
    await tip(carol, "alice muted the group: only the owner and admins can send").waitFor();
    await compose(carol, "and now?");
    await carol.getByTestId("composer-error").filter({ hasText: "GROUP_MUTED (4111)" }).waitFor();
    await send(bob, "admins still talk");
    await alice.getByTestId("set-mute-all").uncheck();
    await tip(carol, "alice unmuted the group").waitFor();

    // ---- @-mention with autocomplete: dave's list shows the marker
    await openGroup(carol);
    await alice.getByTestId("composer").click();
    await alice.getByTestId("composer").pressSequentially("Welcome @da");
    await alice.getByTestId("mention-option").filter({ hasText: "@dave" }).waitFor();
    assert.equal(await alice.getByTestId("mention-option").filter({ hasText: "@bob" }).count(), 0, "filtered by what was typed");
    await alice.getByTestId("composer").press("Enter"); // picks the highlighted member
    assert.equal(await alice.getByTestId("composer").inputValue(), "Welcome @dave ");
    await alice.getByTestId("mention-list").waitFor({ state: "hidden" });
    await alice.getByTestId("composer").pressSequentially("please read the notice");
    await alice.getByTestId("composer").press("Enter");
    await alice.getByTestId("message").filter({ hasText: "Welcome @dave please read the notice" }).waitFor();
    await dave.getByTestId(`mention-g-${GID}`).filter({ hasText: "[@me]" }).waitFor();
    assert.equal(await bob.getByTestId(`mention-g-${GID}`).count(), 0, "only the mentioned member gets the marker");
    await shot(dave, "group-mention-dave.png");

    // ---- who read it: bob and carol have the group open, then dave opens it
    const welcome = alice.getByTestId("message").filter({ hasText: "Welcome @dave" });
    await welcome.getByTestId("group-read-count").filter({ hasText: "Read by 2" }).waitFor();
    await openGroup(dave);
    await dave.getByTestId("message").filter({ hasText: "Welcome @dave" }).waitFor();
    await dave.getByTestId(`mention-g-${GID}`).waitFor({ state: "detached" });
    await welcome.getByTestId("group-read-count").filter({ hasText: "Read by all 3" }).waitFor();
    await send(bob, "Hi dave, welcome aboard");
    await send(dave, "Thanks all!");
    await openPanel(alice);
    await alice.getByTestId("member-dave").waitFor();
    // The README picture: the panel from its top, without passing notifications.
    await alice.getByTestId("group-panel").evaluate((el) => (el.scrollTop = 0));
    await alice.getByTestId("toasts").evaluate((el) => el.replaceChildren());
    await shot(alice, "group-alice.png");
    if (process.env.E2E_UPDATE_DOCS === "1") copyFileSync(join(out, "group-alice.png"), join(repo, "docs/img/web-group.png"));

    // ---- kick: carol is out and read-only
    await alice.getByTestId("member-kick-carol").click();
    await tip(alice, "You removed carol").waitFor();
    await tip(carol, "alice removed you").waitFor();
    await carol.getByTestId("group-ended").filter({ hasText: "no longer a member" }).waitFor();
    assert.equal(await carol.getByTestId("composer").isDisabled(), true);
    await alice.getByTestId("member-carol").waitFor({ state: "detached" });

    // ---- transfer ownership to bob, then alice leaves
    await alice.getByTestId("member-transfer-bob").click();
    await tip(alice, "You made bob the owner").waitFor();
    await alice.getByTestId("my-role").filter({ hasText: "Member" }).waitFor();
    await alice.getByTestId("group-leave").click();
    await tip(bob, "alice left the group").waitFor();
    await alice.getByTestId("group-ended").waitFor();
    assert.equal(await alice.getByTestId("composer").isDisabled(), true);

    // ---- bob (now the owner) dismisses: dave sees the tip and the group ends
    await bob.getByTestId("my-role").filter({ hasText: "Owner" }).waitFor();
    await bob.getByTestId("group-dismiss").click();
    await tip(dave, "bob dismissed the group").waitFor();
    await dave.getByTestId("group-ended").filter({ hasText: "dismissed" }).waitFor();
    assert.equal(await dave.getByTestId("composer").isDisabled(), true);
    await dave.getByTestId(`ended-g-${GID}`).waitFor();
    await shot(dave, "group-dismissed-dave.png");
    await shot(bob, "group-dismissed-bob.png");
  });
});
