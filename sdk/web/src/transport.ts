/**
 * Transports: a bidirectional channel of frame payloads.
 *
 * - `WebSocketTransport`: `ws(s)://host/ws`, one binary message per frame.
 * - `WebTransportTransport`: one bidirectional stream of a WebTransport
 *   session carrying length-prefixed frames (spec/PROTOCOL.md 2.3).
 * Invariant: `onClose` fires exactly once, after which `send` is a no-op.
 */
import { FrameReader, lengthPrefixed } from "./codec.ts";

export interface Transport {
  /** Which transport this is ("websocket" or "webtransport"). */
  readonly kind: string;
  send(payload: Uint8Array): void;
  close(): void;
  onMessage: (payload: Uint8Array) => void;
  onClose: (reason: string) => void;
}

/** Opens a transport; resolves once it can carry frames. */
export type TransportFactory = () => Promise<Transport>;

/** Minimal WebSocket surface (the browser's, Node 22's, or a test double). */
export interface WebSocketLike {
  binaryType: string;
  readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export function webSocketTransport(
  url: string,
  make: (url: string) => WebSocketLike = (u) => new (globalThis as any).WebSocket(u),
): TransportFactory {
  return () =>
    new Promise<Transport>((resolve, reject) => {
      let ws: WebSocketLike;
      try {
        ws = make(url);
      } catch (e) {
        reject(e);
        return;
      }
      ws.binaryType = "arraybuffer";
      let closed = false;
      let opened = false;
      const t: Transport = {
        kind: "websocket",
        send(payload) {
          if (!closed) ws.send(payload);
        },
        close() {
          if (!closed) ws.close(1000, "client closing");
        },
        onMessage: () => {},
        onClose: () => {},
      };
      const finish = (reason: string) => {
        if (closed) return;
        closed = true;
        if (opened) t.onClose(reason);
        else reject(new Error(`websocket failed: ${reason}`));
      };
      ws.onopen = () => {
        opened = true;
        resolve(t);
      };
      ws.onmessage = (ev) => {
        if (ev.data instanceof ArrayBuffer) t.onMessage(new Uint8Array(ev.data));
        else if (ev.data instanceof Uint8Array) t.onMessage(ev.data);
        else finish("text message from server");
      };
      ws.onerror = () => finish("websocket error");
      ws.onclose = (ev) => finish(`websocket closed ${ev.code ?? ""} ${ev.reason ?? ""}`.trim());
    });
}

/** Hex SHA-256 of a certificate -> WebTransport's `serverCertificateHashes`. */
function hashOption(hex: string | undefined) {
  if (!hex) return undefined;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return [{ algorithm: "sha-256", value: bytes }];
}

export function webTransportAvailable(): boolean {
  return typeof (globalThis as any).WebTransport === "function";
}

export function webTransportTransport(url: string, certHash?: string, maxFrameSize = 64 << 20): TransportFactory {
  return async () => {
    const WT = (globalThis as any).WebTransport;
    if (typeof WT !== "function") throw new Error("WebTransport not available");
    const opts: Record<string, unknown> = {};
    const hashes = hashOption(certHash);
    if (hashes) opts.serverCertificateHashes = hashes;
    const wt = new WT(url, opts);
    await wt.ready;
    const stream = await wt.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    const reader = stream.readable.getReader();
    let closed = false;
    const t: Transport = {
      kind: "webtransport",
      send(payload) {
        if (!closed) writer.write(lengthPrefixed(payload)).catch(() => finish("write failed"));
      },
      close() {
        if (!closed) {
          try {
            wt.close();
          } catch {
            /* already closing */
          }
        }
      },
      onMessage: () => {},
      onClose: () => {},
    };
    const finish = (reason: string) => {
      if (closed) return;
      closed = true;
      t.onClose(reason);
    };
    const frames = new FrameReader(maxFrameSize);
    (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const p of frames.push(value)) t.onMessage(p);
        }
        finish("webtransport stream ended");
      } catch (e) {
        finish(`webtransport: ${e}`);
      }
    })();
    wt.closed.then(
      () => finish("webtransport closed"),
      (e: unknown) => finish(`webtransport: ${e}`),
    );
    return t;
  };
}
