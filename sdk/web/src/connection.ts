/**
 * One protocol session over one transport: handshake (Hello -> HelloOk),
 * requests matched to responses by id, protocol keep-alive, pushes.
 *
 * Invariants: every request settles exactly once (response, timeout, or the
 * connection ending); after the connection ended `onClose` has fired exactly
 * once and new requests fail at once; unknown frame kinds, push events and
 * result cases are ignored ([V-3], [V-4], [V-6]).
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { decodeFrame, encodeFrame } from "./codec.ts";
import { Platform } from "./gen/platform_pb.ts";
import { type HelloOk, type Push, RequestSchema, type Response } from "./gen/frame_pb.ts";
import type { Transport, TransportFactory } from "./transport.ts";

export type RequestOp = MessageInitShape<typeof RequestSchema>["op"];
export type ResponseResult = Response["result"];

/** A protocol error (a failed response or a Close), or a local one (code 0). */
export class MissiveError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly retryable: boolean,
    /** `Error.retry_after_ms` (RATE_LIMITED): resend no sooner than this; 0 = unset. */
    readonly retryAfterMs: number = 0,
  ) {
    super(message);
    this.name = "MissiveError";
  }
}

/** Every error code of spec section 10, by name (a `MissiveError.code`). */
export const ErrorCodes = {
  /** Local: the connection was lost (or a Close without a code). */
  CONNECTION_LOST: 0,
  MALFORMED_FRAME: 1000,
  FRAME_TOO_LARGE: 1001,
  UNSUPPORTED_VERSION: 1002,
  HANDSHAKE_REQUIRED: 1003,
  HANDSHAKE_TIMEOUT: 1004,
  UNEXPECTED_FRAME: 1005,
  UNKNOWN_REQUEST: 1006,
  IDLE_TIMEOUT: 1007,
  SLOW_CONSUMER: 1008,
  SERVER_SHUTDOWN: 1009,
  TOO_MANY_CONNECTIONS: 1010,
  TOO_MANY_IN_FLIGHT: 1011,
  FLOODING: 1012,
  TOKEN_INVALID: 2000,
  TOKEN_EXPIRED: 2001,
  TOKEN_DEVICE_MISMATCH: 2002,
  PERMISSION_DENIED: 2003,
  ACCOUNT_DISABLED: 2004,
  KICKED: 2005,
  ACCOUNT_NOT_FOUND: 2006,
  TOKEN_REVOKED: 2007,
  USER_MUTED: 2008,
  INVALID_ARGUMENT: 3000,
  INVALID_CONV_ID: 3001,
  NOT_PARTICIPANT: 3002,
  CONTENT_TOO_LARGE: 3003,
  UNSUPPORTED_CONTENT: 3004,
  INVALID_SYNC_TOKEN: 3005,
  UNSUPPORTED_CONVERSATION: 3006,
  CONTENT_TOO_DEEP: 3007,
  CONTENT_BLOCKED: 3008,
  REJECTED_BY_APP: 3009,
  CONTENT_KIND_NOT_ALLOWED: 3010,
  USER_NOT_FOUND: 4000,
  ACCOUNT_EXISTS: 4001,
  ALREADY_FRIENDS: 4002,
  NOT_FRIENDS: 4003,
  FRIEND_LIMIT: 4004,
  PEER_FRIEND_LIMIT: 4005,
  NO_PENDING_REQUEST: 4006,
  FRIEND_REQUESTS_DENIED: 4007,
  BLOCKED_BY_USER: 4008,
  IN_YOUR_BLACKLIST: 4009,
  BLACKLIST_LIMIT: 4010,
  SUBSCRIPTION_LIMIT: 4011,
  SELF_TARGET: 4012,
  GROUP_NOT_FOUND: 4100,
  GROUP_EXISTS: 4101,
  NOT_GROUP_MEMBER: 4102,
  ALREADY_GROUP_MEMBER: 4103,
  GROUP_PERMISSION_DENIED: 4104,
  GROUP_FULL: 4105,
  JOINED_GROUP_LIMIT: 4106,
  JOIN_DENIED: 4107,
  NO_PENDING_APPLICATION: 4108,
  OWNER_CANNOT_QUIT: 4109,
  MEMBER_MUTED: 4110,
  GROUP_MUTED: 4111,
  RECEIPT_GROUP_TOO_LARGE: 4112,
  MESSAGE_NOT_FOUND: 4200,
  TIME_LIMIT_EXCEEDED: 4201,
  MESSAGE_RECALLED: 4202,
  EDIT_NOT_ALLOWED: 4203,
  REACTION_LIMIT: 4204,
  EXTENSION_LIMIT: 4205,
  EXTENSION_CONFLICT: 4206,
  NOT_MESSAGE_SENDER: 4207,
  TRANSLATION_DISABLED: 4208,
  INTERNAL: 5000,
  STORAGE: 5001,
  OVERLOADED: 5002,
  RATE_LIMITED: 5003,
  WEBHOOK_FAILED: 5004,
  TRANSLATION_FAILED: 5005,
} as const;

