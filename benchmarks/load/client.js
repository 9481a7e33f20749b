#!/usr/bin/env node
// The benchmarks' load client: the official socket.io client plus node's http, driven by run.py.
//
//   node benchmarks/load/client.js http://127.0.0.1:PORT
//
// It reads one JSON command a line on stdin and answers each with one JSON line on
// stdout ({"ok": true, ...} or {"ok": false, "error": ...}). Commands run one at a time:
//
//   {"cmd": "login", "sessions": N, "prefix": "u", "concurrency": 20}
//       POST /login?user=<prefix><i> N times; keeps each session's cookies.
//   {"cmd": "connect", "per_session": K, "concurrency": 100}
//       K websocket-only sockets per session (Cookie + same Origin in the handshake).
//   {"cmd": "events", "event": "incr", "per_socket": M, "payload": P, "sockets": K}
//       every socket (or the first K) sends M acknowledged events one after the other, all at once.
//   {"cmd": "mixed", "http_loops": H, "socket_loops": S, "per_loop": M}
//       per session H HTTP loops of POST /incr (keep-alive) and S socket loops of `incr`,
//       all at once; then GET /n per session: acked increments vs the counter's growth.
//   {"cmd": "close"}   disconnect everything and exit (as does closing stdin).
//
// Each answer carries "elapsed_s" (the command's wall time) and "client_cpu_s" (this
// process's CPU over it), so run.py can show the client is not the bottleneck.
// Latencies are per acknowledged event or HTTP response, in microseconds.
// Every command has a deadline ("timeout_s", default 300): it never waits forever.
"use strict";

const http = require("http");
const path = require("path");
const readline = require("readline");

function loadClient() {
  try {
    return require("socket.io-client");
  } catch (err) {
    try {
      return require(path.join(__dirname, "..", "..", "node_modules", "socket.io-client"));
    } catch (err2) {
      process.stderr.write("socket.io-client is not installed: run `npm install` at the repository root\n");
      process.exit(2);
    }
  }
}
const { io } = loadClient();

const base = (process.argv[2] || "").replace(/\/$/, "");
if (!base) {
  process.stderr.write("usage: client.js http://127.0.0.1:PORT\n");
  process.exit(2);
}
const target = new URL(base);

const sessions = []; // {user, cookie}
const sockets = []; // sockets[i] = the sockets of session i
let disconnects = 0;

const now = () => process.hrtime.bigint();
const micros = (t0) => Number(now() - t0) / 1000;

function percentiles(values, count) {
  const sorted = Float64Array.from(values.subarray(0, count)).sort();
  const at = (q) => (count ? sorted[Math.min(count - 1, Math.floor(q * count))] : null);
  let sum = 0;
  for (let i = 0; i < count; i++) sum += sorted[i];
  return {
    count,
    p50_us: at(0.5),
    p90_us: at(0.9),
    p99_us: at(0.99),
    max_us: count ? sorted[count - 1] : null,
    mean_us: count ? sum / count : null,
  };
}

function get(agent, pathname, cookie, method = "GET") {
  return new Promise((resolve) => {
    const request = http.request(
      { host: target.hostname, port: target.port, path: pathname, agent, method, headers: cookie ? { Cookie: cookie } : {} },
      (response) => {
        const chunks = [];
        response.on("data", (chunk) => chunks.push(chunk));
        response.on("end", () =>
          resolve({ status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks).toString() })
        );
        response.on("error", (err) => resolve({ status: 0, error: err.message }));
      }
    );
    request.on("error", (err) => resolve({ status: 0, error: err.message }));
    request.end();
  });
}

