/**
 * @missive/sdk — Missive client for browsers (and Node with a WebSocket).
 * Generated protobuf types are re-exported from `./gen/*`.
 */
export * from "./codec.ts";
export * from "./transport.ts";
export * from "./connection.ts";
export * from "./client.ts";
export * from "./gen/frame_pb.ts";
export * from "./gen/message_pb.ts";
export * from "./gen/conversation_pb.ts";
export * from "./gen/platform_pb.ts";
export { Presence, PresenceSchema, Kicked, KickedSchema } from "./gen/user_pb.ts";
export * from "./lifecycle.ts";
export * from "./gen/lifecycle_pb.ts";
