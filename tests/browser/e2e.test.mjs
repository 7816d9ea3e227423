// End-to-end tests of the batchcred web UI: the real `batchcred serve`
// on loopback, driven in headless Chromium through playwright-core. The
// scenarios follow the "Configuring credentials" document and share one
// server, so they run in order. Each saves a screenshot under
// target/screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";
import { chromium } from "playwright-core";
import { startCodeHostEmulator } from "./codehost-emulator.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(root, "target");
const binary = process.env.BATCHCRED_BIN ?? path.join(targetDir, "debug", "batchcred");
const screenshots = path.join(root, "target", "screenshots");
const PASSWORD = "correct horse battery";
// Token-shaped values that must never appear on any page.
const newToken = (prefix) => `${prefix}${randomUUID().replaceAll("-", "")}`;
const GOOD_TOKEN = newToken("ghp_");
const UNDER_SCOPED_TOKEN = newToken("ghp_");
const GITLAB_TOKEN = newToken("glpat-");
const GLOBAL_TOKEN = newToken("bbs_");
const TRACKING_TOKEN = newToken("ghp_");
const BBCLOUD_TOKEN = newToken("ATATT");
const AZURE_TOKEN = newToken("azp");
const GERRIT_PASSWORD = newToken("gerrit");
const SECRETS = [
  GOOD_TOKEN,
  UNDER_SCOPED_TOKEN,
  GITLAB_TOKEN,
  GLOBAL_TOKEN,
  TRACKING_TOKEN,
  BBCLOUD_TOKEN,
  AZURE_TOKEN,
  GERRIT_PASSWORD,
  PASSWORD,
];
const DAY = 24 * 60 * 60 * 1000;
const inDays = (days) => new Date(Date.now() + days * DAY);

// The code hosts, served by the emulator on loopback.
let codehosts;
let GITHUB;
let GITLAB;
let BITBUCKET;

let server;
let dataDir;
let base;
let browser;
let admin; // the site admin's page
let user; // a regular user's page

/** Starts the server on a free port; resolves with its base URL. */
function startServer() {
  dataDir = mkdtempSync(path.join(tmpdir(), "batchcred-e2e-"));
  server = spawn(binary, ["serve", "--listen", "127.0.0.1:0", "--drain-secs", "0", "--data-dir", dataDir], {
    env: { ...process.env, RUST_LOG: "info", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let logs = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${logs}`)), 30000);
    const read = (chunk) => {
      logs += chunk.toString();
      // The log line is `... listening address=127.0.0.1:PORT`.
      const match = logs.replace(/\x1b\[[0-9;]*m/g, "").match(/listening\s+address=(\S+)/);
      if (match) {
        clearTimeout(timer);
        resolve(`http://${match[1]}`);
      }
    };
    server.stdout.on("data", read);
    server.stderr.on("data", read);
    server.on("error", (error) => reject(new Error(`cannot start ${binary}: ${error.message}`)));
    server.on("exit", (code) => reject(new Error(`server exited with ${code}:\n${logs}`)));
  });
}

async function newPage(width = 1100, height = 800) {
  const context = await browser.newContext({ viewport: { width, height } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  context.setDefaultTimeout(10000);
  const page = await context.newPage();
  // Every page this test sees is checked for leaked secrets.
  page.on("response", async (response) => {
    const type = response.headers()["content-type"] ?? "";
    if (!type.startsWith("text/html")) return;
    const body = await response.text().catch(() => "");
    for (const secret of SECRETS) {
      if (body.includes(secret)) page.leaked = `${response.url()} contains a secret`;
    }
  });
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(screenshots, `${name}.png`), fullPage: true });
}

/** Clicks something that navigates, and waits for the new page. */
async function clickAndLoad(page, locator) {
  await Promise.all([page.waitForEvent("framenavigated"), locator.click()]);
  await page.waitForLoadState("load");
}

function row(page, url) {
  return page.locator(`li.host-row[data-url="${url}"]`);
}

async function signIn(page, username, password) {
  await page.goto(`${base}/sign-in`);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await clickAndLoad(page, page.getByRole("button", { name: "Sign in" }));
}

