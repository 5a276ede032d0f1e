// Browser end-to-end tests of a large group on the chat page: headless Chromium
// (playwright-core) against a real broker. The accounts and the group are made
// through the admin REST API (`--api`, broker.mjs `adminApi`): 55 members.
// The group panel lists 50 members, then the other 5 after "Load more", with the
// owner's and an admin's roles; a tip's re-read keeps all of them.
// Every wait is bounded (context default timeout); screenshots land in test-results/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { adminApi, startBroker, chromiumArgs, chromiumPath, repo } from "./broker.mjs";

const out = join(repo, "sdk/web/test-results");
const GID = "crowd";
const OWNER = "olga";
/** 54 members besides the owner: m00..m53. By id, m00..m49 fill the first page; m50..m53 and olga the second. */
const MEMBERS = Array.from({ length: 54 }, (_, i) => `m${String(i).padStart(2, "0")}`);
let broker, browser;

before(async () => {
  mkdirSync(out, { recursive: true });
  broker = await startBroker();
  browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: chromiumArgs });
  const imported = await adminApi(broker, "POST", "/v1/users/import", { users: [OWNER, ...MEMBERS].map((user_id) => ({ user_id })) });
  assert.ok(imported.results.every((r) => r.ok), JSON.stringify(imported.results.filter((r) => !r.ok)));
  const g = await adminApi(broker, "POST", "/v1/groups", { group_id: GID, owner_id: OWNER, info: { name: "Crowd" }, member_ids: MEMBERS });
  assert.equal(g.member_count ?? g.memberCount, 55);
  await adminApi(broker, "PUT", `/v1/groups/${GID}/members/m03/role`, { role: "admin" });
});

after(async () => {
  await browser?.close();
  await broker?.stop();
});

async function login(user) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[${user}] page error:`, e));
  await page.goto(`http://${broker.ws}/`);
  await page.getByTestId("login-user").fill(user);
  await page.getByTestId("login-submit").click();
  await page.getByTestId("conn-state").filter({ hasText: "online" }).waitFor();
  return page;
}

async function openGroup(page) {
  await page.getByTestId(`conv-g-${GID}`).click();
  await page.getByTestId("peer-name").filter({ hasText: "Crowd" }).waitFor();
}

const rows = (page) => page.getByTestId("member-list").locator("> li");

test("a group of 55: the panel lists 50 members, then the rest after Load more, with roles", async () => {
  const olga = await login(OWNER);
  try {
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
    await olga.waitForTimeout(100); // its render (a timer of 0 ms)
    assert.equal(await rows(olga).count(), 55, "still every member after the re-read");
    await olga.screenshot({ path: join(out, "group-members-olga.png") });
  } catch (e) {
    await olga.screenshot({ path: join(out, "fail-members-olga.png") }).catch(() => {});
    throw e;
  } finally {
    await olga.context().close();
  }
});
