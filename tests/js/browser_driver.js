#!/usr/bin/env node
// Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core, one command at a time.
//
//   node tests/js/browser_driver.js '{"chromium": "/usr/bin/chromium", "launch_timeout_ms": 60000,
//                                     "host_rules": "MAP wsgisession.test 127.0.0.1"}'
// (host_rules, optional: Chromium's --host-resolver-rules, so that a plain-http host that is not
// loopback by name, and so not a trustworthy origin, still reaches a server on 127.0.0.1)
// (ignore_https_errors, optional: contexts accept a test's self-signed certificate; the page is still
// an https origin, a secure context with Secure cookies)
//
// Reads one JSON command per line on stdin and answers one JSON line on stdout:
//   {"id": N, "op": "context", "name": C}                   a new browser context (its own cookie jar)
//   {"id": N, "op": "page", "context": C, "name": P}         a new tab in it
//   {"id": N, "op": "goto", "page": P, "url": URL}           -> the response's status
//   {"id": N, "op": "eval", "page": P, "fn": SRC, "arg": A}  runs the function SRC(A) in the page -> its result
//   {"id": N, "op": "cookies", "context": C, "url": URL}     -> the context's cookies for URL
//   {"id": N, "op": "add_cookies", "context": C, "cookies": [...]}
//   {"id": N, "op": "clear_cookies", "context": C}
//   {"id": N, "op": "screenshot", "page": P, "path": FILE}
//   {"id": N, "op": "errors"}                                -> page errors and console errors so far
//   {"id": N, "op": "close", "context": C}
// Answers are {"id": N, "ok": true, "value": V} or {"id": N, "ok": false, "error": MESSAGE}.
// The browser closes when stdin closes. Never downloads a browser.
"use strict";

const path = require("path");
const readline = require("readline");
const { chromium } = require(path.join(__dirname, "..", "..", "node_modules", "playwright-core"));

const options = JSON.parse(process.argv[2] || "{}");
const BROWSER_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

const contexts = new Map();
const pages = new Map();
const errors = { page_errors: [], console_errors: [] };
let browser = null;

function need(map, key, what) {
  const value = map.get(key);
  if (!value) throw new Error(`no ${what} named ${key}`);
  return value;
}

const ops = {
  async context({ name }) {
    const context = await browser.newContext({
      viewport: { width: 1040, height: 600 },
      ignoreHTTPSErrors: Boolean(options.ignore_https_errors),
    });
    context.setDefaultTimeout(options.step_timeout_ms || 15000);
    contexts.set(name, context);
    return name;
  },
  async page({ context, name }) {
    const page = await need(contexts, context, "context").newPage();
    page.on("console", (message) => {
      if (message.type() === "error") errors.console_errors.push(`${name}: ${message.text()}`);
    });
    page.on("pageerror", (error) => errors.page_errors.push(`${name}: ${error.message}`));
    pages.set(name, page);
    return name;
  },
  async goto({ page, url }) {
    const response = await need(pages, page, "page").goto(url);
    return response ? response.status() : null;
  },
  async eval({ page, fn, arg }) {
    // eslint-disable-next-line no-eval
    const func = eval(`(${fn})`); // serialized again by playwright and run in the page
    return need(pages, page, "page").evaluate(func, arg === undefined ? null : arg);
  },
  async wait_text({ page, element: id, wanted }) {
    // a locator waits across navigations (a form's POST and its redirect), where an eval's context is destroyed
    const found = need(pages, page, "page").locator(`[id="${id}"]`, { hasText: wanted });
    await found.first().waitFor();
    return found.first().textContent();
  },
  async cookies({ context, url }) {
    return need(contexts, context, "context").cookies(url);
  },
  async add_cookies({ context, cookies }) {
    await need(contexts, context, "context").addCookies(cookies);
    return null;
  },
  async clear_cookies({ context }) {
    await need(contexts, context, "context").clearCookies();
    return null;
  },
  async screenshot({ page, path: file }) {
    await need(pages, page, "page").screenshot({ path: file });
    return file;
  },
  async errors() {
    return errors;
  },
  async close({ context }) {
    const found = contexts.get(context);
    contexts.delete(context);
    if (found) await found.close();
    return null;
  },
};

function answer(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

async function main() {
  browser = await chromium.launch({
    executablePath: options.chromium || "/usr/bin/chromium",
    headless: true,
    args: BROWSER_ARGS.concat(options.host_rules ? [`--host-resolver-rules=${options.host_rules}`] : []),
    timeout: options.launch_timeout_ms || 60000, // a first launch after installing builds caches
  });
  answer({ id: 0, ok: true, value: browser.version() });
  const lines = readline.createInterface({ input: process.stdin });
  let queue = Promise.resolve();
  lines.on("line", (line) => {
    if (!line.trim()) return;
    queue = queue.then(async () => {
      let command;
      try {
        command = JSON.parse(line);
        const op = ops[command.op];
        if (!op) throw new Error(`unknown op ${command.op}`);
        answer({ id: command.id, ok: true, value: await op(command) });
      } catch (err) {
        // eslint-disable-next-line no-control-regex
        const text = String((err && err.stack) || err).replace(/\u001b\[\d+m/g, "").split("\n").slice(0, 4).join(" | ");
        answer({ id: command ? command.id : null, ok: false, error: text });
      }
    });
  });
  lines.on("close", () => {
    queue.then(() => browser.close()).then(() => process.exit(0), () => process.exit(1));
  });
}

main().catch((err) => {
  answer({ id: 0, ok: false, error: String((err && err.stack) || err) });
  process.exit(2);
});
