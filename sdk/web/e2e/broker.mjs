// Starts a real broker (the `missive` binary) on loopback for browser tests:
// temp data dir, `--ws 127.0.0.1:0`, dev mode, the built chat page; parses the
// `missive listening tcp=ADDR ws=ADDR ... api=ADDR` line. Stop with `await b.stop()`.
// `adminApi(b, method, path, body)` calls the admin REST API (spec/openapi.yaml) with an
// admin token signed with the test secret, e.g. to register many users at once.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, "../../..");

export function brokerBinary() {
  if (process.env.MISSIVE_BIN) return process.env.MISSIVE_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(homedir(), ".cache/missive/target");
  const bin = join(target, "release", "missive");
  if (!existsSync(bin)) throw new Error(`broker binary not found at ${bin}; build it (cargo build --release -p missive-broker) or set MISSIVE_BIN`);
  return bin;
}

/** The `missivectl` binary (native Rust SDK client: TCP or raw QUIC). */
export function ctlBinary() {
  if (process.env.MISSIVECTL_BIN) return process.env.MISSIVECTL_BIN;
  const bin = join(process.env.CARGO_TARGET_DIR || join(homedir(), ".cache/missive/target"), "release", "missivectl");
  if (!existsSync(bin)) throw new Error(`missivectl not found at ${bin}; build it (cargo build --release -p missive-tools) or set MISSIVECTL_BIN`);
  return bin;
}

export const SECRET = "missive-e2e-secret-0123456789";

/** `extraConfig`: TOML appended to the test config (e.g. a `[messages]` table). */
export async function startBroker(extraArgs = [], extraConfig = "") {
  const dir = mkdtempSync(join(tmpdir(), "missive-e2e-"));
  // The tests send faster than a person: lift the per-device send rate (default 5/s).
  const config = join(dir, "e2e.toml");
  writeFileSync(config, `[limits]\nmax_sends_per_sec = 1000000\n${extraConfig}`);
  const args = ["--data", join(dir, "data"), "--secret", SECRET, "--workers", "2", "--config", config,
    "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--api", "127.0.0.1:0", "--static-dir", join(here, "../demo/dist"), "--dev", ...extraArgs];
  const child = spawn(brokerBinary(), args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
  let log = "";
  child.stderr.on("data", (d) => (log += d));
  const fields = await new Promise((resolveLine, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker did not start:\n${log}`)), 60_000);
    let buf = "";
    child.stdout.on("data", (d) => {
      buf += d;
      for (const line of buf.split("\n")) {
        if (line.startsWith("missive listening ")) {
          clearTimeout(timer);
          resolveLine(Object.fromEntries(line.slice(18).trim().split(/\s+/).map((kv) => kv.split("="))));
        }
      }
    });
    child.on("exit", (code) => reject(new Error(`broker exited ${code}:\n${log}`)));
  });
  return {
    ...fields,
    log: () => log,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.on("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const chromiumArgs = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"];

export function chromiumPath() {
  return process.env.CHROMIUM || "/usr/bin/chromium";
}

/** An HS256 token (spec 5.2) signed with the test secret; `role: "admin"` for the REST API. */
export function mintToken(user, role = "user", ttlSecs = 3600) {
  const b64 = (x) => Buffer.from(x).toString("base64url");
  const header = b64(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const now = Math.floor(Date.now() / 1000);
  const claims = b64(JSON.stringify({ sub: user, exp: now + ttlSecs, iat: now, role }));
  const sig = createHmac("sha256", SECRET).update(`${header}.${claims}`).digest("base64url");
  return `${header}.${claims}.${sig}`;
}

/** One admin REST call (`broker.api`); resolves with the JSON answer, rejects on a non-2xx status. */
export async function adminApi(broker, method, path, body) {
  const r = await fetch(`http://${broker.api}${path}`, {
    method,
    headers: { authorization: `Bearer ${mintToken("e2e-admin", "admin")}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}
