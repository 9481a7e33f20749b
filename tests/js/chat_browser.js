#!/usr/bin/env node
// Drives the chat example in headless Chromium (Debian's /usr/bin/chromium) with playwright-core.
//
//   node tests/js/chat_browser.js '{"scenario": "chat" | "tampered", "url": "http://127.0.0.1:PORT",
//        "chromium": "/usr/bin/chromium", "user_data_dir": DIR, "artifacts": DIR,
//        "name": NAME, "feeling": FEELING, "timeout_ms": 45000}'
//
// It waits for each state the scenario expects (with a per-step timeout),
// records what the pages show in "observed", saves screenshots, and prints
// one JSON object on stdout:
//   {"ok": true|false, "failed_step": null|STEP, "error": null|MESSAGE, "steps": [...],
//    "observed": {...}, "screenshots": [...], "console_errors": [...], "page_errors": [...]}
// The Python test asserts on it. The whole run is bounded by timeout_ms (exit 3);
// the browser is always closed. Never downloads a browser.
// docs/chat.png is chat-3-second-tab.png of the "chat" scenario with name "Ann", feeling "happy".
"use strict";

const fs = require("fs");
const path = require("path");
const { chromium } = require(path.join(__dirname, "..", "..", "node_modules", "playwright-core"));

const options = JSON.parse(process.argv[2] || "{}");
const BROWSER_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

const result = {
  ok: false, failed_step: null, error: null, steps: [], observed: {},
  screenshots: [], console_errors: [], page_errors: [], failed_responses: [],
};
let current = "launch";
let context = null;

let finished = false;
const finish = async (code) => {
  if (finished) return; // the first outcome (result or timeout) is the one reported
  finished = true;
  clearTimeout(overall);
  if (context) {
    const closing = context.close().catch(() => {});
    await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 5000))]);
  }
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(code));
};

const overall = setTimeout(() => {
  result.failed_step = current;
  result.error = `timed out after ${options.timeout_ms} ms`;
  finish(3);
}, options.timeout_ms || 45000);

// -- helpers ------------------------------------------------------------
async function step(name, fn) {
  current = name;
  await fn();
  result.steps.push(name);
}

function watch(page, tag) {
  page.on("console", (message) => {
    if (message.type() === "error") result.console_errors.push(`${tag}: ${message.text()}`);
  });
  page.on("pageerror", (error) => result.page_errors.push(`${tag}: ${error.message}`));
  page.on("response", (response) => {
    if (response.status() >= 400) result.failed_responses.push(`${tag}: ${response.status()} ${response.request().method()} ${response.url()}`);
  });
  return page;
}

async function shot(page, name) {
  const file = path.join(options.artifacts, `chat-${name}.png`);
  await page.screenshot({ path: file });
  result.screenshots.push(file);
}

function statusIs(page, expected) {
  return page.waitForFunction((want) => document.getElementById("status").textContent === want, expected);
}

function boxShowsName(page, id, name) {
  return page.waitForFunction(([boxId, want]) => {
    try {
      return JSON.parse(document.getElementById(boxId).textContent).name === want;
    } catch (err) {
      return false;
    }
  }, [id, name]);
}

function boxHoldsJson(page, id) {
  return page.waitForFunction((boxId) => {
    try {
      JSON.parse(document.getElementById(boxId).textContent);
      return true;
    } catch (err) {
      return false;
    }
  }, id);
}

// the session a box shows (its JSON)
async function box(page, id) {
  return JSON.parse(await page.evaluate((boxId) => document.getElementById(boxId).textContent, id));
}

// what a page shows, read at once (no waiting: also used to report a failure)
function rendered(page) {
  return page.evaluate(() => {
    const el = (id) => document.getElementById(id);
    const text = (id) => (el(id) ? el(id).textContent : null);
    const value = (id) => (el(id) ? el(id).value : null);
    return {
      status: text("status"),
      http_name: text("http-name"),
      http_feeling: text("http-feeling"),
      name_input: value("name"),
      feeling_input: value("feeling"),
    };
  });
}

let blank = null; // the tab the browser starts with, used first

async function openConnected(name) {
  const page = watch(blank || (await context.newPage()), name);
  blank = null;
  await page.goto(options.url + "/");
  await statusIs(page, "connected");
  return page;
}

async function saveProfile(page) {
  await page.fill("#name", options.name);
  await page.fill("#feeling", options.feeling);
  await page.click("#profile button[type=submit]");
  await boxShowsName(page, "socket-says", options.name);
}

