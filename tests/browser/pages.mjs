// Real-browser tests of posbridge's pages: Debian's chromium, driven by playwright-core.
// Run by tests/e2e/browser.rs, which starts the daemon and passes what the test needs:
//
//   node pages.mjs payment-app   PAGE_URL SCREENSHOT            prompts, then the approval
//   node pages.mjs cancel        PAGE_URL SCREENSHOT            cancel from the page
//   node pages.mjs stale         PAGE_URL SCREENSHOT            a refused feed: the page
//                                                               says why and stops trying
//   node pages.mjs status        STATUS_URL ADMIN_TOKEN PAYMENT_ID SCREENSHOT
//                                                               log in, re-deliver a callback
//   node pages.mjs status-phone  STATUS_URL ADMIN_TOKEN SCREENSHOT_PHONE SCREENSHOT
//                                                               the status page at 420 px,
//                                                               then at desktop width
//   node pages.mjs status-actions STATUS_URL ADMIN_TOKEN ALARM_PAYMENT RESOLVE_PAYMENT SCREENSHOT
//                                                               acknowledge an alarm and
//                                                               resolve a payment, on a phone
//
// Prints what it saw as one line `RESULT {json}` and exits 0; any failure exits non-zero.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
];

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`missing environment variable ${name}`);
  return value;
}

const text = (page, selector) => page.locator(selector).innerText();

// How a page fits a phone: its width against the viewport's, every visible button inside
// the viewport's width, the smallest text.
async function fit(page) {
  return page.evaluate(() => {
    const width = window.innerWidth;
    const visible = (e) => {
      const r = e.getBoundingClientRect();
      return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== "hidden";
    };
    const buttonsOutside = Array.from(document.querySelectorAll("button"))
      .filter(visible)
      .filter((b) => { const r = b.getBoundingClientRect(); return r.left < 0 || r.right > width; })
      .map((b) => b.textContent);
    const sizes = Array.from(document.querySelectorAll("td, li, p, button, h2, footer"))
      .filter(visible)
      .map((e) => parseFloat(getComputedStyle(e).fontSize));
    return {
      viewport: width,
      scrollWidth: document.documentElement.scrollWidth,
      bodyScrollWidth: document.body.scrollWidth,
      buttonsOutside,
      smallestFontPx: Math.min(...sizes),
    };
  });
}

async function logIn(page) {
  await page.goto(need("STATUS_URL"));
  const login = await fit(page);
  await page.fill("#token", need("ADMIN_TOKEN"));
  await Promise.all([page.waitForURL(/\/status$/), page.click("#login")]);
  await page.waitForSelector("#connection.live", { timeout: 10000 });
  await page.locator("tr[data-terminal]").first().waitFor({ timeout: 15000 });
  return login;
}

