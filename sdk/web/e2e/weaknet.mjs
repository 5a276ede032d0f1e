// Weak-network driver for the TypeScript SDK (run by the Rust black-box test
// tests/tests/blackbox/robustness/weak_network.rs inside the client network
// namespace; not a node test of its own). Two MissiveClients over WebSocket:
// alice sends N texts one after another (each awaited until acked, the SDK
// retrying across timeouts and reconnects), bob receives. Checks that bob
// gets seqs 1..=N in order, each once, carrying the sent texts in send order,
// and nothing more in the next second. Prints one JSON line:
// {"errors":[...],"latencies_ms":[...],"reconnects":N} (latency: send start ->
// bob's message event; reconnects: sessions after the first, both clients).
// Connection state changes go to stderr.
// Usage: node weaknet.mjs WS_URL ALICE ALICE_TOKEN BOB BOB_TOKEN N TAG
import { MissiveClient, webSocketTransport, directConvId } from "../dist/src/index.js";

const [url, aliceId, aliceToken, bobId, bobToken, nArg, tag] = process.argv.slice(2);
const n = Number(nArg);
const conv = directConvId(aliceId, bobId);
const errors = [];
if (typeof globalThis.WebSocket !== "function") {
  console.log(JSON.stringify({ errors: ["no global WebSocket (node >= 22, or --experimental-websocket)"], latencies_ms: [] }));
  process.exit(1);
}
const opts = (token) => ({
  transports: [webSocketTransport(url)],
  token,
  deviceId: "phone",
  backoffMs: { initial: 100, max: 2000 },
  // Like the Rust run's connect_timeout: give one attempt 30 s before a fresh one.
  connectTimeoutMs: 30_000,
});
const alice = new MissiveClient(opts(aliceToken));
const bob = new MissiveClient(opts(bobToken));
const t0 = performance.now();
let reconnects = 0;
for (const [name, c] of [["alice", alice], ["bob", bob]]) {
  let online = 0;
  c.on("state", (st, detail) => {
    if (st === "online" && online++ > 0) reconnects++;
    console.error(`${((performance.now() - t0) / 1000).toFixed(2)}s ${name} ${st} ${detail}`);
  });
}
const got = [];
let wake = () => {};
bob.on("message", (m) => {
  if (m.convId !== conv) return;
  console.error(`${((performance.now() - t0) / 1000).toFixed(2)}s bob got seq ${m.seq}`);
  got.push({ seq: Number(m.seq), text: m.content?.body?.case === "text" ? m.content.body.value.text : "", at: performance.now() });
  wake();
});
// Like the Rust run (whose connect returns once the session is up): bob is online before
// alice sends. A device's first sync treats what is already there as history (no message
// events), so messages sent before bob's first session would not be events.
const bobOnline = new Promise((resolve) => bob.on("state", (st) => st === "online" && resolve()));
bob.start();
await bobOnline;
alice.start();
const sentAt = [];
const texts = [];
for (let i = 0; i < n; i++) {
  const text = `${tag}-${String(i).padStart(5, "0")}`;
  texts.push(text);
  sentAt.push(performance.now());
  try {
    const ack = await alice.sendText(conv, text);
    console.error(`${((performance.now() - t0) / 1000).toFixed(2)}s acked ${text} seq ${ack.seq}, bob has ${got.length}`);
    if (Number(ack.seq) !== i + 1) errors.push(`send ${text}: acked seq ${ack.seq}, expected ${i + 1}`);
  } catch (e) {
    errors.push(`send ${text} failed: ${e?.message ?? e}`);
    break;
  }
}
while (got.length < n && errors.length === 0) await new Promise((r) => { wake = r; });
await new Promise((r) => setTimeout(r, 1000));
if (got.length !== n) errors.push(`bob got ${got.length} messages, expected exactly ${n}`);
got.forEach((g, i) => {
  if (g.seq !== i + 1) errors.push(`bob's message #${i + 1} has seq ${g.seq}`);
  if (g.text !== texts[i]) errors.push(`bob's message #${i + 1} is ${g.text}, expected ${texts[i]}`);
});
const latencies = got.slice(0, n).map((g, i) => g.at - sentAt[i]);
alice.stop();
bob.stop();
console.log(JSON.stringify({ errors: errors.slice(0, 20), latencies_ms: latencies, reconnects }));
process.exit(errors.length ? 1 : 0);
