//! Connections and transports: framing and the handshake over TCP, the
//! WebSocket/HTTP listener, raw QUIC, WebTransport, and WebSocket vs TCP
//! throughput.

mod handshake;
mod quic;
mod websocket;
mod webtransport;
mod ws_throughput;
