// The waiting-room page (examples/gateway/static) in headless Chromium,
// driven by Playwright: fans go through a whole sale on a real gateway in
// front of a real Redis with tq. Run by tests/suite/browser.rs, which starts both
// and sets the events up first:
//
//   EVENT          MAX-ACTIVE 1, MAX-SEATS 2, HOLD-TTL 120, inventory 3, on
//                  a gateway with the layout A:2,B:1 (seats A-1 A-2 B-1).
//                  When Ana has bought her seats, the gateway's confirm ends
//                  her pass (checkout done): that lets the next fan in.
//   OPENING_EVENT  OPENS-AT a few seconds after the start, MAX-ACTIVE 1,
//                  inventory 3.
//   GATEWAY_URL    the gateway (http://127.0.0.1:<port>)
//   OUT_DIR        where the screenshots go (01-join.png, 02-...)
//   CHROMIUM       the browser (default /usr/bin/chromium, Debian's)
//
// Each step checks what the page shows and saves a screenshot; the first
// check that fails ends the run with a message saying which fan saw what
// (and a failed-<fan>.png). Exit status 0 when the whole story held.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const need = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`sale.mjs: set ${name} (tests/suite/browser.rs does)`);
    process.exit(2);
  }
  return value;
};
const GATEWAY = need("GATEWAY_URL").replace(/\/$/, "");
const EVENT = need("EVENT");
const OPENING_EVENT = need("OPENING_EVENT");
const OUT_DIR = need("OUT_DIR");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

// tests/suite/browser.rs knows Ana by this name (it checks her pass ended).
const ANA = "ana@example.com";
const BEN = "ben@example.com";
const CLEO = "cleo@example.com";
const DAN = "dan@example.com";

const CARDS = ["join-card", "wait-card", "seat-card", "checkout-card", "done-card", "soldout-card"];
const started = Date.now();
const since = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;

// The whole run stops by itself well before the Rust side's timeout.
const guard = setTimeout(() => {
  console.error(`sale.mjs: still running after 90 s: giving up`);
  process.exit(1);
}, 90_000);
guard.unref();

mkdirSync(OUT_DIR, { recursive: true });

