/**
 * @missive/sdk — Missive client for browsers (and Node with a WebSocket).
 *
 * Exports the resilient `MissiveClient` (one typed method per protocol
 * request, typed events per push), the lower-level `Connection`, transports,
 * the frame codec, and every generated protobuf type, schema and enum of
 * spec/proto (`./gen/*`), so a page needs no other import.
 * Invariant: generated names do not collide across the schema files.
 */
export * from "./codec.ts";
export * from "./transport.ts";
export * from "./connection.ts";
export * from "./requests.ts";
export * from "./client.ts";
export * from "./lifecycle.ts";
export * from "./gen/frame_pb.ts";
export * from "./gen/message_pb.ts";
export * from "./gen/conversation_pb.ts";
export * from "./gen/platform_pb.ts";
export * from "./gen/user_pb.ts";
export * from "./gen/group_pb.ts";
export * from "./gen/lifecycle_pb.ts";
