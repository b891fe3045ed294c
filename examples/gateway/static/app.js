// The waiting-room page: join, wait (the pre-queue's countdown, then the
// place and the ETA), enter by itself when ready, pick seats, hold, confirm.
// Everything goes through the gateway's JSON API (/api/v1/...).
"use strict";

const params = new URLSearchParams(location.search);
const event = params.get("event") || "demo";
const saved = `tq:${event}`;
const $ = (id) => document.getElementById(id);

let state = JSON.parse(localStorage.getItem(saved) || "{}");
let firstPosition = null;
let chosen = [];
let limit = 4;
let holdTimer = null;
let openingTimer = null;
let pollTimer = null;
let busy = false;

function save() { localStorage.setItem(saved, JSON.stringify(state)); }
function show(id) {
  for (const card of ["join-card", "wait-card", "seat-card", "checkout-card", "done-card", "soldout-card"]) {
    $(card).classList.toggle("hidden", card !== id);
  }
}
function fail(text) { $("error").textContent = text; $("error").classList.remove("hidden"); }
function clearError() { $("error").classList.add("hidden"); }

async function api(method, path, body, headers = {}) {
  const res = await fetch(path, {
    method,
    headers: body ? { "content-type": "application/json", ...headers } : headers,
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({ error: "bad_reply", detail: res.statusText }));
  if (!res.ok) {
    const err = new Error(data.detail || data.error);
    err.code = data.error;
    throw err;
  }
  return data;
}

function clock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(sec)}` : `${two(m)}:${two(sec)}`;
}

function soldOut() { stopWaiting(); state = {}; save(); show("soldout-card"); }

// One click at a time: a second click on join, hold, confirm, release or
// leave while the first one's request is on its way does nothing (two
// joins would take two places, two holds or confirms would race).
function once(action) {
  return async (...args) => {
    if (busy) return;
    busy = true;
    try { await action(...args); } finally { busy = false; }
  };
}

// The fan is back at the start, with why.
function backToJoin(why) {
  stopWaiting();
  clearInterval(holdTimer);
  state = { fan: state.fan };
  save();
  show("join-card");
  fail(why);
}
function placeLost() { backToJoin("Your place in the queue has expired. Please join again."); }
function passLost() { backToJoin("Your time to buy ran out. Please join the queue again."); }
function holdLost() {
  clearInterval(holdTimer);
  state.held = [];
  save();
  seats();
  fail("Your hold ran out: the seats are back on sale.");
}

// ---- waiting ---------------------------------------------------------------

async function join(fan) {
  // Kept until a join succeeds: a second try after a lost reply gets the
  // place the first one took.
  state.joinKey ||= `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  save();
  let data;
  try {
    data = await api("POST", "/api/v1/queue/join", { event, user: fan }, { "idempotency-key": state.joinKey });
  } catch (e) {
    if (e.code === "sold_out") return soldOut();
    return fail(e.code ? e.message : "Connection problem: please try again.");
  }
  stopWaiting();
  state = { fan, token: data.token };
  firstPosition = null;
  save();
  show("wait-card");
  poll();
}

// One poll loop at most: scheduling the next poll cancels any other, and a
// poll whose token is no longer the fan's (left, entered, joined again)
// stops there.
function schedulePoll(ms) { clearTimeout(pollTimer); pollTimer = setTimeout(poll, ms); }
function stopWaiting() { clearTimeout(pollTimer); clearInterval(openingTimer); }

async function poll() {
  const token = state.token;
  if (!token) return;
  let s;
  try {
    s = await api("GET", `/api/v1/queue/status?event=${encodeURIComponent(event)}&token=${encodeURIComponent(token)}`);
  } catch (e) {
    if (state.token !== token) return;
    if (e.code === "not_queued") return placeLost();
    fail("Connection problem, retrying...");
    return schedulePoll(3000);
  }
  if (state.token !== token) return;
  clearError();
  if (s.sold_out) return soldOut();
  const opening = s.opens_in_ms > 0;
  $("opening").classList.toggle("hidden", !opening);
  $("queue").classList.toggle("hidden", opening);
  // The countdown runs between two polls, as the hold's does.
  clearInterval(openingTimer);
  if (opening) {
    const opensAt = Date.now() + s.opens_in_ms;
    const tick = () => { $("countdown").textContent = clock(opensAt - Date.now()); };
    tick();
    openingTimer = setInterval(tick, 250);
  } else {
    if (firstPosition === null || s.position > firstPosition) firstPosition = s.position;
    $("position").textContent = s.position;
    const done = firstPosition > 1 ? (firstPosition - s.position) / (firstPosition - 1) : 1;
    $("progress-fill").style.width = `${Math.round(100 * Math.min(1, Math.max(0.03, done)))}%`;
    $("progress").setAttribute("aria-valuenow", String(Math.round(100 * done)));
    $("eta").textContent = s.ready ? "It's your turn!"
      : s.eta_ms >= 0 ? `About ${clock(s.eta_ms)} to go` : "Waiting for a place to free up...";
  }
  if (s.ready) return enter(token);
  schedulePoll(s.poll_ms || 2000);
}

async function enter(token) {
  clearTimeout(pollTimer);
  try {
    const pass = await api("POST", "/api/v1/queue/enter", { event, token });
    if (state.token !== token) return;
    stopWaiting();
    state.pass = pass.pass;
    delete state.token;
    save();
    seats();
  } catch (e) {
    if (state.token !== token) return;
    if (e.code === "sold_out") return soldOut();
    if (e.code === "not_queued") return placeLost();
    if (e.code === "not_ready" || e.code === "not_open") return schedulePoll(1000);
    // Redis or the network away: keep polling, which keeps the place.
    fail("Connection problem, retrying...");
    schedulePoll(3000);
  }
}