async function pool(count, limit, fn) {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

async function login(cmd) {
  const count = cmd.sessions;
  const agent = new http.Agent({ keepAlive: true, maxSockets: cmd.concurrency || 20 });
  let failed = 0;
  const start = sessions.length;
  await pool(count, cmd.concurrency || 20, async (i) => {
    const user = `${cmd.prefix || "u"}${start + i}`;
    const response = await get(agent, `/login?user=${encodeURIComponent(user)}`, undefined, "POST");
    const setCookie = response.headers ? response.headers["set-cookie"] || [] : [];
    if (response.status !== 200 || !setCookie.length) {
      failed++;
      return;
    }
    sessions[start + i] = { user, cookie: setCookie.map((c) => c.split(";")[0]).join("; ") };
  });
  agent.destroy();
  for (let i = sessions.length - 1; i >= 0; i--) if (!sessions[i]) sessions.splice(i, 1);
  return { sessions: sessions.length, failed };
}

function openSocket(session) {
  return new Promise((resolve) => {
    const socket = io(base, {
      transports: ["websocket"],
      extraHeaders: { Cookie: session.cookie, Origin: base },
      reconnection: false,
      forceNew: true,
      timeout: 30000,
    });
    socket.once("connect", () => resolve({ socket }));
    socket.once("connect_error", (err) => {
      socket.close();
      resolve({ error: err.message });
    });
    socket.on("disconnect", (reason) => {
      if (reason !== "io client disconnect") disconnects++;
    });
  });
}

async function connect(cmd) {
  const perSession = cmd.per_session || 1;
  const jobs = [];
  sessions.forEach((session, i) => {
    sockets[i] = sockets[i] || [];
    for (let k = 0; k < perSession; k++) jobs.push(i);
  });
  const errors = {};
  let connected = 0;
  const latencies = new Float64Array(jobs.length);
  let n = 0;
  await pool(jobs.length, cmd.concurrency || 100, async (j) => {
    const i = jobs[j];
    const t0 = now();
    const result = await openSocket(sessions[i]);
    if (result.socket) {
      latencies[n++] = micros(t0);
      sockets[i].push(result.socket);
      connected++;
    } else {
      errors[result.error] = (errors[result.error] || 0) + 1;
    }
  });
  return { connected, errors, latency: percentiles(latencies, n) };
}

// One socket's loop: `count` acknowledged emits, one after the other.
function socketLoop(socket, event, args, count, check, record, onDone) {
  let left = count;
  let t0 = 0n;
  const ack = (value) => {
    record(micros(t0), check(value));
    next();
  };
  const next = () => {
    if (left-- <= 0) return onDone();
    if (!socket.connected) return onDone();
    t0 = now();
    socket.emit(event, ...args, ack);
  };
  next();
}

function allSockets() {
  return sockets.flat();
}

async function events(cmd) {
  const list = cmd.sockets ? allSockets().slice(0, cmd.sockets) : allSockets();
  const perSocket = cmd.per_socket;
  const latencies = new Float64Array(list.length * perSocket);
  let n = 0;
  let bad = 0;
  const args = cmd.event === "echo" ? [cmd.payload === undefined ? "ping" : cmd.payload] : [];
  const expected = args[0];
  const check =
    cmd.event === "echo"
      ? (v) => v === expected
      : cmd.event === "incr"
        ? (v) => typeof v === "number"
        : (v) => typeof v === "string";
  await new Promise((resolve) => {
    let running = list.length;
    if (!running) resolve();
    for (const socket of list) {
      socketLoop(
        socket, cmd.event, args, perSocket, check,
        (us, ok) => {
          latencies[n++] = us;
          if (!ok) bad++;
        },
        () => {
          if (--running === 0) resolve();
        }
      );
    }
  });
  return { sockets: list.length, acked: n, bad_acks: bad, expected: list.length * perSocket, latency: percentiles(latencies, n) };
}

async function counters(agent) {
  const values = [];
  await pool(sessions.length, 20, async (i) => {
    const response = await get(agent, "/n", sessions[i].cookie);
    values[i] = response.status === 200 ? parseInt(response.body, 10) : null;
  });
  return values;
}

async function mixed(cmd) {
  const perLoop = cmd.per_loop;
  const httpLoops = cmd.http_loops;
  const socketLoops = cmd.socket_loops;
  const reader = new http.Agent({ keepAlive: true, maxSockets: 20 });
  const before = await counters(reader);
  const acked = new Array(sessions.length).fill(0);
  const httpLatency = new Float64Array(sessions.length * httpLoops * perLoop);
  const socketLatency = new Float64Array(sessions.length * socketLoops * perLoop);
  let nh = 0;
  let ns = 0;
  const httpErrors = {};
  let badAcks = 0;
  const agents = [];
  const t0 = now();
  const loops = [];
  sessions.forEach((session, i) => {
    for (let h = 0; h < httpLoops; h++) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      agents.push(agent);
      loops.push(
        (async () => {
          for (let k = 0; k < perLoop; k++) {
            const start = now();
            const response = await get(agent, "/incr", session.cookie, "POST");
            if (response.status === 200) {
              httpLatency[nh++] = micros(start);
              acked[i]++;
            } else {
              const key = String(response.status || response.error);
              httpErrors[key] = (httpErrors[key] || 0) + 1;
            }
          }
        })()
      );
    }
    const own = (sockets[i] || []).slice(0, socketLoops);
    for (const socket of own) {
      loops.push(
        new Promise((resolve) =>
          socketLoop(
            socket, "incr", [], perLoop, (v) => typeof v === "number",
            (us, ok) => {
              socketLatency[ns++] = us;
              if (ok) acked[i]++;
              else badAcks++;
            },
            resolve
          )
        )
      );
    }
  });
  await Promise.all(loops);
  const elapsed = Number(now() - t0) / 1e9;
  const after = await counters(reader);
  let lost = 0;
  let extra = 0;
  let unreadable = 0;
  let totalAcked = 0;
  let grown = 0;
  sessions.forEach((_, i) => {
    totalAcked += acked[i];
    if (before[i] == null || after[i] == null) {
      unreadable++;
      return;
    }
    const growth = after[i] - before[i];
    grown += growth;
    if (growth < acked[i]) lost += acked[i] - growth;
    if (growth > acked[i]) extra += growth - acked[i];
  });
  for (const agent of agents) agent.destroy();
  reader.destroy();
  return {
    sessions: sessions.length,
    ops: nh + ns,
    ops_elapsed_s: elapsed,
    acked: totalAcked,
    counted: grown,
    lost,
    extra,
    unreadable,
    http_errors: httpErrors,
    bad_acks: badAcks,
    http: percentiles(httpLatency, nh),
    socket: percentiles(socketLatency, ns),
  };
}

