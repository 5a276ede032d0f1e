/**
 * Test helper: an in-process fake server speaking the real protobuf frames
 * over an in-memory transport. `answer(op)` returns the result of each
 * request (or throws `{code, message}` for an error answer); the handshake
 * and an empty sync are answered unless `answer` handles them. Pushes are
 * injected with `push(event)` on every open connection.
 * Invariant: frames are delivered on microtasks, in order, as a socket would.
 */
import {
  MemoryStore,
  MissiveClient,
  decodeFrame,
  encodeFrame,
  type FrameInit,
  type RequestOp,
  type Transport,
  type TransportFactory,
} from "../src/index.ts";

export type ResultInit = NonNullable<Extract<NonNullable<NonNullable<FrameInit>["body"]>, { case: "response" }>["value"]>["result"];
export type PushInit = NonNullable<Extract<NonNullable<NonNullable<FrameInit>["body"]>, { case: "push" }>["value"]>["event"];

export interface FakeServer {
  factory: TransportFactory;
  /** Every request received, in order. */
  requests: RequestOp[];
  push(event: PushInit): void;
}

export function fakeServer(user: string, answer: (op: RequestOp) => ResultInit | undefined): FakeServer {
  const open = new Set<Transport>();
  const requests: RequestOp[] = [];
  const deliver = (t: Transport, f: FrameInit) => queueMicrotask(() => open.has(t) && t.onMessage(encodeFrame(f)));
  const factory: TransportFactory = async () => {
    const t: Transport = {
      kind: "fake",
      send(payload) {
        const f = decodeFrame(payload);
        if (f.body.case === "hello") {
          deliver(t, {
            body: {
              case: "helloOk",
              value: { version: 1, userId: user, sessionId: "s", maxFrameSize: 1 << 20, pingIntervalSecs: 30, idleTimeoutSecs: 90 },
            },
          });
          return;
        }
        if (f.body.case !== "request") return;
        const { id, op } = f.body.value;
        requests.push(op as RequestOp);
        let result: ResultInit | undefined;
        try {
          result = answer(op as RequestOp);
          if (result === undefined && op.case === "sync") result = { case: "sync", value: { syncToken: "t" } };
          if (result === undefined) throw { code: 1006, message: "unknown request" };
        } catch (e) {
          const err = e as { code: number; message: string };
          deliver(t, { body: { case: "response", value: { id, error: { code: err.code, message: err.message } } } });
          return;
        }
        deliver(t, { body: { case: "response", value: { id, result } } });
      },
      close() {
        if (!open.delete(t)) return;
        queueMicrotask(() => t.onClose("client closed"));
      },
      onMessage: () => {},
      onClose: () => {},
    };
    open.add(t);
    return t;
  };
  return {
    factory,
    requests,
    push(event) {
      for (const t of open) deliver(t, { body: { case: "push", value: { event } } });
    },
  };
}

/** Polls `cond` every 5 ms until it holds, or fails after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A client of `factory` with an in-memory store and short backoff. */
export const fakeClient = (factory: FakeServer["factory"]) =>
  new MissiveClient({ transports: [factory], token: "t", deviceId: "web1", store: new MemoryStore(), backoffMs: { initial: 5, max: 20 } });

/** Starts `c` and waits until it is online and has synced once. */
export const online = async (c: MissiveClient) => {
  c.start();
  await until(() => c.state === "online", "online");
  await c.syncNow();
};