class Fan {
  constructor(name, page) {
    this.name = name;
    this.page = page;
    this.errors = [];
    page.on("pageerror", (e) => this.errors.push(`uncaught in the page: ${e.message}`));
    page.on("console", (m) => {
      // An API error status is logged as a failed load: the page handles those.
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
        this.errors.push(`console error: ${m.text()}`);
      }
    });
  }

  /// The card on show, and the error line if any: for failure messages.
  async seen() {
    const { cards, error, text } = await this.page.evaluate((ids) => ({
      cards: ids.filter((id) => !document.getElementById(id).classList.contains("hidden")),
      error: document.getElementById("error").classList.contains("hidden")
        ? "" : document.getElementById("error").textContent,
      text: document.querySelector("main").innerText.replace(/\s+/g, " ").slice(0, 300),
    }), CARDS).catch((e) => ({ cards: [], error: "", text: `(page unreadable: ${e.message})` }));
    return `shows [${cards.join(", ")}]${error ? `, error "${error}"` : ""}: "${text}"`;
  }

  fail(what) {
    throw new Error(`${this.name}: ${what}`);
  }

  /// Waits until `card` is the card on show (and the only one).
  async card(card, timeout = 10_000) {
    const others = CARDS.filter((c) => c !== card).map((c) => `#${c}:not(.hidden)`).join(", ");
    try {
      await this.page.waitForFunction(
        ([card, others]) => !document.getElementById(card).classList.contains("hidden")
          && document.querySelectorAll(others).length === 0,
        [card, others], { timeout, polling: 50 });
    } catch {
      this.fail(`expected #${card} within ${timeout} ms, but the page ${await this.seen()}`);
    }
  }

  async text(selector) {
    return ((await this.page.locator(selector).textContent({ timeout: 5_000 })) || "").trim();
  }

  /// Waits until the text of `selector` is `expected` (a string: exactly,
  /// a RegExp: matching).
  async expectText(selector, expected, timeout = 5_000) {
    const deadline = Date.now() + timeout;
    let got;
    for (;;) {
      got = await this.text(selector).catch(() => "(missing)");
      if (expected instanceof RegExp ? expected.test(got) : got === expected) return got;
      if (Date.now() > deadline) break;
      await this.page.waitForTimeout(50);
    }
    this.fail(`${selector} should read ${expected instanceof RegExp ? expected : `"${expected}"`}, `
      + `got "${got}"; the page ${await this.seen()}`);
  }

  async expectAttribute(selector, name, expected, timeout = 5_000) {
    const deadline = Date.now() + timeout;
    let got;
    for (;;) {
      got = await this.page.locator(selector).getAttribute(name, { timeout: 5_000 }).catch(() => "(missing)");
      if (got === expected) return;
      if (Date.now() > deadline) break;
      await this.page.waitForTimeout(50);
    }
    this.fail(`${selector}'s ${name} should be "${expected}", got "${got}"; the page ${await this.seen()}`);
  }

  async expectVisible(selector, visible = true, timeout = 5_000) {
    try {
      await this.page.locator(selector).waitFor({ state: visible ? "visible" : "hidden", timeout });
    } catch {
      this.fail(`${selector} should be ${visible ? "visible" : "hidden"}; the page ${await this.seen()}`);
    }
  }

  /// The seat map as {seat: class}, e.g. {"A-1": "sold", "B-1": "available"}.
  async seatMap() {
    return this.page.$$eval("#seat-map .seat", (els) => Object.fromEntries(
      els.map((el) => [el.dataset.seat, [...el.classList].filter((c) => c !== "seat").join(" ")])));
  }

  /// Waits until the seat map is exactly `expected`.
  async expectSeats(expected, timeout = 5_000) {
    const want = JSON.stringify(expected);
    const deadline = Date.now() + timeout;
    let got;
    for (;;) {
      got = JSON.stringify(await this.seatMap().catch(() => ({})));
      if (got === want) return;
      if (Date.now() > deadline) break;
      await this.page.waitForTimeout(50);
    }
    this.fail(`the seat map should be ${want}, got ${got}`);
  }

  /// mm:ss as seconds.
  async clock(selector) {
    const text = await this.text(selector);
    const m = /^(\d\d):(\d\d)$/.exec(text);
    if (!m) this.fail(`${selector} should be a mm:ss countdown, got "${text}"`);
    return 60 * Number(m[1]) + Number(m[2]);
  }

  /// Fails if the page threw or logged an error so far.
  checkErrors() {
    if (this.errors.length) this.fail(this.errors.join("; "));
  }
}

let shot = 0;
async function screenshot(fan, name) {
  shot += 1;
  const file = `${String(shot).padStart(2, "0")}-${name}.png`;
  // The progress bar's transition, for instance, ended.
  await fan.page.evaluate(() => Promise.all(document.getAnimations().map((a) => a.finished)));
  await fan.page.screenshot({ path: join(OUT_DIR, file) });
  console.log(`  ${since().padStart(6)}  ${file}  (${fan.name})`);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // As root there is no sandbox; the machine has no network but loopback,
  // so nothing that would phone home.
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
  ],
});

const fans = [];
/// A fan in a browser context of their own (their own localStorage), on
/// the page of `event`.
async function arrive(name, event) {
  const context = await browser.newContext({ viewport: { width: 800, height: 640 } });
  const fan = new Fan(name, await context.newPage());
  fans.push(fan);
  await fan.page.goto(`${GATEWAY}/?event=${encodeURIComponent(event)}`);
  return fan;
}

// A double click, as impatient fans do: the page must join once
// (tests/suite/browser.rs counts the joins on the server).
async function joinQueue(fan) {
  await fan.page.fill("#fan", fan.name);
  await fan.page.dblclick("#join-button");
}

async function pick(fan, seat) {
  await fan.page.click(`#seat-map .seat[data-seat="${seat}"]`);
}

let step = "start";
function say(text) {
  step = text;
  console.log(`${since().padStart(8)}  ${text}`);
}