// -- scenarios ----------------------------------------------------------
const scenarios = {
  // HTTP and the socket share one session, across reloads and tabs; logout ends the other tab.
  async chat(observed) {
    let first;
    let second;
    await step("first tab connects", async () => {
      first = await openConnected("tab1");
      // io() with the default options: polling first, then the upgrade to websocket
      // eslint-disable-next-line no-undef
      await first.waitForFunction(() => socket.io.engine.transport.name === "websocket");
      observed.transport = await first.evaluate(() => socket.io.engine.transport.name); // eslint-disable-line no-undef
      observed.first_load = await rendered(first);
      observed.first_socket_says = await box(first, "socket-says");
      await shot(first, "1-connected");
    });
    await step("save the profile over the socket", async () => {
      await saveProfile(first);
      observed.socket_says = await box(first, "socket-says");
    });
    await step("ask HTTP again", async () => {
      await first.click("#refresh");
      await boxShowsName(first, "http-says", options.name);
      observed.http_says = await box(first, "http-says");
      await shot(first, "2-saved");
    });
    await step("reload renders the name over HTTP", async () => {
      await first.reload();
      await statusIs(first, "connected");
      observed.after_reload = await rendered(first);
    });
    await step("second tab shows the same session", async () => {
      second = await openConnected("tab2");
      await boxShowsName(second, "socket-says", options.name);
      observed.second_tab = await rendered(second);
      observed.second_tab_socket_says = await box(second, "socket-says");
      await shot(second, "3-second-tab");
    });
    await step("log out in the first tab ends the second tab", async () => {
      await first.evaluate(() => { window.beforeLogout = true; }); // to tell the next document apart
      await first.click("#logout");
      await statusIs(second, "session ended: logout");
      observed.second_tab_after_logout = await rendered(second);
      await shot(second, "4-ended");
    });
    await step("the first tab starts a fresh session", async () => {
      await first.waitForFunction(
        () => !window.beforeLogout && document.getElementById("status").textContent === "connected");
      observed.first_tab_url_after_logout = first.url();
      observed.first_tab_after_logout = await rendered(first);
      observed.first_tab_after_logout_socket_says = await box(first, "socket-says");
    });
  },

  // A session cookie tampered with in the browser: the socket's next handshake is refused
  // (and the user sees why); a page load gets a fresh session, never the old one.
  async tampered(observed) {
    let page;
    let original;
    await step("connect and save a profile", async () => {
      page = await openConnected("tab1");
      await saveProfile(page);
      [original] = await context.cookies(options.url);
      observed.original_cookie = { name: original.name, httpOnly: original.httpOnly, sameSite: original.sameSite };
    });
    await step("tamper with the cookie and drop the connection", async () => {
      const [id, signature] = [original.value.slice(0, original.value.lastIndexOf(".")),
        original.value.slice(original.value.lastIndexOf(".") + 1)];
      const forged = signature.slice(0, -2) + (signature.endsWith("AA") ? "BB" : "AA");
      await context.addCookies([{ ...original, value: `${id}.${forged}` }]);
      // as if the network dropped: the client reconnects with what the cookie jar holds now
      await page.evaluate(() => socket.io.engine.close()); // eslint-disable-line no-undef
      await statusIs(page, "refused: bad_signature");
      observed.refused = await rendered(page);
      await shot(page, "5-refused");
    });
    await step("a reload gets a fresh session", async () => {
      await page.reload();
      await statusIs(page, "connected");
      await boxHoldsJson(page, "socket-says"); // the connect handler's get_session has been acked
      observed.after_reload = await rendered(page);
      observed.after_reload_socket_says = await box(page, "socket-says");
      const [cookie] = await context.cookies(options.url);
      observed.cookie_replaced = cookie.value !== original.value;
    });
  },
};

async function main() {
  const scenario = scenarios[options.scenario];
  if (!scenario) throw new Error(`unknown scenario ${options.scenario}`);
  fs.mkdirSync(options.artifacts, { recursive: true });
  context = await chromium.launchPersistentContext(options.user_data_dir, {
    executablePath: options.chromium || "/usr/bin/chromium",
    headless: true,
    args: BROWSER_ARGS,
    viewport: { width: 1040, height: 600 },
    timeout: options.launch_timeout_ms || 60000, // a first launch after installing builds caches
  });
  context.setDefaultTimeout(options.step_timeout_ms || 8000);
  blank = context.pages()[0] || null;
  await scenario(result.observed);
  result.ok = true;
}

main().then(
  () => finish(0),
  async (err) => {
    if (finished) return;
    result.failed_step = current;
    // eslint-disable-next-line no-control-regex
    result.error = String((err && err.stack) || err).replace(/\u001b\[\d+m/g, "").split("\n").slice(0, 3).join(" | ");
    for (const page of context ? context.pages() : []) {
      try {
        result.observed[`at_failure_${page.url()}`] = await rendered(page);
        await shot(page, `failed-${result.screenshots.length + 1}`);
      } catch (ignored) {
        // the page may be gone
      }
    }
    finish(1);
  },
);
