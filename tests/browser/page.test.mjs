// The search page in a real browser (Debian's headless Chromium, driven by
// playwright-core): load, search, "more like this", build a related-work list.
// With API_KEY set (the server's key), the page must first ask for the key:
// a wrong one is refused and asked again, the right one is kept in session
// storage only, and a reload does not ask again.
// Usage: BASE_URL=http://127.0.0.1:PORT [API_KEY=KEY] node page.test.mjs [screenshot.png]
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";

const base = process.env.BASE_URL;
const apiKey = process.env.API_KEY;
if (!base) throw new Error("set BASE_URL");
const screenshot = process.argv[2];
const userDataDir = mkdtempSync(join(tmpdir(), "papersim-chromium-"));

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  viewport: { width: 1280, height: 900 },
});
const problems = [];
const step = (s) => console.log(`browser-test: ${s}`);
try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(30_000);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console error: ${m.text()}`); });
  // Nothing but this server: the page must not need a CDN.
  page.on("request", (r) => { if (!r.url().startsWith(base) && !r.url().startsWith("data:")) problems.push(`external request: ${r.url()}`); });
  page.on("response", (r) => { if (r.status() >= 400) console.log(`browser-test: ${r.status()} ${r.url()}`); });

  step(`loading ${base}/`);
  await page.goto(base + "/");
  if (apiKey) {
    step("the page asks for the API key");
    await page.waitForSelector("#key-form:not([hidden])");
    assert.match(await page.locator("#key-message").innerText(), /needs an API key/);
    await page.fill("#api-key", "not-the-key-0000000000");
    await page.click("#key-button");
    await page.waitForFunction(() => /refused/.test(document.getElementById("key-message").textContent)
      && !document.getElementById("key-form").hidden);
    await page.fill("#api-key", apiKey);
    await page.click("#key-button");
    await page.waitForFunction(() => /\d[\d,]* papers/.test(document.getElementById("library-info").textContent));
    const stored = await page.evaluate(() => [sessionStorage.getItem("papersim-api-key"), localStorage.length, document.cookie]);
    assert.deepEqual(stored, [apiKey, 0, ""]);
    step("a reload keeps the key for the tab without asking again");
    await page.reload();
  }
  await page.waitForFunction(() => /\d[\d,]* papers/.test(document.getElementById("library-info").textContent));
  assert.ok(await page.isHidden("#key-form"), "the key form is still shown");
  assert.equal(await page.title(), "papersim");

  step("searching");
  await page.fill("#q", "neural networks for image recognition");
  await page.click("#search-button");
  await page.waitForSelector("#results .result");
  const results = page.locator("#results .result");
  const n = await results.count();
  assert.ok(n >= 5, `only ${n} results`);
  const first = results.first();
  const firstId = await first.getAttribute("data-id");
  const firstTitle = (await first.locator("h3").innerText()).trim();
  assert.ok(firstTitle.length > 0, "empty title");
  assert.match(await first.locator(".score").innerText(), /^\d+\.\d{3}$/);
  assert.match(await first.locator(".meta").innerText(), /(19|20)\d\d/);
  assert.match(await page.locator("#status").innerText(), /results/);
  // Each search result says why: the paper's sentence closest to the query.
  assert.match(await first.locator(".why").innerText(), /why \(query\): “.+”/);
  step(`first result: ${firstId} ${firstTitle}`);

  step("more like this");
  await first.locator(".more-like-this").click();
  await page.waitForFunction((t) => document.getElementById("results-heading").textContent.includes("More like"), firstTitle);
  await page.waitForSelector("#results .result");
  const similarIds = await page.locator("#results .result").evaluateAll((els) => els.map((e) => e.dataset.id));
  assert.ok(similarIds.length >= 5, `only ${similarIds.length} similar papers`);
  assert.ok(!similarIds.includes(firstId), "the paper itself came back as similar");
  assert.match(await page.locator("#results-heading").innerText(), /More like/);

  step("related-work builder (BibTeX)");
  await page.locator("#results .result .add-seed").first().click();
  await page.waitForSelector("#seeds li");
  await page.fill("#draft", "We train convolutional networks to recognise objects in images and study how depth affects accuracy.");
  await page.fill("#related-k", "5");
  await page.selectOption("#format", "bibtex");
  await page.click("#build");
  await page.waitForFunction(() => document.getElementById("output").value.includes("@misc{"));
  const bib = await page.inputValue("#output");
  assert.equal((bib.match(/@misc\{/g) || []).length, 5, bib);
  assert.ok(await page.isEnabled("#copy"));
  assert.match(await page.locator("#related-status").innerText(), /5 papers/);

  step("related-work builder (Markdown)");
  await page.selectOption("#format", "markdown");
  await page.click("#build");
  await page.waitForFunction(() => /^1\. \[/.test(document.getElementById("output").value));

  step("a bad filter shows the server's error");
  await page.click("summary");
  await page.fill("#since", "last year");
  await page.click("#search-button");
  await page.waitForFunction(() => document.getElementById("status").classList.contains("error"));
  assert.match(await page.locator("#status").innerText(), /filters\.since/);

  if (screenshot) {
    await page.fill("#since", "");
    await page.click("#search-button");
    await page.waitForFunction(() => !document.getElementById("status").classList.contains("error"));
    await page.screenshot({ path: screenshot, fullPage: false });
  }
  // A 422 logs one console error in Chromium ("Failed to load resource"); that one is expected,
  // and so are the 401s before the key was given.
  const unexpected = problems.filter((p) => !/status of 422/.test(p) && !(apiKey && /status of 401/.test(p)));
  assert.deepEqual(unexpected, [], unexpected.join("\n"));
  step("PASS");
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