/** Opens user settings → Batch Changes through the avatar menu. */
async function openSettings(page) {
  await page.locator("details.menu summary").click();
  await clickAndLoad(page, page.getByRole("link", { name: "Settings" }));
  await clickAndLoad(page, page.locator("nav.sidebar").getByRole("link", { name: "Batch Changes" }));
  assert.match(page.url(), /\/user\/settings\/batch-changes$/);
}

async function addToken(page, url, token) {
  await clickAndLoad(page, row(page, url).getByRole("link", { name: "Add token" }));
  const dialog = page.locator("dialog[open]");
  // Labelled after the kind's secret: "Personal access token", "HTTP access token", …
  await dialog.locator("#token").fill(token);
  await clickAndLoad(page, dialog.getByRole("button", { name: "Add token" }));
}

before(async () => {
  mkdirSync(screenshots, { recursive: true });
  codehosts = await startCodeHostEmulator({
    // No `workflow` scope: accepted, with a warning.
    [GOOD_TOKEN]: {
      owner: "bob-on-github",
      scopes: ["repo", "admin:org", "user", "read:discussion"],
      expiresAt: inDays(90),
    },
    [UNDER_SCOPED_TOKEN]: { owner: "bob-on-github", scopes: ["repo", "user:email"] },
    // Expires within a week: accepted, and flagged.
    [GITLAB_TOKEN]: {
      owner: "bob-on-gitlab",
      scopes: ["api", "read_repository", "write_repository"],
      expiresAt: inDays(3),
    },
    [GLOBAL_TOKEN]: { owner: "batch-bot", scopes: ["PROJECT_WRITE", "REPO_WRITE"] },
    [TRACKING_TOKEN]: {
      owner: "bob-on-github",
      scopes: ["repo", "admin:org", "user", "read:discussion", "workflow"],
    },
    // The kinds that check a username with the token.
    [BBCLOUD_TOKEN]: {
      owner: "bob-bb",
      username: "bob@example.com",
      scopes: [
        "read:user:bitbucket",
        "read:repository:bitbucket",
        "write:repository:bitbucket",
        "read:pullrequest:bitbucket",
        "write:pullrequest:bitbucket",
      ],
    },
    [AZURE_TOKEN]: { owner: "bob@example.com", username: "bob", scopes: [] },
    [GERRIT_PASSWORD]: { owner: "Bob Example", username: "bob", scopes: [] },
  });
  GITHUB = codehosts.url("github");
  GITLAB = codehosts.url("gitlab");
  BITBUCKET = codehosts.url("bitbucket");
  base = await startServer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-background-networking",
      "--disable-gpu",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  admin = await newPage();
  user = await newPage();
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  await codehosts?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test("first run creates the site admin", async () => {
  await admin.goto(base);
  assert.match(admin.url(), /\/site-init$/);
  await admin.getByLabel("Username").fill("alice");
  await admin.getByLabel("Password").fill(PASSWORD);
  await shot(admin, "01-first-run");
  await clickAndLoad(admin, admin.getByRole("button", { name: "Create site admin account" }));
  assert.match(admin.url(), /\/user\/settings\/batch-changes$/);
  assert.equal(await admin.locator("h1").textContent(), "Batch Changes");
  // The first-run page is gone once there is an admin.
  const again = await admin.goto(`${base}/site-init`);
  assert.match(again.url(), /\/sign-in$|\/batch-changes$/);
});

test("site admin adds code hosts and a user", async () => {
  await admin.locator("details.menu summary").click();
  await clickAndLoad(admin, admin.getByRole("link", { name: "Site admin" }));
  await clickAndLoad(admin, admin.getByRole("link", { name: "Code hosts" }));
  for (const [kind, url, git] of [
    ["GitHub", GITHUB, "http"],
    ["GitLab", GITLAB, "ssh"],
    ["Bitbucket Server", BITBUCKET, "http"],
  ]) {
    await admin.getByLabel("Kind").selectOption({ label: kind });
    await admin.getByLabel("URL", { exact: true }).fill(url);
    await admin.getByLabel("Git URL type").selectOption(git);
    await clickAndLoad(admin, admin.getByRole("button", { name: "Add code host" }));
  }
  // A duplicate is refused with the service's message.
  await admin.getByLabel("URL", { exact: true }).fill(GITHUB);
  await clickAndLoad(admin, admin.getByRole("button", { name: "Add code host" }));
  await admin.getByRole("alert").waitFor();
  assert.equal(await admin.locator("tbody tr").count(), 3);
  await shot(admin, "02-code-hosts");

  await clickAndLoad(admin, admin.getByRole("link", { name: "Users" }));
  await admin.getByLabel("Username").fill("bob");
  await admin.getByLabel("Password").fill(PASSWORD);
  await clickAndLoad(admin, admin.getByRole("button", { name: "Create user" }));
  assert.equal(await admin.locator("tbody tr").count(), 2);
  await shot(admin, "03-users");
});

test("a user signs in and sees red circles", async () => {
  await signIn(user, "bob", "wrong password");
  assert.match(await user.getByRole("alert").textContent(), /wrong username or password/);
  await signIn(user, "bob", PASSWORD);
  await openSettings(user);
  assert.equal(await user.locator(".indicator-missing").count(), 3);
  assert.equal(await user.locator(".indicator-ok").count(), 0);
  assert.equal(await user.locator(".kind-icon").count(), 3);
  await shot(user, "04-no-tokens");
});

test("a bad token shows the error in the modal and stores nothing", async () => {
  await clickAndLoad(user, row(user, GITHUB).getByRole("link", { name: "Add token" }));
  const dialog = user.locator("dialog[open]");
  assert.equal(
    await dialog.locator("h2").textContent(),
    `GitHub Batch Changes token for ${GITHUB}`,
  );
  assert.ok(await dialog.evaluate((d) => d.matches(":modal")), "the dialog is modal");
  assert.equal(await user.evaluate(() => document.activeElement.id), "token");
  const scopes = await dialog.locator(".scopes li code").allTextContents();
  assert.deepEqual(scopes, ["repo", "read:org", "user:email", "read:discussion"]);
  assert.equal(
    await dialog.getByRole("link", { name: "Create one on GitHub" }).getAttribute("href"),
    `${GITHUB}/settings/tokens`,
  );
  await shot(user, "05-add-token-modal");
  await dialog.getByLabel("Personal access token").fill("not a token");
  await clickAndLoad(user, dialog.getByRole("button", { name: "Add token" }));
  const error = user.locator("dialog[open] [role=alert]");
  assert.match(await error.textContent(), /whitespace/);
  assert.equal(await user.locator("dialog[open] #token").inputValue(), "");
  await user.locator("dialog[open] #token").fill(UNDER_SCOPED_TOKEN);
  await clickAndLoad(user, user.locator("dialog[open]").getByRole("button", { name: "Add token" }));
  const message = await user.locator("dialog[open] [role=alert]").textContent();
  assert.match(message, new RegExp(`GitHub ${GITHUB}.*read:org.*read:discussion`, "s"));
  assert.doesNotMatch(message, /user:email/);
  await shot(user, "06-add-token-error");
  await user.goto(`${base}/user/settings/batch-changes`);
  assert.equal(await user.locator(".indicator-missing").count(), 3);
});

test("a good token gives a green tick", async () => {
  await addToken(user, GITHUB, GOOD_TOKEN);
  assert.match(user.url(), /\/user\/settings\/batch-changes$/);
  assert.equal(await row(user, GITHUB).locator(".indicator-ok").count(), 1);
  assert.equal(await user.locator(".indicator-missing").count(), 2);
  const details = row(user, GITHUB).locator(".credential-meta");
  assert.match(await details.textContent(), /of\s+bob-on-github.*expires \d{4}-\d{2}-\d{2}/s);
  assert.match(await row(user, GITHUB).locator(".credential-warning").textContent(), /workflow/);
  assert.equal(await row(user, GITHUB).locator(".badge").count(), 0);
  await shot(user, "07-one-token");
});

test("checking again flags a token the code host no longer accepts", async () => {
  codehosts.revoke(GOOD_TOKEN);
  await clickAndLoad(user, row(user, GITHUB).getByRole("button", { name: "Check now" }));
  const attention = row(user, GITHUB).locator(".attention");
  assert.match(await attention.textContent(), /Needs attention.*last check failed.*GitHub/s);
  // Still configured: the owner decides to replace or remove it.
  assert.equal(await row(user, GITHUB).locator(".indicator-ok").count(), 1);
  await shot(user, "07b-check-failed");
});

test("an SSH code host shows the public key, again later too", async () => {
  await addToken(user, GITLAB, GITLAB_TOKEN);
  const dialog = user.locator("dialog[open]");
  const key = await dialog.locator("textarea").inputValue();
  assert.match(key, /^ssh-ed25519 \S+/);
  // The comment names the instance that made the key.
  assert.ok(key.endsWith(` batchcred@${new URL(base).host}`), key);
  await dialog.getByRole("button", { name: "Copy" }).click();
  await dialog.getByRole("button", { name: "Copied" }).waitFor();
  assert.equal(await user.evaluate(() => navigator.clipboard.readText()), key);
  await shot(user, "08-ssh-key");
  await clickAndLoad(user, dialog.getByRole("link", { name: "Done" }));
  assert.equal(await row(user, GITLAB).locator(".indicator-ok").count(), 1);
  // It expires in three days, so it is flagged.
  assert.match(await row(user, GITLAB).locator(".attention").textContent(), /expires on/);
  // A key made with the token was shown just now: nothing is pending.
  assert.equal(await row(user, GITLAB).locator(".key-pending").count(), 0);
  await clickAndLoad(user, row(user, GITLAB).getByRole("link", { name: "View public key" }));
  assert.equal(await user.locator("dialog[open] textarea").inputValue(), key);
  // Escape closes the modal and returns to the list.
  await Promise.all([user.waitForEvent("framenavigated"), user.keyboard.press("Escape")]);
  await user.waitForLoadState("load");
  assert.equal(await user.locator("dialog[open]").count(), 0);
});

test("a global credential shows a notice on the user's page", async () => {
  await admin.goto(`${base}/site-admin/batch-changes`);
  await addToken(admin, BITBUCKET, GLOBAL_TOKEN);
  assert.equal(await row(admin, BITBUCKET).locator(".indicator-ok").count(), 1);
  await shot(admin, "09-global-tokens");
  await user.reload();
  const notice = row(user, BITBUCKET).locator(".notice");
  assert.match(await notice.textContent(), /global token.*under your own name/s);
  assert.equal(await row(user, BITBUCKET).locator(".indicator-missing").count(), 1);
  assert.equal(await row(user, GITHUB).locator(".notice").count(), 0);
  await shot(user, "10-global-notice");
});

test("a global credential policy leaves out the users it does not list", async () => {
  await admin.goto(`${base}/site-admin/code-hosts`);
  const hostRow = admin.locator("tbody tr", { hasText: BITBUCKET });
  await clickAndLoad(admin, hostRow.getByRole("link", { name: "Edit" }));
  let dialog = admin.locator("dialog[open]");
  await dialog.getByLabel("Only these users").check();
  await dialog.getByLabel("Usernames (separated by commas)").fill("alice");
  await dialog.getByLabel(/Only for repositories matching/).fill("acme/*");
  await shot(admin, "09c-policy");
  await clickAndLoad(admin, dialog.getByRole("button", { name: "Save" }));
  assert.match(await hostRow.locator(".policy-summary").textContent(), /alice/);
  await user.reload();
  assert.equal(await row(user, BITBUCKET).locator(".notice").count(), 0);

  // Back to everyone, so the scenarios below see the notice as before.
  await clickAndLoad(admin, hostRow.getByRole("link", { name: "Edit" }));
  dialog = admin.locator("dialog[open]");
  await dialog.getByLabel("Everyone").check();
  await dialog.getByLabel("Usernames (separated by commas)").fill("");
  await dialog.getByLabel(/Only for repositories matching/).fill("");
  await clickAndLoad(admin, dialog.getByRole("button", { name: "Save" }));
  await user.reload();
  assert.equal(await row(user, BITBUCKET).locator(".notice").count(), 1);
});

test("switching a code host to SSH asks for the new key to be added", async () => {
  await admin.goto(`${base}/site-admin/code-hosts`);
  const hostRow = admin.locator("tbody tr", { hasText: BITBUCKET });
  await clickAndLoad(admin, hostRow.getByRole("link", { name: "Edit" }));
  const dialog = admin.locator("dialog[open]");
  await dialog.getByLabel("SSH host key").fill("not a host key");
  await dialog.getByLabel("Git URL type").selectOption("ssh");
  await clickAndLoad(admin, dialog.getByRole("button", { name: "Save" }));
  await admin.locator("dialog[open] [role=alert]").waitFor();
  await admin.locator("dialog[open]").getByLabel("SSH host key").fill("");
  await clickAndLoad(admin, admin.locator("dialog[open]").getByRole("button", { name: "Save" }));
  assert.match(await hostRow.textContent(), /ssh/);

  await admin.goto(`${base}/site-admin/batch-changes`);
  const pending = row(admin, BITBUCKET).locator(".key-pending");
  assert.match(await pending.textContent(), /Add the SSH public key/);
  await clickAndLoad(admin, row(admin, BITBUCKET).getByRole("link", { name: "View public key" }));
  assert.match(await admin.locator("dialog[open] textarea").inputValue(), /^ssh-ed25519 /);
  await shot(admin, "09b-key-pending");
  await admin.goto(`${base}/site-admin/batch-changes`);
  await clickAndLoad(admin, pending.getByRole("button", { name: "I've added the key" }));
  assert.equal(await row(admin, BITBUCKET).locator(".key-pending").count(), 0);
});

test("removing a token asks first and turns the circle red", async () => {
  await clickAndLoad(user, row(user, GITHUB).getByRole("link", { name: "Remove" }));
  const dialog = user.locator("dialog[open]");
  assert.match(await dialog.locator("h2").textContent(), /Remove the GitHub token/);
  await shot(user, "11-remove-confirm");
  await clickAndLoad(user, dialog.getByRole("button", { name: "Remove token" }));
  assert.equal(await row(user, GITHUB).locator(".indicator-missing").count(), 1);
  assert.equal(await row(user, GITHUB).getByRole("link", { name: "Add token" }).count(), 1);
});

test("site admin pages are 404 for other users", async () => {
  for (const page of ["batch-changes", "code-hosts", "users"]) {
    const response = await user.goto(`${base}/site-admin/${page}`);
    assert.equal(response.status(), 404, page);
  }
  await shot(user, "14-not-found");
  await user.goto(`${base}/user/settings/batch-changes`);
  await user.locator("details.menu summary").click();
  assert.equal(await user.getByRole("link", { name: "Site admin" }).count(), 0);
});

test("the settings page works at phone width", async () => {
  await user.setViewportSize({ width: 390, height: 844 });
  await user.goto(`${base}/user/settings/batch-changes`);
  const overflow = await user.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  assert.ok(overflow <= 0, `page scrolls sideways by ${overflow}px`);
  await shot(user, "12-phone");
  await clickAndLoad(user, row(user, GITHUB).getByRole("link", { name: "Add token" }));
  await shot(user, "13-phone-modal");
});

test("site admin removes a code host after confirming", async () => {
  await admin.goto(`${base}/site-admin/code-hosts`);
  const hostRow = admin.locator("tbody tr", { hasText: BITBUCKET });
  await clickAndLoad(admin, hostRow.getByRole("link", { name: "Remove" }));
  const dialog = admin.locator("dialog[open]");
  assert.match(await dialog.locator("h2").textContent(), /Remove the code host/);
  await clickAndLoad(admin, dialog.getByRole("button", { name: "Remove code host" }));
  assert.equal(await admin.locator("tbody tr").count(), 2);
  await shot(admin, "15-code-host-removed");
  await user.goto(`${base}/user/settings/batch-changes`);
  assert.equal(await row(user, BITBUCKET).count(), 0);
});

test("an access token is shown once, works, and stops working when revoked", async () => {
  const whoAmI = async (token) => {
    const response = await fetch(`${base}/.api/graphql`, {
      method: "POST",
      headers: { Authorization: `token ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ query: "{ currentUser { username } }" }),
    });
    const body = await response.json().catch(() => ({}));
    return body?.data?.currentUser?.username ?? `HTTP ${response.status}`;
  };
  await user.goto(`${base}/user/settings/access-tokens`);
  await user.getByLabel("Note (what the token is for)").fill("deploy script");
  await clickAndLoad(user, user.getByRole("button", { name: "Create token" }));
  const token = await user.locator("#new-token").inputValue();
  assert.match(token, /^bcp_/);
  await shot(user, "16a-token-created");
  assert.equal(await whoAmI(token), "bob");

  // Shown only once: the list has its prefix and note, never the token.
  await user.goto(`${base}/user/settings/access-tokens`);
  assert.equal(await user.locator("#new-token").count(), 0);
  const tokenRow = user.locator("tbody tr", { hasText: "deploy script" });
  assert.ok((await tokenRow.textContent()).includes(token.slice(0, 12)));
  assert.ok(!(await user.content()).includes(token));

  await clickAndLoad(user, tokenRow.getByRole("link", { name: "Revoke" }));
  const dialog = user.locator("dialog[open]");
  assert.match(await dialog.locator("h2").textContent(), /Revoke the token/);
  await clickAndLoad(user, dialog.getByRole("button", { name: "Revoke token" }));
  assert.equal(await user.locator("tbody tr", { hasText: "deploy script" }).count(), 0);
  assert.equal(await whoAmI(token), "HTTP 401");
});

test("the changesets page imports, closes and live-refreshes a pull request", async () => {
  await user.setViewportSize({ width: 1100, height: 800 });
  codehosts.addPull("acme/web", 7, "Fix the build", "fix/build");
  await user.goto(`${base}/user/settings/batch-changes`);
  await addToken(user, GITHUB, TRACKING_TOKEN);
  await clickAndLoad(user, user.locator("nav.top-nav").getByRole("link", { name: "Changesets" }));
  assert.match(user.url(), /\/batch-changes\/changesets$/);
  assert.match(await user.locator(".count").textContent(), /0 changesets/);

  // A bad number is an error on the page; nothing is stored.
  await user.getByLabel("Code host", { exact: true }).last().selectOption({ label: `GitHub ${GITHUB}` });
  await user.getByLabel("Repository").fill("acme/web");
  await user.getByLabel("Pull request number").fill("seven");
  await clickAndLoad(user, user.getByRole("button", { name: "Import" }));
  assert.match(await user.getByRole("alert").textContent(), /number/);
  assert.match(await user.locator(".count").textContent(), /0 changesets/);

  await user.getByLabel("Pull request number").fill("7");
  await clickAndLoad(user, user.getByRole("button", { name: "Import" }));
  const tracked = user.locator("table.changesets tbody tr", { hasText: "Fix the build" });
  assert.equal(await tracked.getAttribute("data-status"), "open");
  assert.match(await tracked.textContent(), /fix\/build/);
  assert.equal(await tracked.getByRole("link", { name: "#7" }).count(), 1);
  await shot(user, "17-changesets");

  // Closing queues a job; the table refreshes by itself when it is done.
  await clickAndLoad(user, tracked.getByRole("button", { name: "Close" }));
  await user
    .locator('table.changesets tbody tr[data-status="closed"]', { hasText: "Fix the build" })
    .waitFor({ timeout: 20000 });
  const closed = user.locator("table.changesets tbody tr", { hasText: "Fix the build" });
  assert.equal(await closed.getByRole("button", { name: "Reopen" }).count(), 1);
  await shot(user, "18-changeset-closed");

  // Filters are plain links: open shows none now.
  await user.getByLabel("Status").selectOption("open");
  await clickAndLoad(user, user.getByRole("button", { name: "Filter" }));
  assert.match(user.url(), /status=open/);
  assert.match(await user.locator(".count").textContent(), /0 changesets/);

  await user.setViewportSize({ width: 390, height: 844 });
  await user.goto(`${base}/batch-changes/changesets`);
  const overflow = await user.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  assert.ok(overflow <= 0, `page scrolls sideways by ${overflow}px`);
  await shot(user, "19-changesets-phone");
});

test("tokens for Bitbucket Cloud, Azure DevOps and Gerrit go with a username", async () => {
  const BBCLOUD = codehosts.url("bbcloud");
  const AZURE = codehosts.url("azure/DefaultCollection");
  const GERRIT = codehosts.url("gerrit");
  await admin.goto(`${base}/site-admin/code-hosts`);
  for (const [kind, url] of [
    ["Bitbucket Cloud", BBCLOUD],
    ["Azure DevOps", AZURE],
    ["Gerrit", GERRIT],
  ]) {
    await admin.getByLabel("Kind").selectOption({ label: kind });
    await admin.getByLabel("URL", { exact: true }).fill(url);
    await admin.getByLabel("Git URL type").selectOption("http");
    await clickAndLoad(admin, admin.getByRole("button", { name: "Add code host" }));
    assert.equal(await admin.getByRole("alert").count(), 0, `${kind} was refused`);
  }

  await user.goto(`${base}/user/settings/batch-changes`);
  const kinds = [
    {
      kind: "Bitbucket Cloud",
      url: BBCLOUD,
      username: "bob@example.com",
      usernameLabel: /Atlassian account email/,
      tokenLabel: "API token or app password",
      token: BBCLOUD_TOKEN,
      scopes: [
        "read:user:bitbucket",
        "read:repository:bitbucket",
        "write:repository:bitbucket",
        "read:pullrequest:bitbucket",
        "write:pullrequest:bitbucket",
      ],
      tokenPage: "https://id.atlassian.com/manage-profile/security/api-tokens",
      account: "bob-bb",
    },
    {
      kind: "Azure DevOps",
      url: AZURE,
      username: "bob",
      usernameLabel: /Username on Azure DevOps/,
      tokenLabel: "Personal access token",
      token: AZURE_TOKEN,
      scopes: ["vso.code_write", "vso.profile"],
      tokenPage: `${AZURE}/_usersSettings/tokens`,
      account: "bob@example.com",
    },
    {
      kind: "Gerrit",
      url: GERRIT,
      username: "bob",
      usernameLabel: /Username on Gerrit/,
      tokenLabel: "HTTP password",
      token: GERRIT_PASSWORD,
      scopes: ["Read", "Push to refs/for/*", "Abandon"],
      tokenPage: `${GERRIT}/settings/#HTTPCredentials`,
      account: "bob",
    },
  ];
  for (const k of kinds) {
    await clickAndLoad(user, row(user, k.url).getByRole("link", { name: "Add token" }));
    let dialog = user.locator("dialog[open]");
    assert.equal(await dialog.locator("h2").textContent(), `${k.kind} Batch Changes token for ${k.url}`);
    assert.deepEqual(await dialog.locator(".scopes li code").allTextContents(), k.scopes);
    assert.equal(
      await dialog.getByRole("link", { name: `Create one on ${k.kind}` }).getAttribute("href"),
      k.tokenPage,
    );
    // The right secret with someone else's name is refused, and nothing is stored.
    await dialog.getByLabel(k.usernameLabel).fill("mallory");
    await dialog.getByLabel(k.tokenLabel, { exact: true }).fill(k.token);
    await clickAndLoad(user, dialog.getByRole("button", { name: "Add token" }));
    dialog = user.locator("dialog[open]");
    assert.match(await dialog.getByRole("alert").textContent(), new RegExp(k.kind));
    assert.equal(await dialog.getByLabel(k.usernameLabel).inputValue(), "mallory");
    await shot(user, `20-${k.kind.replaceAll(" ", "-").toLowerCase()}-refused`);
    await dialog.getByLabel(k.usernameLabel).fill(k.username);
    await dialog.getByLabel(k.tokenLabel, { exact: true }).fill(k.token);
    await clickAndLoad(user, dialog.getByRole("button", { name: "Add token" }));
    assert.match(user.url(), /\/user\/settings\/batch-changes$/);
    assert.equal(await row(user, k.url).locator(".indicator-ok").count(), 1, `${k.kind} has no tick`);
    assert.match(
      await row(user, k.url).locator(".credential-meta").textContent(),
      new RegExp(`of\\s+${k.account}`),
    );
  }
  await shot(user, "21-every-kind");
});

test("signing out ends the session and no page showed a secret", async () => {
  await user.setViewportSize({ width: 1100, height: 800 });
  await user.goto(`${base}/user/settings/batch-changes`);
  await user.locator("details.menu summary").click();
  await clickAndLoad(user, user.getByRole("button", { name: "Sign out" }));
  assert.match(user.url(), /\/sign-in$/);
  await user.goto(`${base}/user/settings/batch-changes`);
  assert.match(user.url(), /\/sign-in$/);
  await shot(user, "16-signed-out");
  assert.equal(admin.leaked, undefined);
  assert.equal(user.leaked, undefined);
});
