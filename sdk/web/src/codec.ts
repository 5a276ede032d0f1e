/**
 * Frame codec: protobuf `Frame` <-> bytes.
 *
 * Over WebSocket one binary message is one frame payload, no length prefix
 * (spec/PROTOCOL.md [W-2]); over WebTransport and raw QUIC frames carry the
 * 4-byte big-endian length prefix of TCP ([F-1]), decoded by `FrameReader`.
 * Invariant: nothing here trusts its input; a bad length throws before any
 * buffer grows beyond `maxFrameSize`.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FrameSchema, type Frame } from "./gen/frame_pb.ts";

export type FrameInit = Parameters<typeof create<typeof FrameSchema>>[1];

/** Default and client-side lenient maximum payload (the server announces its own). */
export const DEFAULT_MAX_FRAME_SIZE = 1024 * 1024;

export function encodeFrame(init: FrameInit): Uint8Array {
  return toBinary(FrameSchema, create(FrameSchema, init));
}

export function decodeFrame(bytes: Uint8Array): Frame {
  if (bytes.length === 0) throw new Error("empty frame");
  return fromBinary(FrameSchema, bytes);
}

/** Prefixes a payload with its 4-byte big-endian length (stream transports). */
export function lengthPrefixed(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, 4);
  return out;
}

/** Splits a byte stream into length-prefixed payloads. */
export class FrameReader {
  private buf = new Uint8Array(0);
  constructor(private readonly maxFrameSize: number) {}

  /** Adds bytes; returns every complete payload now available. */
  push(chunk: Uint8Array): Uint8Array[] {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf);
    joined.set(chunk, this.buf.length);
    this.buf = joined;
    const out: Uint8Array[] = [];
    for (;;) {
      if (this.buf.length < 4) break;
      const n = new DataView(this.buf.buffer, this.buf.byteOffset, 4).getUint32(0);
      if (n === 0 || n > this.maxFrameSize) throw new Error(`bad frame length ${n}`);
      if (this.buf.length < 4 + n) break;
      out.push(this.buf.slice(4, 4 + n));
      this.buf = this.buf.slice(4 + n);
    }
    return out;
  }
}
