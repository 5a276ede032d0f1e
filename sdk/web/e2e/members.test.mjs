// Browser end-to-end tests of a large group on the chat page: headless Chromium
// (playwright-core) against a real broker. The accounts and the group are made
// through the admin REST API (`--api`, broker.mjs `adminApi`): 55 members.
// 1. the group panel lists 50 members, then the other 5 after "Load more", with
//    the owner's and an admin's roles;
// 2. the @-mention list of a member who never opened the panel offers members of
//    the second page, by id prefix and by group nickname; the picked one is in the
//    sent message's mentions.
// Every wait is bounded (context default timeout); screenshots land in test-results/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { adminApi } from "./broker.mjs";
import { browserSuite, shot, withPages } from "./harness.mjs";

const GID = "crowd";
const OWNER = "olga";
/** 54 members besides the owner: m00..m53. By id, m00..m49 fill the first page; m50..m53 and olga the second. */
const MEMBERS = Array.from({ length: 54 }, (_, i) => `m${String(i).padStart(2, "0")}`);
const { login } = browserSuite({
  viewport: { width: 1280, height: 900 },
  timeout: 15_000,
  // The accounts and the group, through the admin REST API.
  async setup(broker) {
    const imported = await adminApi(broker, "POST", "/v1/users/import", { users: [OWNER, ...MEMBERS].map((user_id) => ({ user_id })) });
    assert.ok(imported.results.every((r) => r.ok), JSON.stringify(imported.results.filter((r) => !r.ok)));
    const g = await adminApi(broker, "POST", "/v1/groups", { group_id: GID, owner_id: OWNER, info: { name: "Crowd" }, member_ids: MEMBERS });
    assert.equal(g.member_count ?? g.memberCount, 55);
    await adminApi(broker, "PUT", `/v1/groups/${GID}/members/m03/role`, { role: "admin" });
  },
});

async function openGroup(page) {
  await page.getByTestId(`conv-g-${GID}`).click();
  await page.getByTestId("peer-name").filter({ hasText: "Crowd" }).waitFor();
}

const rows = (page) => page.getByTestId("member-list").locator("> li");

test("a group of 55: the panel lists 50 members, then the rest after Load more, with roles", async () => {
  const olga = await login(OWNER);
  await withPages("members", { olga }, async () => {
    await openGroup(olga);
    await olga.getByTestId("group-info-toggle").click();
    await olga.getByTestId("group-member-count").filter({ hasText: "55 members" }).waitFor();
    await olga.getByTestId("members-more").waitFor();
    assert.equal(await rows(olga).count(), 50, "one page of 50");
    assert.equal(await rows(olga).first().getAttribute("data-testid"), "member-m00", "ascending by id");
    assert.equal(await rows(olga).last().getAttribute("data-testid"), "member-m49");
    assert.equal(await olga.getByTestId("role-m03").textContent(), "Admin", "roles on the first page");
    assert.equal(await olga.getByTestId("member-olga").count(), 0, "the owner sorts onto the second page");

    await olga.getByTestId("members-more").click();
    await olga.getByTestId("member-olga").waitFor();
    assert.equal(await rows(olga).count(), 55, "the other 5 appended");
    assert.equal(await olga.getByTestId("role-olga").textContent(), "Owner");
    for (const u of ["m50", "m51", "m52", "m53"]) await olga.getByTestId(`member-${u}`).waitFor();
    await olga.getByTestId("members-more").waitFor({ state: "detached" });
    assert.equal(await olga.getByTestId("role-m50").count(), 0, "an ordinary member has no role badge");

    // A tip re-reads the group: the list keeps all 55 (not back to one page).
    await olga.evaluate(() => {
      const c = window.missive.client;
      const list = c.listGroupMembers.bind(c);
      window.memberReads = 0; // member lists read from the start
      c.listGroupMembers = (req) => list(req).finally(() => (window.memberReads += req.cursor ? 0 : 1));
    });
    await olga.getByTestId("member-admin-m51").click();
    await olga.getByTestId("role-m51").filter({ hasText: "Admin" }).waitFor();
    await olga.getByTestId("tip-notice").filter({ hasText: "You made m51 an admin" }).waitFor();
    await olga.waitForFunction(() => window.memberReads > 0); // the re-read after the tip
    // Its render is a 0 ms timer queued when the read resolved: a later 0 ms timer runs after it.
    await olga.evaluate(() => new Promise((r) => setTimeout(r, 0)));
    assert.equal(await rows(olga).count(), 55, "still every member after the re-read");
    await shot(olga, "group-members-olga.png");
  });
});

test("@-mention candidates come from every member, not only the first page: by id prefix and by group nickname", async () => {
  const olga = await login(OWNER);
  const m10 = await login("m10");
  await withPages("mention", { m10, olga }, async () => {
    // The owner gives m52 (second page) a group nickname.
    await olga.evaluate((gid) => window.missive.client.setGroupNickname({ groupId: gid, userId: "m52", nickname: "Zelda" }), GID);

    await openGroup(m10);
    assert.equal(await m10.getByTestId("group-panel").isHidden(), true, "the panel was never opened");
    const composer = m10.getByTestId("composer");
    await composer.click();
    await composer.pressSequentially("ping @m5");
    const options = m10.getByTestId("mention-option");
    await options.filter({ hasText: "@m53" }).waitFor();
    assert.deepEqual(await options.evaluateAll((els) => els.map((e) => e.dataset.user)), ["m50", "m51", "m52", "m53"]);
    // By the group nickname of a second-page member.
    await composer.fill("ping ");
    await composer.pressSequentially("@zel");
    await options.filter({ hasText: "Zelda (m52)" }).waitFor();
    assert.deepEqual(await options.evaluateAll((els) => els.map((e) => e.dataset.user)), ["m52"]);
    await composer.press("Enter"); // picks it
    assert.equal(await composer.inputValue(), "ping @m52 ");
    await composer.pressSequentially("look");
    await composer.press("Enter");
    await m10.getByTestId("message").filter({ hasText: "ping @m52 look" }).waitFor();
    const mentions = await m10.evaluate((gid) => {
      const msgs = window.missive.client.messages(`g:${gid}`);
      return msgs[msgs.length - 1]?.content?.mentions?.userIds ?? [];
    }, GID);
    assert.deepEqual(mentions, ["m52"]);
    // The owner (last on the second page) is a candidate too.
    await composer.pressSequentially("@ol");
    await options.filter({ hasText: "@olga" }).waitFor();
    await shot(m10, "group-mention-roster-m10.png");
  });
});
