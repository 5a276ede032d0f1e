/**
 * Test helper: a real broker (the `missive` binary) on loopback, and SDK
 * clients connected to it over TCP.
 *
 * `startBroker()` spawns the release binary with a temp data dir, `--tcp
 * 127.0.0.1:0` and a test secret, and parses its `missive listening tcp=...`
 * line (the same spawn as e2e/broker.mjs, without the page). Tokens are minted
 * here with that secret (HS256, spec 5.2), so admin tokens work too. The
 * clients use a small Node TCP transport (length-prefixed frames, [F-1]):
 * Node 20 has no WebSocket, and the browser tests cover that transport.
 * Invariant: every broker started is stopped by its `stop()` (temp dir removed).
 */
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import {
  FrameReader,
  MemoryStore,
  MissiveClient,
  lengthPrefixed,
  type ClientEvents,
  type Transport,
  type TransportFactory,
} from "../src/index.ts";

export const SECRET = "missive-sdk-test-secret-0123456789";

/** The broker binary: `MISSIVE_BIN`, else the release build under the cargo target dir. */
export function brokerBinary(): string {
  if (process.env.MISSIVE_BIN) return process.env.MISSIVE_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(homedir(), ".cache/missive/target");
  return join(target, "release", "missive");
}

export interface Broker {
  /** TCP address, "127.0.0.1:PORT". */
  tcp: string;
  log(): string;
  stop(): Promise<void>;
}

export async function startBroker(extraConfig = ""): Promise<Broker> {
  const bin = brokerBinary();
  if (!existsSync(bin)) throw new Error(`broker binary not found at ${bin}; build it (make web-test does) or set MISSIVE_BIN`);
  const dir = mkdtempSync(join(tmpdir(), "missive-sdk-"));
  const config = join(dir, "test.toml");
  // The tests send faster than a person: lift the per-device send rate (default 5/s).
  writeFileSync(config, `[limits]\nmax_sends_per_sec = 1000000\n${extraConfig}`);
  const args = ["--data", join(dir, "data"), "--secret", SECRET, "--workers", "2", "--config", config,
    "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--api", "127.0.0.1:0"];
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
  let log = "";
  child.stderr.on("data", (d) => (log += d));
  const fields = await new Promise<Record<string, string>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker did not start:\n${log}`)), 30_000);
    let buf = "";
    child.stdout.on("data", (d) => {
      buf += d;
      const line = buf.split("\n").find((l) => l.startsWith("missive listening "));
      if (!line) return;
      clearTimeout(timer);
      resolve(Object.fromEntries(line.slice(18).trim().split(/\s+/).map((kv) => kv.split("=") as [string, string])));
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited ${code}:\n${log}`));
    });
  });
  return {
    tcp: fields.tcp,
    log: () => log,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An HS256 token for `user` (spec 5.2), issued now to the millisecond. */
export function mintToken(user: string, role: "user" | "admin" = "user", ttlSecs = 3600): string {
  const b64 = (s: string) => Buffer.from(s).toString("base64url");
  const header = b64(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const now = Date.now() / 1000;
  const claims = b64(JSON.stringify({ sub: user, exp: Math.floor(now) + ttlSecs, iat: now, role }));
  const sig = createHmac("sha256", SECRET).update(`${header}.${claims}`).digest("base64url");
  return `${header}.${claims}.${sig}`;
}

/** A Node TCP transport: 4-byte big-endian length-prefixed frames (spec 2.1). */
export function tcpTransport(addr: string): TransportFactory {
  const i = addr.lastIndexOf(":");
  const host = addr.slice(0, i);
  const port = Number(addr.slice(i + 1));
  return () =>
    new Promise<Transport>((resolve, reject) => {
      const sock = connect({ host, port });
      sock.setNoDelay(true);
      const reader = new FrameReader(16 << 20);
      let opened = false;
      let closed = false;
      const t: Transport = {
        kind: "tcp",
        send(payload) {
          if (!closed) sock.write(lengthPrefixed(payload));
        },
        close() {
          sock.destroy();
          finish("closed by the client");
        },
        onMessage: () => {},
        onClose: () => {},
      };
      const finish = (reason: string) => {
        if (closed) return;
        closed = true;
        if (opened) t.onClose(reason);
        else reject(new Error(`tcp: ${reason}`));
      };
      sock.once("connect", () => {
        opened = true;
        resolve(t);
      });
      sock.on("data", (chunk) => {
        let frames: Uint8Array[];
        try {
          frames = reader.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        } catch (e) {
          sock.destroy();
          return finish(String(e));
        }
        for (const f of frames) if (!closed) t.onMessage(f);
      });
      sock.on("error", (e) => finish(`socket error: ${e.message}`));
      sock.on("close", () => finish("socket closed"));
    });
}

/** A connected client: started, online, its first sync done. */
export async function connectClient(
  broker: Broker,
  user: string,
  device = "web1",
  role: "user" | "admin" = "user",
  /** Called before the client starts (to subscribe to the events of its first sync). */
  setup: (c: MissiveClient) => void = () => {},
): Promise<MissiveClient> {
  const c = new MissiveClient({
    transports: [tcpTransport(broker.tcp)],
    token: async () => mintToken(user, role),
    deviceId: device,
    store: new MemoryStore(),
    backoffMs: { initial: 50, max: 500 },
    requestTimeoutMs: 10_000,
    pushAckDelayMs: 20,
  });
  const online = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${user}/${device} not online: ${c.state}`)), 10_000);
    const off = c.on("state", (s, detail) => {
      if (s === "online") {
        clearTimeout(timer);
        off();
        resolve();
      } else if (s === "ended") {
        clearTimeout(timer);
        off();
        reject(new Error(`${user}/${device} ended: ${detail}`));
      }
    });
  });
  setup(c);
  c.start();
  await online;
  await c.syncNow();
  return c;
}

/**
 * Resolves with the first `event` whose payload satisfies `pred`; rejects
 * after `ms`. Subscribe before the action that causes the event.
 */
export function nextEvent<K extends keyof ClientEvents>(
  c: MissiveClient,
  event: K,
  pred: (...args: Parameters<ClientEvents[K]>) => boolean = () => true,
  ms = 5000,
): Promise<Parameters<ClientEvents[K]>[0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} event within ${ms} ms`));
    }, ms);
    const off = c.on(event, ((...args: Parameters<ClientEvents[K]>) => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      off();
      resolve(args[0]);
    }) as ClientEvents[K]);
  });
}
