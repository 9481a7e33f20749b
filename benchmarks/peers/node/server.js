#!/usr/bin/env node
// Peer: express + express-session + socket.io, the official recipe
// (https://socket.io/how-to/use-with-express-session): io.engine.use(sessionMiddleware),
// then per event socket.request.session.reload() before and .save() after a change.
//
//   node server.js --port P [--store memory | --store redis --url redis://127.0.0.1:6379/0]
//
// HTTP: POST /login?user=NAME, POST /incr, GET /n.  Events: echo (no session: no reload), whoami, incr (acked).
"use strict";

const http = require("http");
const express = require("express");
const session = require("express-session");
const { Server } = require("socket.io");

function option(name, fallback) {
  const i = process.argv.indexOf("--" + name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

async function main() {
  const port = parseInt(option("port", "0"), 10);
  const kind = option("store", "memory");
  let store;
  if (kind === "redis") {
    const { createClient } = require("redis");
    const { RedisStore } = require("connect-redis");
    const client = createClient({ url: option("url", "redis://127.0.0.1:6379/0") });
    await client.connect();
    store = new RedisStore({ client });
  }
  const sessionMiddleware = session({
    secret: "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
    resave: false,
    saveUninitialized: false,
    store, // undefined: express-session's MemoryStore
  });

  const app = express();
  app.use(sessionMiddleware);
  app.post("/login", (req, res) => {
    const user = String(req.query.user || "");
    req.session.regenerate((err) => {
      if (err) return res.status(500).send("error\n");
      req.session.user = user;
      req.session.n = 0;
      res.send(`hello ${user}\n`);
    });
  });
  app.post("/incr", (req, res) => {
    if (!req.session.user) return res.status(401).send("not logged in\n");
    req.session.n += 1;
    res.send(`${req.session.n}\n`);
  });
  app.get("/n", (req, res) => {
    if (!req.session.user) return res.status(401).send("not logged in\n");
    res.send(`${req.session.n}\n`);
  });

  const server = http.createServer(app);
  const io = new Server(server);
  io.engine.use(sessionMiddleware);
  io.on("connection", (socket) => {
    const req = socket.request;
    socket.use(([event], next) => {
      if (event === "echo") return next();
      req.session.reload((err) => (err ? socket.disconnect() : next()));
    });
    socket.on("echo", (payload, ack) => ack(payload));
    socket.on("whoami", (ack) => ack(req.session.user));
    socket.on("incr", (ack) => {
      req.session.n = (req.session.n || 0) + 1;
      const n = req.session.n;
      req.session.save(() => ack(n));
    });
  });
  server.listen(port, "127.0.0.1", () => {
    process.stderr.write(`serving on http://127.0.0.1:${server.address().port}/ (${kind} store)\n`);
  });
  const stop = () => {
    io.close();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack) + "\n");
  process.exit(1);
});