export interface SessionOptions {
  token: string;
  deviceId: string;
  platform?: Platform;
  clientVersion?: string;
  requestTimeoutMs?: number;
  handshakeTimeoutMs?: number;
}

interface Pending {
  resolve: (r: ResponseResult) => void;
  reject: (e: MissiveError) => void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Opens a transport, giving up after `ms`: under heavy loss a TCP connect can wait minutes
 * in SYN backoff, and a fresh attempt gets through sooner. A transport that opens after
 * the deadline is closed at once.
 */
async function openWithin(factory: TransportFactory, ms: number): Promise<Transport> {
  return new Promise<Transport>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      reject(new MissiveError(0, "connect timed out", true));
    }, ms);
    factory().then(
      (t) => {
        if (settled) return t.close();
        settled = true;
        clearTimeout(timer);
        resolve(t);
      },
      (e) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

export class Connection {
  onPush: (p: Push) => void = () => {};
  /** Fires once when the session ends: the server's Close code, or 0 if lost. */
  onClose: (code: number, message: string) => void = () => {};
  private nextId = 1;
  private pending = new Map<bigint, Pending>();
  private ended = false;
  private keepalive?: ReturnType<typeof setInterval>;
  private lastFrame = Date.now();

  private constructor(
    private readonly t: Transport,
    readonly hello: HelloOk,
    private readonly timeoutMs: number,
  ) {}

  /** The transport carrying this session ("websocket" or "webtransport"). */
  get transport(): string {
    return this.t.kind;
  }

  /** Opens a transport and performs the handshake. Rejects with the server's Close code. */
  static async open(factory: TransportFactory, o: SessionOptions): Promise<Connection> {
    const t = await openWithin(factory, o.handshakeTimeoutMs ?? 10_000);
    // Frames that arrive after HelloOk but before the session is attached.
    const early: Uint8Array[] = [];
    let done = false;
    const hello = await new Promise<HelloOk>((resolve, reject) => {
      const timer = setTimeout(() => {
        t.close();
        reject(new MissiveError(0, "handshake timed out", true));
      }, o.handshakeTimeoutMs ?? 10_000);
      t.onMessage = (bytes) => {
        if (done) {
          early.push(bytes);
          return;
        }
        done = true;
        clearTimeout(timer);
        try {
          const f = decodeFrame(bytes);
          if (f.body.case === "helloOk") resolve(f.body.value);
          else if (f.body.case === "close")
            reject(new MissiveError(f.body.value.code, f.body.value.message, isRetryableClose(f.body.value.code)));
          else reject(new MissiveError(0, `unexpected ${f.body.case} before HelloOk`, true));
        } catch (e) {
          reject(new MissiveError(0, `bad frame: ${e}`, true));
        }
      };
      t.onClose = (reason) => {
        clearTimeout(timer);
        if (!done) reject(new MissiveError(0, reason, true));
        done = true;
        early.push(new Uint8Array()); // marks "closed" for attach()
      };
      t.send(
        encodeFrame({
          body: {
            case: "hello",
            value: {
              minVersion: 1,
              maxVersion: 1,
              token: o.token,
              deviceId: o.deviceId,
              platform: o.platform ?? Platform.WEB,
              clientVersion: o.clientVersion ?? "missive-sdk-web/0.1.0",
            },
          },
        }),
      );
    });
    const c = new Connection(t, hello, o.requestTimeoutMs ?? 10_000);
    c.attach(early);
    return c;
  }

  private attach(early: Uint8Array[]) {
    // What arrived before the caller could set its handlers is replayed on
    // the next task, in order; later frames queue behind it meanwhile.
    let replaying = early.length > 0;
    this.t.onMessage = (bytes) => (replaying ? early.push(bytes) : this.onFrame(bytes));
    this.t.onClose = (reason) => (replaying ? early.push(new Uint8Array()) : this.end(0, reason));
    if (replaying)
      setTimeout(() => {
        for (const b of early) {
          if (b.length === 0) this.end(0, "transport closed");
          else this.onFrame(b);
        }
        replaying = false;
      }, 0);
    const pingMs = Math.max(1, this.hello.pingIntervalSecs || 30) * 1000;
    const idleMs = Math.max(2, this.hello.idleTimeoutSecs || 90) * 1000;
    this.keepalive = setInterval(() => {
      if (Date.now() - this.lastFrame > idleMs) {
        this.t.close();
        this.end(0, "no frame from the server within the idle timeout");
        return;
      }
      this.t.send(encodeFrame({ body: { case: "ping", value: { nonce: BigInt(Date.now()) } } }));
    }, pingMs);
    (this.keepalive as { unref?: () => void }).unref?.();
  }

  private onFrame(bytes: Uint8Array) {
    this.lastFrame = Date.now();
    let f;
    try {
      f = decodeFrame(bytes);
    } catch (e) {
      this.t.close();
      this.end(0, `undecodable frame from server: ${e}`);
      return;
    }
    switch (f.body.case) {
      case "response": {
        const r = f.body.value;
        const p = this.pending.get(r.id);
        if (!p) return;
        this.pending.delete(r.id);
        clearTimeout(p.timer);
        if (r.error)
          p.reject(new MissiveError(r.error.code, r.error.message, r.error.retryable, Number(r.error.retryAfterMs)));
        else p.resolve(r.result);
        return;
      }
      case "push":
        this.onPush(f.body.value);
        return;
      case "close":
        this.t.close();
        this.end(f.body.value.code, f.body.value.message);
        return;
      default:
        return; // pong, unknown kinds: ignored
    }
  }

  private end(code: number, message: string) {
    if (this.ended) return;
    this.ended = true;
    if (this.keepalive) clearInterval(this.keepalive);
    const err = new MissiveError(0, `connection ended: ${message}`, true);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.onClose(code, message);
  }

  get isOpen(): boolean {
    return !this.ended;
  }

  /** Sends a request; resolves with its result or rejects with a MissiveError. */
  request(op: RequestOp): Promise<ResponseResult> {
    if (this.ended) return Promise.reject(new MissiveError(0, "connection ended", true));
    const id = BigInt(this.nextId++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new MissiveError(0, REQUEST_TIMED_OUT, true));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.t.send(encodeFrame({ body: { case: "request", value: create(RequestSchema, { id, op }) } }));
    });
  }

  /**
   * Sends `PushAck` (8.11): "I hold every message of each conversation up to its seq".
   * No reply; a no-op once the connection ended. Feeds delivery receipts (18.7).
   */
  pushAck(delivered: { convId: string; seq: bigint }[]) {
    if (this.ended || delivered.length === 0) return;
    this.t.send(encodeFrame({ body: { case: "pushAck", value: { delivered } } }));
  }

  close() {
    this.t.close();
    this.end(0, "closed by the client");
  }
}

/** The message of the error a request fails with when no response came in time. */
export const REQUEST_TIMED_OUT = "request timed out";

/** Close codes after which reconnecting (with the same token) makes sense. */
export function isRetryableClose(code: number): boolean {
  // Known 1xxx codes that say the client itself is at fault (spec section 10: not
  // retryable): reconnecting would only repeat them.
  if (NON_RETRYABLE_1XXX.has(code)) return false;
  return code === 0 || (code >= 1000 && code < 2000) || code >= 5000;
}

/** MALFORMED_FRAME, FRAME_TOO_LARGE, UNSUPPORTED_VERSION, HANDSHAKE_REQUIRED, UNEXPECTED_FRAME, UNKNOWN_REQUEST, FLOODING. */
const NON_RETRYABLE_1XXX = new Set([1000, 1001, 1002, 1003, 1005, 1006, 1012]);
