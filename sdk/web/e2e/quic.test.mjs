// Three transports in one conversation web: a browser (headless Chromium, the
// chat page over WebTransport: HTTP/3 over QUIC, with the broker's development
// certificate pinned by `serverCertificateHashes`), a native client on the
// Rust SDK over raw QUIC (`missivectl --quic`, missive-sdk feature `quic`), and
// a native client over TCP (`missivectl --addr`) exchange messages through one
// real broker. QUIC is not disabled in Chromium here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { ctlBinary, SECRET } from "./broker.mjs";
import { browserSuite, compose, shot } from "./harness.mjs";

const suite = browserSuite({ brokerArgs: ["--quic", "127.0.0.1:0"] });

function token(user) {
  return execFileSync(ctlBinary(), ["token", "--secret", SECRET, "--user", user], { encoding: "utf8" }).trim();
}

function ctl(args, user) {
  return execFileSync(ctlBinary(), ["--json", ...args, "--token", token(user), "--device", `${user}-native`], {
    encoding: "utf8",
    timeout: 60_000,
  });
}

const quicArgs = () => ["--quic", suite.broker.quic, "--cert-sha256", suite.broker.cert_sha256];
const tcpArgs = () => ["--addr", suite.broker.tcp];

/** Runs `missivectl tail` for `user` until it printed `count` messages; resolves to them. */
function tail(user, transportArgs, count) {
  const child = spawn(
    ctlBinary(),
    ["--json", "tail", ...transportArgs, "--token", token(user), "--device", `${user}-tail`, "--count", String(count), "--timeout", "90"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`tail ${user} exited ${code}: ${stderr}`));
      resolve(stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)));
    });
  });
}

test("a browser over WebTransport, a native client over raw QUIC and one over TCP chat", async () => {
  const info = await (await fetch(`http://${suite.broker.ws}/api/info`)).json();
  assert.equal(info.webtransport, `https://${suite.broker.quic}/wt`);
  assert.equal(info.certHash, suite.broker.cert_sha256);

  // The native QUIC client listens (sync, then live pushes) for two messages.
  const quinnGot = tail("quinn", quicArgs(), 2);

  const page = await suite.login("wendy");
  // The page chose WebTransport (it falls back to WebSocket only when that fails).
  assert.equal(await page.getByTestId("conn-transport").getAttribute("data-kind"), "webtransport");
  assert.equal(await page.evaluate(() => window.missive.client.transport), "webtransport");

  // Browser -> native QUIC.
  await page.getByTestId("new-chat-user").fill("quinn");
  await page.getByTestId("new-chat-go").click();
  await compose(page, "hi quinn, from the browser");
  // Stored: a tick shows ("sent", or already "delivered" / "read" when quinn's
  // native client acknowledged the push first).
  await page.locator('[data-testid^="receipt-"]').first().waitFor();

  // TCP -> native QUIC, TCP -> browser, native QUIC -> browser.
  ctl(["send", ...tcpArgs(), "--to", "quinn", "hi quinn, from tcp"], "tom");
  ctl(["send", ...tcpArgs(), "--to", "wendy", "hi wendy, from tcp"], "tom");
  const ack = JSON.parse(ctl(["send", ...quicArgs(), "--to", "wendy", "hi wendy, from quic"], "quinn"));
  assert.equal(ack.seq, 2, "quinn's reply is the second message with wendy");

  const got = await quinnGot;
  assert.deepEqual(
    got.map((m) => [m.from, m.text]).sort(),
    [
      ["tom", "hi quinn, from tcp"],
      ["wendy", "hi quinn, from the browser"],
    ],
  );

  // The browser shows both conversations with their unread messages.
  await page.getByTestId("unread-tom").filter({ hasText: "1" }).waitFor();
  await page.getByTestId("message").filter({ hasText: "hi wendy, from quic" }).waitFor();
  await page.getByTestId("conv-tom").click();
  await page.getByTestId("message").filter({ hasText: "hi wendy, from tcp" }).waitFor();

  // Native QUIC history sees the whole conversation with the browser, in order.
  const hist = ctl(["history", ...quicArgs(), "--with", "wendy"], "quinn")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    hist.map((m) => m.text),
    ["hi quinn, from the browser", "hi wendy, from quic"],
  );
  assert.equal(await page.getByTestId("conn-transport").getAttribute("data-kind"), "webtransport", "still on WebTransport");
  await shot(page, "quic-webtransport-wendy.png");
  await page.context().close();
});
