//! Connections of the web listener, inside the worker's event loop: first an
//! HTTP request head ([`super::http`]), then either one HTTP response and
//! close, or WebSocket framing ([`super::ws`]) carrying protocol frames.
//!
//! Invariants:
//! - a WebSocket connection is a protocol session exactly like a TCP one: the
//!   same handshake deadline (which also covers the HTTP upgrade), idle
//!   timeout, in-flight limit, write-queue bound and SLOW_CONSUMER rule; only
//!   the framing differs (one binary message = one frame payload);
//! - every buffer in the write queue is whole WebSocket frames, so the
//!   slow-consumer truncation in `enqueue_raw` keeps the stream well-formed;
//! - every close the server initiates on a session sends the protocol `Close`
//!   (as a binary message) and then a WebSocket Close frame;
//! - the `/echo` endpoint (conformance tests) never reaches the protocol.

use bytes::Bytes;
use missive_protocol::ErrorCode;

use super::conn::Phase;
use super::http::{self, Route};
use super::ws::{self, WsDecoder, WsError, WsEvent};
use super::{FRAME_BUDGET, Worker};
use crate::frames;

#[derive(Debug)]
enum State {
    /// Reading the HTTP request head.
    Http,
    /// Upgraded: WebSocket frames.
    Ws { decoder: WsDecoder, echo: bool },
}

/// Per-connection state of a web-listener connection.
#[derive(Debug)]
pub(super) struct WebConn {
    state: State,
}

/// What one decoding step produced (computed while `conn` is borrowed).
enum Step {
    /// Write these bytes (the 101 response).
    Write(Bytes),
    /// Write these bytes, then close.
    Finish(Bytes),
    Event {
        ev: WsEvent,
        echo: bool,
    },
    Violation {
        err: WsError,
        echo: bool,
    },
}

impl WebConn {
    pub(super) fn new() -> Self {
        Self { state: State::Http }
    }

    /// The largest protocol frame accepted from now on (see `Conn::frame_limit`).
    pub(super) fn set_frame_limit(&mut self, max: usize) {
        if let State::Ws { decoder, .. } = &mut self.state {
            decoder.set_max_message(max);
        }
    }

    /// Upgraded to WebSocket (protocol frames must be wrapped).
    pub(super) fn is_ws(&self) -> bool {
        matches!(self.state, State::Ws { .. })
    }

    /// Wire bytes that close this connection with a protocol error code.
    pub(super) fn close_bytes(&self, code: ErrorCode, message: &str) -> Bytes {
        match self.state {
            State::Http => http::error_response(if code == ErrorCode::HandshakeTimeout { 408 } else { 503 }),
            State::Ws { .. } => {
                let close = ws::wrap(&frames::close(code, message));
                let wsc = if code == ErrorCode::ServerShutdown { 1001 } else { ws::CLOSE_POLICY };
                let tail = ws::close_frame(wsc, code.name());
                let mut b = Vec::with_capacity(close.len() + tail.len());
                b.extend_from_slice(&close);
                b.extend_from_slice(&tail);
                Bytes::from(b)
            }
        }
    }
}

impl Worker {
    /// Decodes what a web connection sent (bounded per turn, like TCP).
    pub(super) fn decode_web(&mut self, id: u64) {
        let Some(ctx) = self.mesh.web.clone() else { return };
        let node = std::sync::Arc::clone(&self.node);
        let limits = &node.config.limits;
        for _ in 0..FRAME_BUDGET {
            let step = {
                let Some(c) = self.conns.get_mut(&id) else { return };
                if c.close_deadline.is_some() || matches!(c.phase, Phase::LoggingIn { .. }) {
                    return;
                }
                if matches!(c.phase, Phase::Ready(_)) && !c.has_reply_room(limits) {
                    // Resumed by `resume_input` once answers drained.
                    c.paused = true;
                    return;
                }
                let max = c.frame_limit(limits);
                let Some(w) = c.web.as_mut() else { return };
                match &mut w.state {
                    State::Http => match ctx.route(&mut c.rbuf, crate::node::clock::now_ms()) {
                        Route::Incomplete => return,
                        Route::Respond(b) => Step::Finish(b),
                        Route::Upgrade { response, echo } => {
                            w.state = State::Ws { decoder: WsDecoder::new(max), echo };
                            Step::Write(response)
                        }
                    },
                    State::Ws { decoder, echo } => match decoder.next(&mut c.rbuf) {
                        Ok(None) => return,
                        Ok(Some(ev)) => Step::Event { ev, echo: *echo },
                        Err(err) => Step::Violation { err, echo: *echo },
                    },
                }
            };
            match step {
                Step::Write(b) => self.enqueue_raw(id, b),
                Step::Finish(b) => self.close_with(id, b),
                Step::Event { ev, echo } => self.on_ws_event(id, ev, echo),
                Step::Violation { err, echo } => {
                    let mut out = Vec::new();
                    if !echo && err.code == ws::CLOSE_TOO_BIG {
                        out.extend_from_slice(&ws::wrap(&frames::close(
                            ErrorCode::FrameTooLarge,
                            err.reason,
                        )));
                    }
                    out.extend_from_slice(&ws::close_frame(err.code, err.reason));
                    self.close_with(id, Bytes::from(out));
                }
            }
        }
        self.mark_ready(id);
    }

    fn on_ws_event(&mut self, id: u64, ev: WsEvent, echo: bool) {
        match ev {
            WsEvent::Message { text, payload } if echo => {
                let op = if text { ws::OP_TEXT } else { ws::OP_BINARY };
                self.enqueue_raw(id, ws::encode(op, &payload));
            }
            WsEvent::Message { text: true, .. } => {
                let close = ws::wrap(&frames::close(ErrorCode::MalformedFrame, "frames are binary messages"));
                let mut b = close.to_vec();
                b.extend_from_slice(&ws::close_frame(
                    ws::CLOSE_UNSUPPORTED,
                    "text messages are not accepted",
                ));
                self.close_with(id, Bytes::from(b));
            }
            WsEvent::Message { text: false, payload } => match self.codec.decode_payload(payload) {
                Ok(frame) => self.on_frame(id, frame),
                Err(e) => self.close(id, e.code(), &e.to_string()),
            },
            WsEvent::Ping(p) => self.enqueue_raw(id, ws::encode(ws::OP_PONG, &p)),
            WsEvent::Pong => self.count_silent(id),
            WsEvent::Close { code } => {
                // Echo the peer's code (RFC 6455 5.5.1), then close.
                let reply = match code {
                    Some(c) => ws::encode(ws::OP_CLOSE, &c.to_be_bytes()),
                    None => ws::encode(ws::OP_CLOSE, &[]),
                };
                self.close_with(id, reply);
            }
        }
    }
}