try {
  // ---- the join page -------------------------------------------------------
  say("Ana opens the page");
  const ana = await arrive(ANA, EVENT);
  await ana.card("join-card");
  await ana.expectText("#event-name", EVENT);
  await ana.expectText("#join-card h1", "Welcome to the waiting room");
  await ana.expectText("#join-button", "Join the queue");
  await ana.page.fill("#fan", ANA);
  await screenshot(ana, "join");

  // ---- a scheduled opening: the pre-queue's countdown ----------------------
  // Two fans join before OPENING_EVENT opens: the page counts down (and
  // keeps counting between two polls); the opening gives them places.
  say("Eve and Finn join the pre-queue of the opening event");
  const eve = await arrive("eve@example.com", OPENING_EVENT);
  const finn = await arrive("finn@example.com", OPENING_EVENT);
  for (const fan of [eve, finn]) {
    await joinQueue(fan);
    await fan.card("wait-card");
    await fan.expectVisible("#countdown");
    await fan.expectVisible("#position", false);
    await fan.expectText("#opening h1", "The sale opens soon");
  }
  const before = await eve.clock("#countdown");
  if (before < 2 || before > 30) eve.fail(`the countdown should show the seconds to the opening, got ${before} s`);
  await screenshot(eve, "opening-countdown");
  await eve.page.waitForTimeout(1_300);
  const after = await eve.clock("#countdown");
  if (!(after < before)) eve.fail(`the countdown should run: ${before} s, then ${after} s 1.3 s later`);

  // ---- Ana: in at once -----------------------------------------------------
  say("Ana joins and gets in at once");
  await ana.page.click("#join-button");
  await ana.card("seat-card");
  await ana.expectSeats({ "A-1": "available", "A-2": "available", "B-1": "available" });
  await ana.expectText("#limit", "2");
  await ana.expectText("#hold-button", "Hold seats");
  if (!(await ana.page.locator("#hold-button").isDisabled())) ana.fail("#hold-button should be disabled before a pick");
  const rows = await ana.page.$$eval("#seat-map .row-label", (els) => els.map((e) => e.textContent));
  if (JSON.stringify(rows) !== '["A","B"]') ana.fail(`the seat map's rows should be A, B, got ${JSON.stringify(rows)}`);
  await screenshot(ana, "seat-map");

  // ---- Ben and Cleo wait: one live pass at a time (MAX-ACTIVE 1) ----------
  say("Ben joins: Ana has the only pass, so he waits at place 1");
  const ben = await arrive(BEN, EVENT);
  await joinQueue(ben);
  await ben.card("wait-card");
  await ben.expectVisible("#countdown", false);
  await ben.expectText("#position", "1");
  await ben.expectText("#eta", "Waiting for a place to free up...");
  await screenshot(ben, "waiting-place-1");

  say("Cleo joins behind him at place 2");
  const cleo = await arrive(CLEO, EVENT);
  await joinQueue(cleo);
  await cleo.card("wait-card");
  await cleo.expectText("#position", "2");
  await cleo.expectText("#queue h1", "You are in the queue");
  await cleo.expectText("#eta", "Waiting for a place to free up...");
  await cleo.expectAttribute("#progress", "aria-valuenow", "0");
  await screenshot(cleo, "waiting-place-2");

  // ---- Ana picks, holds, confirms -----------------------------------------
  say("Ana picks A-1 and A-2; a third seat is over her limit");
  await pick(ana, "A-1");
  await ana.expectSeats({ "A-1": "chosen", "A-2": "available", "B-1": "available" });
  await ana.expectText("#hold-button", "Hold 1 seat");
  await pick(ana, "A-2");
  await ana.expectSeats({ "A-1": "chosen", "A-2": "chosen", "B-1": "available" });
  await ana.expectText("#hold-button", "Hold 2 seats");
  await ana.expectVisible("#error", false);
  await screenshot(ana, "seats-chosen");
  await pick(ana, "B-1");
  await ana.expectText("#error", "You can pick up to 2 seats.");
  await ana.expectSeats({ "A-1": "chosen", "A-2": "chosen", "B-1": "available" });
  await screenshot(ana, "seat-limit");

  say("Ana holds them: the checkout counts the hold down");
  await ana.page.click("#hold-button");
  await ana.card("checkout-card");
  await ana.expectText("#held-seats", "A-1, A-2");
  await ana.expectVisible("#error", false);
  const hold = await ana.clock("#hold-countdown");
  if (hold < 100 || hold > 120) ana.fail(`the hold (HOLD-TTL 120) should show about 02:00, got ${hold} s`);
  await screenshot(ana, "checkout");
  await ana.page.waitForTimeout(1_300);
  const holdLater = await ana.clock("#hold-countdown");
  if (!(holdLater < hold)) ana.fail(`the hold's countdown should run: ${hold} s, then ${holdLater} s`);
  // Her pass is still live: nobody else got in.
  await ben.card("wait-card");
  await cleo.card("wait-card");

  say("Ana confirms");
  await ana.page.click("#confirm-button");
  await ana.card("done-card");
  await ana.expectText("#done-card h1", "You have your tickets");
  await ana.expectText("#bought-seats", "A-1, A-2");
  await ana.expectVisible("#error", false);
  await screenshot(ana, "bought");

  // ---- Ben: in once Ana's pass ends; her seats are sold -------------------
  say("Ana's pass ends (checkout done): Ben gets in, Cleo moves to place 1");
  await ben.card("seat-card", 15_000);
  await ben.expectSeats({ "A-1": "sold", "A-2": "sold", "B-1": "available" });
  await cleo.expectText("#position", "1", 10_000);
  await cleo.expectAttribute("#progress", "aria-valuenow", "100");
  await cleo.card("wait-card");
  await screenshot(ben, "second-fan-seat-map");

  say("Ben takes the last seat");
  await pick(ben, "B-1");
  await ben.expectSeats({ "A-1": "sold", "A-2": "sold", "B-1": "chosen" });
  await ben.expectText("#hold-button", "Hold 1 seat");
  await ben.page.click("#hold-button");
  await ben.card("checkout-card");
  await ben.expectText("#held-seats", "B-1");
  await ben.page.click("#confirm-button");
  await ben.card("done-card");
  await ben.expectText("#bought-seats", "B-1");
  await screenshot(ben, "second-fan-bought");

  // ---- sold out --------------------------------------------------------------
  say("Sold out: Cleo's page says so by itself");
  await cleo.card("soldout-card", 10_000);
  await cleo.expectText("#soldout-card h1", "Sold out");
  await screenshot(cleo, "sold-out-waiting");

  say("Dan joins after the sale: sold out");
  const dan = await arrive(DAN, EVENT);
  await joinQueue(dan);
  await dan.card("soldout-card");
  await dan.expectText("#soldout-card h1", "Sold out");
  await screenshot(dan, "sold-out-join");

  say("Ana comes back: the page remembers her tickets");
  await ana.page.reload();
  await ana.card("done-card");
  await ana.expectText("#bought-seats", "A-1, A-2");

  // ---- the opening: places drawn, one in, one waiting -----------------------
  say("The opening event opens: one fan in, the other at place 1");
  const deadline = Date.now() + 30_000;
  let inside, waiting;
  for (;;) {
    const cards = await Promise.all([eve, finn].map((f) =>
      f.page.evaluate(() => ["seat-card", "wait-card"].find((id) =>
        !document.getElementById(id).classList.contains("hidden")))));
    const position = await Promise.all([eve, finn].map((f) => f.text("#position")));
    const i = cards.indexOf("seat-card");
    if (i >= 0 && cards[1 - i] === "wait-card" && position[1 - i] === "1") {
      [inside, waiting] = i === 0 ? [eve, finn] : [finn, eve];
      break;
    }
    if (Date.now() > deadline) {
      eve.fail(`after the opening one fan should be in and the other at place 1: `
        + `eve ${await eve.seen()}; finn ${await finn.seen()}`);
    }
    await eve.page.waitForTimeout(100);
  }
  await inside.expectSeats({ "A-1": "available", "A-2": "available", "B-1": "available" });
  await waiting.expectVisible("#countdown", false);
  await waiting.expectText("#eta", "Waiting for a place to free up...");
  await screenshot(inside, "opened-in");
  await screenshot(waiting, "opened-place-1");

  for (const fan of fans) fan.checkErrors();
  say(`the whole sale as the page shows it: ${shot} screenshots in ${OUT_DIR}`);
} catch (e) {
  console.error(`\nFAILED at "${step}" (${since()}):\n  ${e.message}`);
  for (const fan of fans) {
    if (fan.errors.length) console.error(`  ${fan.name}: ${fan.errors.join("; ")}`);
    const file = `failed-${fan.name.split("@")[0]}.png`;
    await fan.page.screenshot({ path: join(OUT_DIR, file) }).catch(() => {});
  }
  console.error(`  screenshots of every fan's page: ${OUT_DIR}/failed-*.png`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
