// Shared setup of the browser tests (e2e/*.test.mjs; this file is not a test of its own).
// `browserSuite(options)`, called once at the top of a test file, registers node:test hooks:
// before the file's tests it creates sdk/web/test-results/, starts one broker (broker.mjs
// `startBroker`) and launches headless Chromium (playwright-core, system Chromium); after
// them it closes the browser and stops the broker. Options:
//   - `brokerArgs`, `brokerConfig`: startBroker's extra arguments and TOML;
//   - `setup(broker)`: run once the broker and the browser are up (e.g. admin REST calls);
//   - `viewport`: the contexts' viewport (default 1100x700);
//   - `timeout`: the contexts' default timeout in ms (unset: Playwright's own);
//   - `acceptDialogs`: accept confirm() dialogs (kick, leave, clear history...).
// It returns the suite; `suite.broker` and `suite.browser` are set once the hooks ran:
//   - `newContext({ viewport, timeout })`: a browser context (own storage: one user's
//     profile), the suite's viewport and timeout unless given;
//   - `openPage(context, user)`: a page of that context on the chat page, its page errors
//     logged as `[user] page error:`, its dialogs accepted with `acceptDialogs`;
//   - `login(user, { context, viewport, timeout, deviceId })`: a page in `context` (else in
//     a new context) signed in as `user` through the login form, once online; `deviceId` is
//     stored as that user's device id before the page loads (as if the profile were copied).
// Page helpers shared by the files: `compose`, `send`, `texts`, `openChat`, `shot` (into
// test-results/) and `withPages` (failure screenshots, then the pages' contexts closed).
import { before, after } from "node:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startBroker, chromiumArgs, chromiumPath, repo } from "./broker.mjs";

/** Where screenshots go (git-ignored). */
export const out = join(repo, "sdk/web/test-results");

export function browserSuite({ brokerArgs = [], brokerConfig = "", setup, viewport = { width: 1100, height: 700 }, timeout, acceptDialogs = false } = {}) {
  let broker, browser;

  before(async () => {
    mkdirSync(out, { recursive: true });
    broker = await startBroker(brokerArgs, brokerConfig);
    browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: chromiumArgs });
    await setup?.(broker);
  });

  after(async () => {
    await browser?.close();
    await broker?.stop();
  });

  const suite = {
    get broker() {
      return broker;
    },
    get browser() {
      return browser;
    },

    async newContext(opts = {}) {
      const context = await browser.newContext({ viewport: opts.viewport ?? viewport });
      const wait = opts.timeout ?? timeout;
      if (wait !== undefined) context.setDefaultTimeout(wait);
      return context;
    },

    async openPage(context, user) {
      const page = await context.newPage();
      page.on("pageerror", (e) => console.error(`[${user}] page error:`, e));
      if (acceptDialogs) page.on("dialog", (d) => void d.accept());
      await page.goto(`http://${broker.ws}/`);
      return page;
    },

    async login(user, { context, viewport, timeout, deviceId } = {}) {
      context ??= await suite.newContext({ viewport, timeout });
      if (deviceId !== undefined) await context.addInitScript(([u, id]) => localStorage.setItem(`missive-device:${u}`, id), [user, deviceId]);
      const page = await suite.openPage(context, user);
      await page.getByTestId("login-user").fill(user);
      await page.getByTestId("login-submit").click();
      await page.getByTestId("conn-state").filter({ hasText: "online" }).waitFor();
      return page;
    },
  };
  return suite;
}

/** Types `text` into the composer and presses Enter (no wait: the send may be refused). */
export async function compose(page, text) {
  await page.getByTestId("composer").fill(text);
  await page.getByTestId("composer").press("Enter");
}

/** Sends `text` from the open conversation and waits for it in the message list. */
export async function send(page, text) {
  await compose(page, text);
  await page.getByTestId("message").filter({ hasText: text }).waitFor();
}

/** The texts of the open conversation's messages, top to bottom. */
export function texts(page) {
  return page.getByTestId("message-text").evaluateAll((els) => els.map((e) => e.textContent ?? ""));
}

/** Opens the 1:1 conversation with `peer` from the sidebar and waits for its header. */
export async function openChat(page, peer) {
  await page.getByTestId("new-chat-user").fill(peer);
  await page.getByTestId("new-chat-go").click();
  await page.locator(`[data-testid="peer-name"][data-user="${peer}"]`).waitFor(); // the id, whatever name is shown
}

/** A screenshot of `page` into test-results/NAME. */
export function shot(page, name) {
  return page.screenshot({ path: join(out, name) });
}

/**
 * Runs `fn` with the pages `{ who: page }`: when it fails, first saves `fail-NAME-WHO.png` of
 * every page still open; in any case closes the pages' contexts afterwards.
 */
export async function withPages(name, pages, fn) {
  try {
    await fn();
  } catch (e) {
    for (const [who, p] of Object.entries(pages)) {
      if (!p.isClosed()) await shot(p, `fail-${name}-${who}.png`).catch(() => {});
    }
    throw e;
  } finally {
    for (const p of Object.values(pages)) await p.context().close();
  }
}