function close() {
  for (const socket of allSockets()) socket.close();
  setTimeout(() => process.exit(0), 50);
  return { closed: true };
}

const COMMANDS = { login, connect, events, mixed, close };

async function handle(line) {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    return { ok: false, error: "bad command: " + err.message };
  }
  const fn = COMMANDS[cmd.cmd];
  if (!fn) return { ok: false, error: "unknown command " + cmd.cmd };
  const timeoutMs = (cmd.timeout_s || 300) * 1000;
  const cpu0 = process.cpuUsage();
  const t0 = now();
  const disconnects0 = disconnects;
  let timer;
  const deadline = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ timed_out: true }), timeoutMs);
  });
  try {
    const result = await Promise.race([fn(cmd), deadline]);
    const cpu = process.cpuUsage(cpu0);
    return {
      ok: !result.timed_out,
      ...result,
      error: result.timed_out ? `timed out after ${timeoutMs / 1000}s` : undefined,
      elapsed_s: Number(now() - t0) / 1e9,
      client_cpu_s: (cpu.user + cpu.system) / 1e6,
      disconnects: disconnects - disconnects0,
      client_rss_mb: process.memoryUsage().rss / 1048576,
    };
  } catch (err) {
    return { ok: false, error: String((err && err.stack) || err) };
  } finally {
    clearTimeout(timer);
  }
}

const lines = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on("line", (line) => {
  if (!line.trim()) return;
  queue = queue.then(async () => {
    const answer = await handle(line);
    process.stdout.write(JSON.stringify(answer) + "\n");
  });
});
lines.on("close", () => queue.then(() => process.exit(0)));
