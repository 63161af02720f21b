// Drives Debian's chromium (through playwright-core) against the sidecar's debugger page.
//
// Started by test_debugger_page.py with DEBUGGER_URL, KEY_HASH and SECRET_KEYS (comma-separated write keys that must
// never appear on the page). Protocol on stdout: prints "READY" once the page is live and shows the events sent before
// it opened; the test then sends more events over gRPC and writes "SENT" on stdin; the script checks the page and
// exits 0, or prints what failed and exits 1.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const url = process.env.DEBUGGER_URL;
const keyHash = process.env.KEY_HASH;
const secrets = (process.env.SECRET_KEYS || "").split(",").filter(Boolean);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 15000;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const lines = createInterface({ input: process.stdin });
const stdinLines = lines[Symbol.asyncIterator]();
async function waitFor(word) {
  for (;;) {
    const { value, done } = await stdinLines.next();
    check(!done, `stdin closed before ${word}`);
    if (value.trim() === word) return;
  }
}

const profile = mkdtempSync(join(tmpdir(), "sidecar-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  const consoleErrors = [];
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById("status").textContent === "live");

  // Sent before the page opened: shown from the stream's snapshot, and already delivered.
  const early = page.locator("#rows tr[data-kind=accepted]", { hasText: "Email Delivered" });
  await early.first().waitFor();
  await page.locator("#rows tr[data-kind=accepted]", { hasText: "Email Delivered" })
    .locator("td.status", { hasText: "delivered (HTTP 200)" }).first().waitFor();
  console.log("READY");

  await waitFor("SENT");
  // Live: an accepted event that gets delivered, a rejected one with its reason and Spec suggestion, an identify.
  const opened = page.locator("#rows tr[data-kind=accepted]", { hasText: "Email Opened" }).first();
  await opened.locator("td.status", { hasText: "delivered (HTTP 200)" }).waitFor();
  const rejected = page.locator("#rows tr[data-kind=rejected]", { hasText: "email open" }).first();
  await rejected.waitFor();
  const rejectedText = await rejected.innerText();
  check(rejectedText.includes("INVALID_ARGUMENT"), `rejected row lacks its code: ${rejectedText}`);
  check(rejectedText.includes('looks like the Spec event "Email Opened"'), `rejected row lacks its reason: ${rejectedText}`);
  check(rejectedText.includes("Spec suggestion: Email Opened"), `rejected row lacks the suggestion: ${rejectedText}`);
  await page.locator("#rows tr[data-kind=batch]", { hasText: "HTTP 200" }).first().waitFor();
  await page.locator("#rows tr[data-kind=accepted]", { hasText: "identify" }).first().waitFor();

  // Newest first.
  const ids = await page.$$eval("#rows tr", (rows) => rows.map((row) => Number(row.dataset.id)));
  check(ids.length >= 6, `expected at least 6 rows, got ${ids.length}`);
  check(ids.every((id, i) => i === 0 || ids[i - 1] > id), `rows are not newest first: ${ids}`);

  // Filters: type, name, write key hash.
  const visible = () => page.$$eval("#rows tr:not([hidden])", (rows) => rows.map((row) => row.innerText));
  await page.selectOption("#f-type", "identify");
  let shown = await visible();
  check(shown.length >= 1 && shown.every((text) => text.includes("identify")), `type filter failed: ${shown}`);
  await page.selectOption("#f-type", "");
  await page.fill("#f-name", "opened");
  shown = await visible();
  check(shown.length >= 1 && shown.every((text) => text.includes("Email Opened")), `name filter failed: ${shown}`);
  await page.fill("#f-name", "");
  await page.fill("#f-key", "000000");
  shown = await visible();
  check(shown.length === 0, `write key filter showed ${shown.length} rows for an unknown hash`);
  await page.fill("#f-key", keyHash);
  shown = await visible();
  check(shown.length >= 6 && shown.every((text) => text.includes(keyHash)), `write key filter failed: ${shown}`);
  await page.fill("#f-key", "");

  // The event JSON on click.
  await opened.click();
  const json = JSON.parse(await page.locator("#json").innerText());
  check(json.event === "Email Opened" && json.type === "track", `wrong JSON shown: ${JSON.stringify(json)}`);
  check(json.properties && json.properties.email_id === "em-1", `JSON lacks properties: ${JSON.stringify(json)}`);
  check(json.context && json.context.integration && json.context.integration.name === "acme-mail", "JSON lacks context");

  const html = await page.content();
  for (const secret of secrets) check(!html.includes(secret), "a full write key appears on the page");
  check(consoleErrors.length === 0, `page errors: ${consoleErrors}`);
  console.log("OK");
} catch (error) {
  console.log(`FAILED: ${error.message}`);
  process.exitCode = 1;
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
  lines.close();
}
