// The web console in a real browser (Debian's chromium, headless, driven by
// playwright-core): what an operator does and sees. Run by tests/e2e/console.rs, which
// starts the server, creates the tenants, tokens, schedule and dead letter, and passes
// them in the environment. Prints one JSON line of what it found; exits non-zero (with
// the failed check) otherwise.
//
// Environment: CONSOLE_URL, ACME_TOKEN, GLOBEX_TOKEN, READER_TOKEN (acme, scans:read
// only), ADMIN_TOKEN, SBOM_PATH, SHOTS_DIR, STELLA_TEST_CHROMIUM, STELLA_TEST_PLAYWRIGHT
// (the playwright-core package folder).

import assert from "node:assert/strict";
import path from "node:path";
import { pathToFileURL } from "node:url";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};

const base = env("CONSOLE_URL");
const shots = env("SHOTS_DIR");
const { chromium } = await import(
  pathToFileURL(path.join(env("STELLA_TEST_PLAYWRIGHT"), "index.mjs")).href
);

const browser = await chromium.launch({
  executablePath: env("STELLA_TEST_CHROMIUM"),
  headless: true,
  // Tests run as root in containers, where chromium's sandbox cannot start.
  args: ["--no-sandbox"],
});
const found = {};

async function signIn(token) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 820 }, timezoneId: "Europe/Paris" });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const response = await page.goto(`${base}/console`);
  assert.equal(response.status(), 200);
  assert.match(page.url(), /\/console\/sign-in$/, "an unsigned visitor is sent to sign in");
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/console`);
  return { context, page };
}

/** What a screen reader and a keyboard need on every page: one h1, a label for every
 * field, a name for every button and link, a title for every chart, and a skip link
 * that is the first stop of the Tab key and moves the focus to the content. */
async function checkAccessible(page, name) {
  const problems = await page.evaluate(() => {
    const out = [];
    if (document.querySelectorAll("h1").length !== 1) out.push("not exactly one h1");
    if (!document.documentElement.lang) out.push("no lang");
    for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
      if (el.labels.length === 0 && !el.getAttribute("aria-label")) out.push(`unlabelled ${el.outerHTML.slice(0, 80)}`);
    }
    for (const el of document.querySelectorAll("button, a[href]")) {
      if (!(el.innerText || el.getAttribute("aria-label") || "").trim()) out.push(`nameless ${el.outerHTML.slice(0, 80)}`);
    }
    for (const svg of document.querySelectorAll("svg")) {
      if (svg.getAttribute("role") !== "img" || !svg.getAttribute("aria-labelledby")) out.push("an svg without role=img and a title");
    }
    return out;
  });
  assert.deepEqual(problems, [], `${name}: ${problems.join("; ")}`);
  if (await page.locator("a.skip").count()) {
    await page.locator("body").focus();
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.className), "skip", `${name}: Tab reaches the skip link first`);
    await page.keyboard.press("Enter");
    assert.equal(await page.evaluate(() => document.activeElement.id), "main", `${name}: the skip link moves the focus to the content`);
    await page.evaluate(() => document.activeElement.blur());
  }
}

async function shot(page, name) {
  await checkAccessible(page, name);
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/** Posts a form from inside the page (a real browser form post, same origin). */
async function postForm(page, action, fields) {
  const [response] = await Promise.all([
    page.waitForNavigation(),
    page.evaluate(
      ({ action, fields }) => {
        const form = document.createElement("form");
        form.method = "post";
        form.action = action;
        for (const [name, value] of Object.entries(fields)) {
          const input = document.createElement("input");
          input.type = "hidden";
          input.name = name;
          input.value = value;
          form.append(input);
        }
        document.body.append(form);
        form.submit();
      },
      { action, fields },
    ),
  ]);
  return response;
}

try {
  // A wrong token is refused on the sign-in page.
  {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/console/sign-in`);
    await page.getByLabel("API token").fill("stella_not_a_token_at_all_0000");
    const [response] = await Promise.all([
      page.waitForNavigation(),
      page.getByRole("button", { name: "Sign in" }).click(),
    ]);
    assert.equal(response.status(), 401);
    await page.getByRole("alert").getByText("unknown, revoked or expired").waitFor();
    await context.close();
  }

  // ---- tenant acme ----------------------------------------------------------------
  const { context, page } = await signIn(env("ACME_TOKEN"));
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "stella_console");
  assert.ok(session, "a session cookie");
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Strict");
  assert.equal(session.path, "/console");
  assert.ok(!session.value.startsWith("stella_"), "the cookie is not the token");
  assert.equal(await page.evaluate(() => document.cookie), "", "the page's script cannot read the session");
  assert.equal(await page.evaluate(() => localStorage.length + sessionStorage.length), 0, "nothing in web storage");
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.getByRole("rowheader", { name: "acme" }).waitFor();

  // Submit a scan from a file, then watch its progress bar reach "completed" through
  // the stream.
  await page.getByRole("link", { name: "Scans", exact: true }).click();
  await page.getByRole("heading", { name: "Scans" }).waitFor();
  await page.getByLabel("SBOM file (CycloneDX or SPDX JSON)").setInputFiles(env("SBOM_PATH"));
  await page.waitForFunction(() => document.getElementById("sbom").value.includes("left-pad"));
  await page.getByLabel("Name (optional: what the SBOM describes)").fill("console-app");
  await page.getByRole("button", { name: "Submit scan" }).click();
  await page.waitForURL(/\/console\/scans\/[^/?]+$/);
  found.scan = page.url().split("/").pop();
  // `data-stream-state` is written by the stream's events only: "completed" here means
  // the end event came through the stream.
  await page.waitForSelector('.progress[data-live="ended"][data-stream-state="completed"]', { timeout: 90_000 });
  // Then the page is drawn again with the verdict and findings.
  await page.getByTestId("findings").getByText("NPM-1", { exact: true }).waitFor();
  await page.waitForSelector('.progress[data-live="ended"][data-stream-state="completed"]');
  assert.equal(await page.locator("#progress-bar").evaluate((el) => el.value), 100);
  await page.getByTestId("live-state").getByText("completed").waitFor();
  await shot(page, "scan");

  // A finding's explain trace.
  await page.getByRole("link", { name: /Explain NPM-1/ }).click();
  await page.getByRole("heading", { name: "Decision chain" }).waitFor();
  const steps = await page.getByTestId("trace").locator("li").count();
  assert.ok(steps >= 1, "the trace has its steps");
  found.trace_steps = steps;
  await shot(page, "finding");

  // Jobs: filters live in the URL.
  await page.goto(`${base}/console/jobs?state=failed`);
  // Times: UTC shown, the local time on hover.
  const title = await page.locator("time").first().getAttribute("title");
  assert.match(title, /local time/);
  assert.equal(await page.getByLabel("State").inputValue(), "failed");
  const failedRows = await page.getByTestId("jobs").locator("tbody tr").count();
  assert.ok(failedRows >= 1, "the dead letter's job is listed as failed");
  await page.getByLabel("State").selectOption("succeeded");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForURL(/state=succeeded/);
  await shot(page, "jobs");
  await page.getByTestId("jobs").getByRole("link").first().click();
  await page.getByRole("heading", { name: "Steps and attempts" }).waitFor();
  await page.waitForSelector('.progress[data-live="ended"]');
  await shot(page, "job");

  // Replay a dead letter, with a reason.
  await page.getByRole("link", { name: "Dead letters" }).click();
  const letters = page.getByTestId("dead-letter");
  await letters.first().waitFor();
  found.dead_letters_before = await letters.count();
  const letterId = await letters.first().locator("h2 code").innerText();
  await shot(page, "dead-letters");
  // The reason is required: the browser does not send the form without one.
  await letters.first().getByRole("button", { name: "Replay" }).click();
  assert.ok(!page.url().includes("notice="), "sent without a reason");
  await letters.first().getByLabel("Reason").fill("fixed the worker; try again");
  await letters.first().getByRole("button", { name: "Replay" }).click();
  await page.getByRole("status").getByText("replayed").waitFor();
  assert.equal(await page.locator("article h2 code", { hasText: letterId }).count(), 0, "the replayed letter left the list");

  // Pause a schedule.
  await page.getByRole("link", { name: "Schedules" }).click();
  const nightly = page.locator('tr[data-schedule="nightly"]');
  await nightly.getByText("active").waitFor();
  await page.getByRole("button", { name: "Pause nightly" }).click();
  await page.getByRole("status").getByText("Schedule nightly paused.").waitFor();
  await nightly.locator(".badge.paused").waitFor();
  await shot(page, "schedules");

  // A form posted without the CSRF token, or with another, is refused; nothing changes.
  for (const fields of [{}, { csrf: "0".repeat(64) }]) {
    const refused = await postForm(page, "/console/schedules/nightly/resume", fields);
    assert.equal(refused.status(), 403, `resume with ${JSON.stringify(fields)}`);
    await page.getByRole("alert").getByText("CSRF").waitFor();
  }
  await page.goto(`${base}/console/schedules`);
  await nightly.locator(".badge.paused").waitFor();

  // Overview, with the chart of dispositions.
  await page.goto(`${base}/console`);
  await page.getByTestId("chart-pass").waitFor();
  found.chart = {
    pass: await page.getByTestId("chart-pass").innerText(),
    warn: await page.getByTestId("chart-warn").innerText(),
    block: await page.getByTestId("chart-block").innerText(),
  };
  await shot(page, "overview");

  // The scans list follows the tenant's events: a scan submitted elsewhere (the API)
  // is announced when it completes, without a reload.
  await page.goto(`${base}/console/scans`);
  await page.waitForFunction(() => document.querySelector("[data-live-events]") !== null);
  const submitted = await fetch(`${base}/api/v1/scans?name=from-the-api`, {
    method: "POST",
    headers: { authorization: `Bearer ${env("ACME_TOKEN")}`, "content-type": "application/json" },
    body: await (await import("node:fs/promises")).readFile(env("SBOM_PATH")),
  });
  assert.equal(submitted.status, 202);
  await page.getByTestId("live-news").getByText("the last from-the-api (warn)").waitFor({ timeout: 60_000 });
  await page.getByTestId("live-news").getByRole("link", { name: "Reload the list" }).click();
  await page.getByTestId("scans").getByText("from-the-api").waitFor();

  // Sign out: the session ends.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/console\/sign-in$/);
  await page.goto(`${base}/console/jobs`);
  assert.match(page.url(), /\/console\/sign-in$/, "signed out");
  await context.close();

  // ---- tenant globex sees none of acme's items -------------------------------------
  {
    const { context, page } = await signIn(env("GLOBEX_TOKEN"));
    for (const list of ["/console/scans", "/console/jobs", "/console/dead-letters", "/console/schedules", "/console/exports"]) {
      await page.goto(`${base}${list}`);
      const html = await page.content();
      assert.ok(!html.includes(found.scan), `${list} shows acme's scan`);
      assert.ok(!html.includes("nightly"), `${list} shows acme's schedule`);
      assert.ok(!html.includes("console-app"), `${list} shows acme's scan name`);
    }
    await page.goto(`${base}/console/dead-letters`);
    await page.getByTestId("no-dead-letters").waitFor();
    for (const url of [`/console/scans/${found.scan}`, `/console/jobs/${found.scan}`, `/console/scans/${found.scan}/finding?vulnerability=NPM-1&purl=pkg%3Anpm%2Fleft-pad%401.3.0`]) {
      const response = await page.goto(`${base}${url}`);
      assert.equal(response.status(), 404, url);
    }
    const stream = await page.goto(`${base}/console/scans/${found.scan}/stream`);
    assert.equal(stream.status(), 404, "another tenant's stream");
    // globex's own overview shows only globex.
    await page.goto(`${base}/console`);
    assert.equal(await page.getByRole("rowheader", { name: "acme" }).count(), 0);
    await context.close();
  }

  // ---- a token with scans:read only sees scans, not jobs, and cannot submit ---------
  {
    const { context, page } = await signIn(env("READER_TOKEN"));
    // The overview shows the chart (scans:read) and says why the job figures are absent.
    const overview = await page.goto(`${base}/console`);
    assert.equal(overview.status(), 200);
    await page.getByTestId("no-jobs-scope").waitFor();
    await page.getByTestId("chart-warn").waitFor();
    assert.equal(await page.getByRole("rowheader", { name: "acme" }).count(), 0);
    await page.goto(`${base}/console/scans`);
    await page.getByTestId("scans").getByText("console-app").waitFor();
    assert.equal(await page.getByTestId("submit-scan").count(), 0, "no submit form without scans:write");
    const jobs = await page.goto(`${base}/console/jobs`);
    assert.equal(jobs.status(), 403);
    await page.getByRole("alert").getByText("jobs:read").waitFor();
    await context.close();
  }

  // ---- an administrator picks a tenant ----------------------------------------------
  {
    const { context, page } = await signIn(env("ADMIN_TOKEN"));
    await page.getByRole("rowheader", { name: "acme" }).waitFor();
    await page.getByRole("rowheader", { name: "globex" }).waitFor();
    const jobs = await page.goto(`${base}/console/jobs`);
    assert.equal(jobs.status(), 400, "an administrator names a tenant first");
    await page.goto(`${base}/console/system`);
    await page.getByTestId("tree").waitFor();
    await shot(page, "supervision");
    await Promise.all([page.waitForNavigation(), page.getByLabel("Tenant").selectOption("acme")]);
    assert.match(page.url(), /\/console\/system$/, "back where the switch was made");
    await page.goto(`${base}/console/scans`);
    await page.getByTestId("scans").getByText("console-app").waitFor();
    await context.close();
  }

  console.log(JSON.stringify(found));
} finally {
  await browser.close();
}
