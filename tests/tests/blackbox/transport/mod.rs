//! Connections and transports: framing and the handshake over TCP, the
//! WebSocket/HTTP listener, raw QUIC (and its admission limits), WebTransport,
//! TLS and WSS (certificate reload, Origin allow-list, per-address cap), and
//! WebSocket vs TCP throughput.

mod handshake;
mod quic;
mod quic_limits;
mod tls;
mod websocket;
mod webtransport;
mod ws_throughput;