// ---- seats -----------------------------------------------------------------

// The venue's seats, fetched; null (and the problem shown) if they could not be.
async function seatMap() {
  try {
    return await api("GET", `/api/v1/events/${encodeURIComponent(event)}/seats`);
  } catch (e) {
    fail("Connection problem: reload the page to try again.");
    return null;
  }
}

// The seat map last fetched: a pick redraws it without asking again.
let lastMap = null;

async function seats() {
  show("seat-card");
  const map = await seatMap();
  if (!map) return;
  lastMap = map;
  drawSeats(map);
}

function drawSeats(map) {
  limit = map.max_seats > 0 ? map.max_seats : 4;
  $("limit").textContent = limit;
  chosen = chosen.filter((s) => map.seats.some((x) => x.seat === s && x.state === "available"));
  const rows = new Map();
  for (const s of map.seats) {
    const row = s.seat.split("-")[0];
    if (!rows.has(row)) rows.set(row, []);
    rows.get(row).push(s);
  }
  const widest = Math.max(...[...rows.values()].map((r) => r.length));
  const grid = $("seat-map");
  grid.style.gridTemplateColumns = `24px repeat(${widest}, 30px)`;
  grid.replaceChildren();
  for (const [row, list] of rows) {
    const label = document.createElement("div");
    label.className = "row-label";
    label.textContent = row;
    grid.append(label);
    for (let i = 0; i < widest; i++) {
      const s = list[i];
      if (!s) { grid.append(document.createElement("span")); continue; }
      const free = s.state === "available";
      const el = document.createElement(free ? "button" : "span");
      el.className = `seat ${chosen.includes(s.seat) ? "chosen" : s.state}`;
      el.title = `${s.seat}: ${s.state}`;
      el.dataset.seat = s.seat;
      el.textContent = s.seat.split("-")[1];
      if (free) el.addEventListener("click", () => pick(s.seat));
      grid.append(el);
    }
  }
  $("hold-button").disabled = chosen.length === 0;
  $("hold-button").textContent = chosen.length ? `Hold ${chosen.length} seat${chosen.length > 1 ? "s" : ""}` : "Hold seats";
  if (map.inventory === 0 && chosen.length === 0) fail("No seat is free right now; held seats may come back.");
}

function pick(seat) {
  clearError();
  if (chosen.includes(seat)) chosen = chosen.filter((s) => s !== seat);
  else if (chosen.length < limit) chosen.push(seat);
  else return fail(`You can pick up to ${limit} seats.`);
  drawSeats(lastMap);
}

async function hold() {
  clearError(); // an earlier step's error is stale now
  try {
    await api("POST", "/api/v1/seats/hold", { event, user: state.fan, seats: chosen });
    state.held = chosen.slice();
    save();
    checkout();
  } catch (e) {
    if (e.code === "sold_out") return soldOut();
    if (e.code === "no_pass") return passLost();
    chosen = [];
    await seats();
    fail(e.code === "seat_unavailable" ? `Sorry, ${e.message.split(" ")[0]} was just taken. Pick another.` : e.message);
  }
}

async function checkout() {
  show("checkout-card");
  $("held-seats").textContent = state.held.join(", ");
  const map = await seatMap();
  if (!map) return;
  // Still this fan's holds (after a reload, one may have run out, and the
  // seat even gone to somebody else).
  const mine = map.seats.filter((s) => state.held.includes(s.seat) && s.state === "held" && s.user === state.fan);
  if (mine.length < state.held.length) return holdLost();
  const until = Date.now() + Math.min(...mine.map((s) => s.ttl_ms));
  clearInterval(holdTimer);
  const tick = () => {
    const left = until - Date.now();
    $("hold-countdown").textContent = clock(left);
    if (left <= 0) holdLost();
  };
  tick();
  holdTimer = setInterval(tick, 250);
}

async function confirm() {
  clearError();
  try {
    await api("POST", "/api/v1/seats/confirm", { event, user: state.fan, seats: state.held });
    clearInterval(holdTimer);
    $("bought-seats").textContent = state.held.join(", ");
    state = { fan: state.fan, bought: state.held };
    save();
    show("done-card");
  } catch (e) {
    if (e.code === "no_pass") return passLost();
    if (e.code === "not_held" || e.code === "not_owner") return holdLost();
    fail(e.message);
  }
}

async function release() {
  clearError();
  await api("POST", "/api/v1/seats/release", { event, user: state.fan, seats: state.held }).catch(() => {});
  clearInterval(holdTimer);
  state.held = [];
  chosen = [];
  save();
  seats();
}

// ---- start -----------------------------------------------------------------

$("event-name").textContent = event;
$("join-form").addEventListener("submit", (e) => { e.preventDefault(); clearError(); once(join)($("fan").value.trim()); });
$("leave-button").addEventListener("click", once(async () => {
  stopWaiting();
  await api("DELETE", "/api/v1/queue/leave", { event, token: state.token }).catch(() => {});
  state = { fan: state.fan }; save(); show("join-card");
}));
$("hold-button").addEventListener("click", once(hold));
$("confirm-button").addEventListener("click", once(confirm));
$("release-button").addEventListener("click", once(release));
if (state.fan) $("fan").value = state.fan;
if (state.bought) { $("bought-seats").textContent = state.bought.join(", "); show("done-card"); }
else if (state.held && state.held.length) checkout();
else if (state.pass) seats();
else if (state.token) { show("wait-card"); poll(); }
else show("join-card");
