#!/usr/bin/env node
// Drives the official socket.io client (node_modules/socket.io-client) for the Python tests.
//
//   node tests/js/sio_driver.js '{"url": "http://127.0.0.1:PORT", "cookie": "k=v",
//                                "origin": "http://127.0.0.1:PORT", "transports": ["websocket"],
//                                "namespace": "/", "timeout_ms": 20000, "ca": "/path/ca.pem",
//                                "reconnection": false}'
// ("ca": for an https URL, the certificate authority to trust, as a browser trusts its own;
// "reconnection": true lets the client reconnect by itself with its default delays.)
//
// It connects once (unless "reconnection") and prints one JSON object per line on stdout:
//   {"type": "open", "transport": NAME}                                   Engine.IO is open
//   {"type": "connect", "id": SID, "transport": NAME}
//   {"type": "connect_error", "message": ERR.MESSAGE, "data": ERR.DATA}   then it exits
//   {"type": "event", "event": NAME, "args": [...]}                       for server emits
//   {"type": "upgrade", "transport": NAME}                                polling -> websocket
//   {"type": "disconnect", "reason": REASON}
//   {"type": "ack", "id": N, "value": V}  or  {"type": "error", "id": N, "message": ...}
// Commands come one JSON object per line on stdin, run in order once connected:
//   {"id": N, "emit": EVENT, "args": [...]}   emit with an acknowledgement
//   {"close": true}                           disconnect and exit (as does closing stdin)
// A refused connection, a closed stdin or the overall timeout ends the process:
// it never waits forever (exit code 3 on timeout).
"use strict";

const fs = require("fs");
const path = require("path");
const readline = require("readline");
const { io } = require(path.join(__dirname, "..", "..", "node_modules", "socket.io-client"));

const options = JSON.parse(process.argv[2] || "{}");
const timeoutMs = options.timeout_ms || 20000;
const ackTimeoutMs = options.ack_timeout_ms || 10000;

const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
let exiting = false;
const exit = (code) => {
  if (exiting) return;
  exiting = true;
  clearTimeout(overall);
  // let stdout drain before leaving
  process.stdout.write("", () => process.exit(code));
};

const overall = setTimeout(() => {
  print({ type: "timeout", after_ms: timeoutMs });
  exit(3);
}, timeoutMs);

const extraHeaders = {};
if (options.cookie != null) extraHeaders.Cookie = options.cookie;
if (options.origin != null) extraHeaders.Origin = options.origin;

const url = options.url.replace(/\/$/, "") + (options.namespace && options.namespace !== "/" ? options.namespace : "");
const socket = io(url, {
  transports: options.transports || ["polling", "websocket"],
  extraHeaders,
  reconnection: Boolean(options.reconnection),
  timeout: Math.min(timeoutMs, 10000),
  forceNew: true,
  ...(options.ca ? { ca: fs.readFileSync(options.ca) } : {}),
});

socket.on("connect", () => print({ type: "connect", id: socket.id, transport: socket.io.engine.transport.name }));
socket.on("connect_error", (err) => {
  print({ type: "connect_error", message: err.message, data: err.data === undefined ? null : err.data });
  socket.close();
  exit(0);
});
socket.on("disconnect", (reason) => print({ type: "disconnect", reason }));
socket.onAny((event, ...args) => print({ type: "event", event, args }));
socket.io.on("open", () => {
  print({ type: "open", transport: socket.io.engine.transport.name });
  socket.io.engine.on("upgrade", (transport) => print({ type: "upgrade", transport: transport.name }));
});

// Commands run one after the other, once the connection is up.
const connected = new Promise((resolve) => socket.once("connect", resolve));
let queue = connected;

async function run(line) {
  let command;
  try {
    command = JSON.parse(line);
  } catch (err) {
    print({ type: "error", message: "bad command: " + err.message });
    return;
  }
  if (command.close) {
    socket.close();
    exit(0);
    return;
  }
  try {
    const reply = await socket.timeout(ackTimeoutMs).emitWithAck(command.emit, ...(command.args || []));
    print({ type: "ack", id: command.id, value: reply === undefined ? null : reply });
  } catch (err) {
    print({ type: "error", id: command.id, message: err.message });
  }
}

const input = readline.createInterface({ input: process.stdin });
input.on("line", (line) => {
  if (line.trim()) queue = queue.then(() => run(line));
});
input.on("close", () => {
  queue = queue.then(() => {
    socket.close();
    exit(0);
  });
});