async function paymentApp(page, { cancel }) {
  const seen = [];
  await page.exposeFunction("posbridgeSaw", (t) => seen.push(t));
  await page.addInitScript(() => {
    // Records every prompt the page shows, as the shopper would see them.
    new MutationObserver(() => {
      const prompt = document.getElementById("prompt");
      if (prompt && prompt.textContent) window.posbridgeSaw(prompt.textContent);
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  await page.goto(need("PAGE_URL"));
  await page.waitForFunction(() => document.getElementById("connection").textContent === "live"
    || document.getElementById("result").textContent !== "", null, { timeout: 15000 });
  // A prompt from the terminal while the sale runs.
  await page.waitForFunction(
    () => ["enter PIN", "processing, please wait", "insert, tap or swipe card"]
      .includes(document.getElementById("prompt").textContent),
    null, { timeout: 20000 });
  const promptWhileRunning = await text(page, "#prompt");
  const stateWhileRunning = await text(page, "#state");
  const cancelVisibleWhileRunning = await page.locator("#cancel").isVisible();
  const logVisibleWhileRunning = await page.locator("#log").isVisible();
  if (cancel) {
    await page.click("#cancel");
  }
  await page.waitForSelector(cancel ? "#result.denied" : "#result.approved", { timeout: 30000 });
  await page.waitForFunction(() => document.getElementById("connection").textContent === "done",
    null, { timeout: 10000 });
  // What the cashier sees, the developer's events folded away.
  await page.screenshot({ path: need("SCREENSHOT") });
  const logVisibleAfterResult = await page.locator("#log").isVisible();
  await page.click("#details summary");
  await page.locator("#log").waitFor({ state: "visible", timeout: 5000 });
  return {
    promptWhileRunning,
    stateWhileRunning,
    prompts: [...new Set(seen)],
    amount: await text(page, "#amount"),
    method: await text(page, "#method"),
    terminal: await text(page, "#terminal"),
    state: await text(page, "#state"),
    result: await text(page, "#result"),
    cancelVisibleWhileRunning,
    cancelVisibleAfterResult: await page.locator("#cancel").isVisible(),
    logVisibleWhileRunning,
    logVisibleAfterResult,
    logVisibleAfterClick: await page.locator("#log").isVisible(),
    log: await text(page, "#log"),
  };
}

// The page's feed is refused (a wrong link): it must explain and stop, not retry forever.
async function stalePage(page) {
  const sockets = [];
  const fetches = [];
  page.on("websocket", (socket) => sockets.push(socket.url()));
  page.on("request", (request) => {
    if (request.resourceType() === "fetch") fetches.push(request.url());
  });
  await page.goto(need("PAGE_URL"));
  const stopped = await page.waitForFunction(
    () => document.getElementById("connection").textContent === "stopped",
    null, { timeout: 10000 }).then(() => true, () => false);
  // Stopped must stay stopped: the old page retried every 0.5 to 5 s.
  await page.waitForTimeout(6000);
  return {
    stopped,
    connection: await text(page, "#connection"),
    error: await text(page, "#error"),
    prompt: await text(page, "#prompt"),
    cancelDisabled: await page.locator("#cancel").isDisabled(),
    socketAttempts: sockets.length,
    fetches: fetches.length,
  };
}

async function statusPage(page, context) {
  const paymentId = need("PAYMENT_ID");
  await page.goto(need("STATUS_URL"));
  const loginUrl = page.url();
  await page.fill("#token", need("ADMIN_TOKEN"));
  await Promise.all([page.waitForURL(/\/status$/), page.click("#login")]);
  const row = page.locator(`tr[data-callback]`, { hasText: paymentId });
  await row.first().waitFor({ timeout: 15000 });
  await page.waitForSelector("#connection.live", { timeout: 10000 });
  const before = await row.first().innerText();
  const cookies = (await context.cookies()).map(({ name, value, httpOnly, sameSite }) =>
    ({ name, value, httpOnly, sameSite }));
  const content = await page.content();
  const screenshot = need("SCREENSHOT");
  await page.screenshot({ path: screenshot, fullPage: true });
  await row.first().locator("button.redeliver").click();
  // The row disappears once the callback is delivered.
  await row.first().waitFor({ state: "detached", timeout: 10000 });
  return {
    loginUrl,
    before,
    cookies,
    alarms: await text(page, "#alarms"),
    terminals: await text(page, "#terminals"),
    payments: await text(page, "#payments"),
    callbacksAfter: await page.locator("#callbacks").isVisible()
      ? await text(page, "#callbacks") : "",
    pageHasSignature: content.includes("X-VTEX-signature") || content.includes("SIGtestSECRET"),
    pageHasFirstDigits: content.includes("444433") || content.includes("555566"),
  };
}

// The status page on a phone (420 px): nothing off-screen, then the same at desktop width.
async function statusPhone(page) {
  await page.setViewportSize({ width: 420, height: 900 });
  const login = await logIn(page);
  await page.locator("tr[data-payment]").first().waitFor({ timeout: 15000 });
  const phone = await fit(page);
  const terminals = {};
  for (const row of await page.locator("tr[data-terminal]").all()) {
    terminals[await row.getAttribute("data-terminal")] = await row.innerText();
  }
  const payments = {};
  for (const row of await page.locator("tr[data-payment]").all()) {
    payments[await row.getAttribute("data-payment")] = await row.innerText();
  }
  const result = {
    login,
    phone,
    terminals,
    payments,
    alarms: await text(page, "#alarms"),
    zone: await text(page, "#zone"),
    todaySince: await text(page, "#today-since"),
  };
  await page.screenshot({ path: need("SCREENSHOT_PHONE"), fullPage: true });
  await page.setViewportSize({ width: 1100, height: 800 });
  result.desktop = await fit(page);
  await page.screenshot({ path: need("SCREENSHOT"), fullPage: true });
  return result;
}

// Acknowledge an alarm and resolve a payment from the page, on a phone.
async function statusActions(page) {
  await page.setViewportSize({ width: 420, height: 900 });
  await logIn(page);
  const dialog = page.locator("#act");
  const button = (name) => dialog.getByRole("button", { name, exact: true });

  const alarm = page.locator(`li[data-alarm][data-payment="${need("ALARM_PAYMENT")}"]`);
  await alarm.first().waitFor({ timeout: 15000 });
  const alarmText = await alarm.first().innerText();
  await alarm.first().getByRole("button", { name: "Acknowledge" }).click();
  await dialog.waitFor({ state: "visible" });
  await page.fill("#act-note", "called the acquirer; returned by hand");
  await button("Acknowledge").click();
  await dialog.waitFor({ state: "hidden", timeout: 10000 });
  await alarm.first().waitFor({ state: "detached", timeout: 10000 });

  const paymentId = need("RESOLVE_PAYMENT");
  const unresolved = page.locator(`li[data-payment="${paymentId}"]`);
  await unresolved.first().waitFor({ timeout: 15000 });
  await unresolved.first().getByRole("button", { name: "Resolve…" }).click();
  await dialog.waitFor({ state: "visible" });
  await button("Continue…").click();
  const noDecision = await text(page, "#act-problem");
  await page.check("#act-approved");
  await button("Continue…").click();
  const noReason = await text(page, "#act-problem");
  // A line break is only layout: it goes as a space.
  await page.fill("#act-reason", "receipt 0042\nshows approved");
  await button("Continue…").click();
  const question = await dialog.locator(".question").innerText();
  const dialogFit = await fit(page);
  await page.screenshot({ path: need("SCREENSHOT") });
  await button("Yes, resolve as approved").click();
  await dialog.waitFor({ state: "hidden", timeout: 10000 });
  const row = page.locator(`tr[data-payment="${paymentId}"]`);
  await row.locator(".resolution").waitFor({ timeout: 15000 });
  return {
    alarmText,
    noDecision,
    noReason,
    question,
    dialogFit,
    resolvedRow: await row.innerText(),
    alarmsAfter: await text(page, "#alarms"),
  };
}

async function main() {
  const test = process.argv[2];
  const userDataDir = mkdtempSync(join(tmpdir(), "posbridge-chromium-"));
  // The fresh user-data dir is what launchPersistentContext passes as --user-data-dir.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: FLAGS,
    viewport: { width: 1100, height: 800 },
  });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    const errors = [];
    // The stale page's refused feed is what that test is about: Chromium reports it as errors.
    const feedRefusals = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => {
      // Chromium asks every site for /favicon.ico; posbridge has none.
      if (m.type() === "error" && !(m.location().url || "").endsWith("/favicon.ico")) {
        const line = m.text() + " " + (m.location().url || "");
        (test === "stale" && line.includes("/payment-app/ws/") ? feedRefusals : errors).push(line);
      }
    });
    let result;
    if (test === "payment-app" || test === "cancel") {
      result = await paymentApp(page, { cancel: test === "cancel" });
    } else if (test === "stale") {
      result = await stalePage(page);
      result.feedRefusals = feedRefusals.length;
      await page.screenshot({ path: need("SCREENSHOT") });
    } else if (test === "status") {
      result = await statusPage(page, context);
    } else if (test === "status-phone") {
      result = await statusPhone(page);
    } else if (test === "status-actions") {
      result = await statusActions(page);
    } else {
      throw new Error(
        `unknown test ${test}: payment-app, cancel, stale, status, status-phone or status-actions`);
    }
    result.errors = errors;
    console.log("RESULT " + JSON.stringify(result));
  } finally {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

const watchdog = setTimeout(() => {
  console.error("browser test took longer than 90 s");
  process.exit(3);
}, 90000);
main().then(() => clearTimeout(watchdog)).catch((e) => {
  console.error("FAILED: " + (e && e.stack ? e.stack : e));
  process.exit(1);
});
