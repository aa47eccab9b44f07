// End-to-end test of the dashboard (/ui): starts the real server on port 0 with a
// memory store, drives Debian's Chromium headless through playwright-core, and checks
// each page against jobs it submits itself. Every wait is on a condition, bounded.
// Part 1 runs a server without [auth]; part 2 one with [auth] (tokens made with
// `offload token create --json`): the sign-in form, an admin's and a tenant's view, the
// 403 of /metrics, results fetched with the token, the event stream's parsing and
// resumption, and the API docs page (/docs).
//
//   cd tests/ui && npm ci && OFFLOAD_BIN=../../build/src/offload node dashboard.test.mjs
//
// Environment:
//   OFFLOAD_BIN        the server binary (default: build/src/offload in the repository)
//   OFFLOAD_UI_DIR     passed on to the server when set: it then serves ui/ from that folder
//                      instead of its embedded copy (left unset, the embedded copy is tested)
//   OFFLOAD_ARTIFACTS  where screenshots go (default: ui-artifacts in the OS temp folder)
//   CHROMIUM           the browser (default /usr/bin/chromium)
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
// OFFLOAD_BIN is taken from the caller's folder; the default from the repository's root.
const BIN = process.env.OFFLOAD_BIN ? path.resolve(process.env.OFFLOAD_BIN) : path.join(repo, 'build/src/offload');
const BROWSER = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.OFFLOAD_ARTIFACTS || path.join(tmpdir(), 'ui-artifacts');
const WAIT = 10_000; // the bound of every wait for a state
const START_WAIT = 15_000;

const CONFIG = `store = "memory"

[resources]
cpu = 4

# Fails at once, twice (one retry: an error_history); its stderr holds markup, which
# the page must show as text.
[tasks.broken]
command = ["/bin/sh", "-c", "echo '<b>boom</b>' >&2; exit 3"]
retries = 1
retry_backoff = "100ms"

# A persistent worker that starts and idles.
[tasks.idler]
worker = ["/bin/sh", "-c", "echo '{\\"type\\":\\"ready\\"}'; exec cat >/dev/null"]
workers = 1

# A worker that dies at every start: crash-looping, shown as trouble.
[tasks.flaky]
worker = ["/bin/sh", "-c", "echo 'cannot load model' >&2; exit 7"]
workers = 1
`;

let server = null;
let serverLog = [];
let browser = null;
let lastPage = null; // the page a failure's screenshot shows
let tmp = null;
let step = '';
const pageErrors = [];

function log(msg) {
  process.stdout.write(msg + '\n');
}

function fail(msg) {
  throw new Error(msg);
}

// Starts the server and resolves with its base URL once it logs where it listens.
function startServer(configPath) {
  return new Promise((resolve, reject) => {
    if (!existsSync(BIN)) {
      reject(new Error(`no server binary at ${BIN}: build it (scripts/build.sh release) or set OFFLOAD_BIN`));
      return;
    }
    const env = { ...process.env };
    // Only a caller's OFFLOAD_UI_DIR reaches the server; CI tests the embedded copy.
    if (!process.env.OFFLOAD_UI_DIR) delete env.OFFLOAD_UI_DIR;
    server = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--config', configPath], {
      env, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let buffered = '';
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      reject(new Error(`the server did not log "offload listening on" within ${START_WAIT / 1000} s`));
    }, START_WAIT);
    server.stderr.setEncoding('utf8');
    // Read stderr to the end, always: a full pipe would block the server.
    server.stderr.on('data', (chunk) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        serverLog.push(line);
        if (serverLog.length > 200) serverLog.shift();
        const m = /offload listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
        if (m && !done) {
          done = true;
          clearTimeout(timer);
          resolve(m[1]);
        }
      }
    });
    server.on('error', (e) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`could not start ${BIN}: ${e.message}`));
    });
    server.on('exit', (code, signal) => {
      const was = server;
      if (was) was.exited = true;
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`the server exited (${signal || 'status ' + code}) before listening`));
    });
  });
}

async function stopServer() {
  if (!server || server.exited || server.pid === undefined) return;
  const proc = server;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  try {
    process.kill(proc.pid, 'SIGTERM');
  } catch (e) {
    return;
  }
  const timer = setTimeout(() => { try { process.kill(proc.pid, 'SIGKILL'); } catch (e) { /* gone */ } }, 5000);
  await exited;
  clearTimeout(timer);
}

async function submit(base, body, token) {
  const res = await fetch(base + '/v1/jobs', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: 'Bearer ' + token } : {}) },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 202 && res.status !== 200) fail(`POST /v1/jobs ${JSON.stringify(body)} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

async function getJson(url, token) {
  const res = await fetch(url, token ? { headers: { Authorization: 'Bearer ' + token } } : {});
  const text = await res.text();
  if (!res.ok) fail(`GET ${url} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

// Fails when the view shows what only a bug prints ("null", "undefined", "NaN",
// "[object …]") outside of JSON previews, where null is a value.
async function checkNoStrayText(page, where) {
  const stray = await page.evaluate(() => {
    const view = document.querySelector('#view').cloneNode(true);
    for (const pre of view.querySelectorAll('pre')) pre.remove();
    const m = /\b(null|undefined|NaN)\b|\[object \w+\]/.exec(view.textContent);
    return m ? view.textContent.slice(Math.max(0, m.index - 40), m.index + 40) : '';
  });
  if (stray) fail(`${where} shows stray text: …${stray}…`);
}

const rowSel = (id) => `[data-testid="job-row"][data-job-id="${id}"]`;

// Waits until the job page shows `status` (its badge in the title row).
async function waitJobPageStatus(page, id, status) {
  await page.waitForFunction(([id, status]) => {
    const view = document.querySelector('[data-testid="job-view"]');
    const badge = view && view.querySelector('.title-row [data-testid="job-status"]');
    return view && view.dataset.jobId === id && badge && badge.textContent === status;
  }, [id, status], { timeout: WAIT }).catch(async () => {
    const shown = await page.locator('.title-row [data-testid="job-status"]').textContent().catch(() => 'nothing');
    fail(`job page of ${id} did not show "${status}" within ${WAIT / 1000} s (it shows ${shown})`);
  });
}

async function run() {
  tmp = mkdtempSync(path.join(tmpdir(), 'offload-ui-test-'));
  const configPath = path.join(tmp, 'offload.toml');
  writeFileSync(configPath, CONFIG);
  mkdirSync(ARTIFACTS, { recursive: true });

  step = 'start the server';
  const base = await startServer(configPath);
  log(`server: ${base} (${BIN}${process.env.OFFLOAD_UI_DIR ? `, OFFLOAD_UI_DIR=${process.env.OFFLOAD_UI_DIR}` : ', embedded ui'})`);
  const ui = await fetch(base + '/ui');
  if (ui.status !== 200) fail(`GET /ui answered ${ui.status}: this binary does not serve the dashboard`);

  step = 'launch Chromium';
  if (!existsSync(BROWSER)) fail(`no browser at ${BROWSER}: apt-get install -y --no-install-recommends chromium, or set CHROMIUM`);
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    fail(`playwright-core is not installed: run npm ci in ${here} (${e.message})`);
  }
  browser = await chromium.launch({ executablePath: BROWSER, headless: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`uncaught: ${e.message}`));
  page.on('console', (m) => {
    // A refused resource (CSP) or a script error is a failure; a 404 we asked for is not.
    if (m.type() === 'error' && /Content Security Policy|Uncaught|TypeError|ReferenceError|SyntaxError/.test(m.text())) {
      pageErrors.push(`console: ${m.text()}`);
    }
  });
  page.on('dialog', (d) => d.accept());

  // ---- the jobs table, live
  step = 'open /ui#/jobs';
  await page.goto(base + '/ui#/jobs');
  await page.locator('[data-testid="jobs-view"]').waitFor({ timeout: WAIT });
  await page.waitForFunction(() => document.querySelector('[data-testid="live"]').dataset.state === 'open', null, { timeout: WAIT })
    .catch(() => fail('the /v1/events stream did not open'));
  await page.waitForFunction(() => !/…/.test(document.querySelector('[data-testid="jobs-count"]').textContent), null, { timeout: WAIT });
  // Records every status each job row shows, so that "running" is seen however short,
  // and marks the document, so that a reload would show.
  await page.evaluate(() => {
    window.__seen = {};
    window.__noReload = true;
    const record = () => {
      for (const row of document.querySelectorAll('[data-testid="job-row"]')) {
        const s = row.querySelector('[data-testid="job-status"]').textContent;
        const list = (window.__seen[row.dataset.jobId] ||= []);
        if (list[list.length - 1] !== s) list.push(s);
      }
    };
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  await page.locator('[data-testid="health"]').filter({ hasText: /ok|degraded/ }).waitFor({ timeout: WAIT });
  // Without [auth] nothing of it shows: no form, no sign-out, no token kept.
  const authShown = await page.evaluate(() => ({
    form: !document.querySelector('[data-testid="sign-in"]').hidden,
    signOut: !document.querySelector('[data-testid="sign-out"]').hidden,
    stored: sessionStorage.length + localStorage.length,
  }));
  if (authShown.form || authShown.signOut || authShown.stored) fail(`without [auth] the page shows or keeps auth: ${JSON.stringify(authShown)}`);

  step = 'a sleep job appears and goes running, then succeeded, live';
  const quick = await submit(base, { task: 'sleep', input: { ms: 1500 } });
  await page.locator(rowSel(quick.id)).waitFor({ timeout: WAIT })
    .catch(() => fail(`job ${quick.id} did not appear in the table within ${WAIT / 1000} s`));
  await page.locator(`${rowSel(quick.id)} [data-testid="job-status"]`).filter({ hasText: /^succeeded$/ }).waitFor({ timeout: WAIT })
    .catch(() => fail(`job ${quick.id} did not show succeeded within ${WAIT / 1000} s`));
  const seen = await page.evaluate((id) => ({ list: window.__seen[id] || [], same: window.__noReload === true }), quick.id);
  if (!seen.same) fail('the page reloaded');
  if (!seen.list.includes('running') || seen.list.indexOf('running') > seen.list.indexOf('succeeded')) {
    fail(`job ${quick.id} row showed ${JSON.stringify(seen.list)}, not running then succeeded`);
  }
  await checkNoStrayText(page, 'the jobs page');
  log(`ok - jobs table: ${quick.id} appeared and showed ${seen.list.join(' → ')} without a reload`);

  step = 'cancel a long job from its page';
  const long = await submit(base, { task: 'sleep', input: { ms: 60000 } });
  await page.locator(`${rowSel(long.id)} [data-testid="job-link"]`).click({ timeout: WAIT });
  await waitJobPageStatus(page, long.id, 'running');
  await page.locator('[data-testid="cancel-button"]').click({ timeout: WAIT });
  await waitJobPageStatus(page, long.id, 'canceled');
  const cancelType = await page.locator('[data-testid="error-type"]').textContent({ timeout: WAIT });
  if (cancelType !== 'canceled') fail(`canceled job shows error.type "${cancelType}", not "canceled"`);
  if (await page.locator('[data-testid="cancel-button"]').count()) fail('a canceled job still offers Cancel');
  log(`ok - job page: ${long.id} canceled with its Cancel button (error.type ${cancelType})`);

  step = 'a failed job: its error, then Retry';
  const broken = await submit(base, { task: 'broken', input: { n: 1 } });
  await page.evaluate((id) => { location.hash = '#/jobs/' + id; }, broken.id);
  await waitJobPageStatus(page, broken.id, 'failed');
  const errorType = await page.locator('[data-testid="error-type"]').textContent({ timeout: WAIT });
  const errorMessage = await page.locator('[data-testid="error-message"]').textContent({ timeout: WAIT });
  if (errorType !== 'command_failed') fail(`broken job shows error.type "${errorType}", expected "command_failed"`);
  if (!/exited with status 3/.test(errorMessage) || !errorMessage.includes('<b>boom</b>')) {
    fail(`broken job's error message is ${JSON.stringify(errorMessage)}`);
  }
  if (await page.locator('[data-testid="error-message"] b').count()) fail('the error message was inserted as markup');
  // The final job object follows the final status event: wait for what only it has.
  await page.locator('[data-testid="error-history-item"]').first().waitFor({ timeout: WAIT })
    .catch(() => fail(`broken job ${broken.id} shows no error_history`));
  const attempts = await page.locator('[data-testid="job-attempts"]').textContent();
  const history = await page.locator('[data-testid="error-history-item"]').allTextContents();
  if (attempts !== '2' || history.length !== 1 || !history[0].startsWith('command_failed')) {
    fail(`broken job shows attempts ${attempts} and error_history ${JSON.stringify(history)}, expected 2 and one command_failed`);
  }
  await checkNoStrayText(page, 'the failed job page');
  const jobShot = path.join(ARTIFACTS, 'job-page.png');
  await page.screenshot({ path: jobShot, fullPage: true });
  log(`ok - job page: ${broken.id} shows ${errorType}: ${JSON.stringify(errorMessage.trim())} as text, 2 attempts, 1 earlier error`);

  await page.locator('[data-testid="retry-button"]').click({ timeout: WAIT });
  await page.waitForFunction((old) => {
    const view = document.querySelector('[data-testid="job-view"]');
    const link = document.querySelector('[data-testid="retry-of-link"]');
    return view && view.dataset.jobId !== old && location.hash === '#/jobs/' + view.dataset.jobId &&
      link && link.textContent === old && link.getAttribute('href') === '#/jobs/' + old;
  }, broken.id, { timeout: WAIT }).catch(() => fail(`Retry did not lead to a new job page with a retry_of link to ${broken.id}`));
  const retried = await page.evaluate(() => document.querySelector('[data-testid="job-view"]').dataset.jobId);
  const retriedJob = await getJson(`${base}/v1/jobs/${retried}`);
  if (retriedJob.retry_of !== broken.id) fail(`job ${retried} has retry_of ${retriedJob.retry_of}`);
  await waitJobPageStatus(page, retried, 'failed');
  log(`ok - retry: ${broken.id} → ${retried} (retry_of link shown)`);

  step = 'bulk cancel from the jobs page';
  const held = [];
  for (let i = 0; i < 5; i++) held.push((await submit(base, { task: 'sleep', input: { ms: 60000 } })).id);
  await page.evaluate(() => { location.hash = '#/jobs?task=sleep'; });
  await page.locator('[data-testid="jobs-view"]').waitFor({ timeout: WAIT });
  for (const id of held) await page.locator(rowSel(id)).waitFor({ timeout: WAIT });
  await page.locator('[data-testid="bulk-cancel"]').click({ timeout: WAIT });
  await page.locator('[data-testid="bulk-cancel-result"]').filter({ hasText: /^Canceled \d+ jobs?\.$/ }).waitFor({ timeout: WAIT })
    .catch(() => fail('bulk cancel did not report how many it canceled'));
  const bulkText = await page.locator('[data-testid="bulk-cancel-result"]').textContent();
  if (bulkText !== `Canceled ${held.length} jobs.`) fail(`bulk cancel says "${bulkText}", expected ${held.length} jobs`);
  for (const id of held) {
    await page.locator(`${rowSel(id)} [data-testid="job-status"]`).filter({ hasText: /^canceled$/ }).waitFor({ timeout: WAIT })
      .catch(() => fail(`job ${id} did not show canceled after the bulk cancel`));
  }
  log(`ok - bulk cancel: "${bulkText}" and every row turned canceled live`);

  step = 'a problem from the API shows in the banner';
  await page.evaluate(() => { location.hash = '#/jobs/nosuchjob'; });
  await page.locator('[data-testid="banner"]').waitFor({ state: 'visible', timeout: WAIT });
  const bannerText = await page.locator('[data-testid="banner"]').textContent();
  if (!/404/.test(bannerText)) fail(`banner says ${JSON.stringify(bannerText)}`);
  await page.locator('[data-testid="banner-dismiss"]').click();
  await page.locator('[data-testid="banner"]').waitFor({ state: 'hidden', timeout: WAIT });
  log(`ok - banner: ${JSON.stringify(bannerText.replace(/×$/, '').replace(/\s+/g, ' ').trim())}, dismissed`);

  step = 'overview';
  await page.locator('[data-testid="nav-overview"]').click();
  await page.locator('[data-testid="task-table"]').waitFor({ timeout: WAIT });
  for (const task of ['sleep', 'broken', 'idler', 'flaky']) {
    await page.locator(`[data-testid="task-row"][data-task="${task}"]`).waitFor({ timeout: WAIT })
      .catch(() => fail(`the overview has no row for task ${task}`));
  }
  await page.locator('[data-testid="resource-row"][data-resource="cpu"]').waitFor({ timeout: WAIT });
  // The page has scraped /metrics since it opened: the sleep job that succeeded
  // gives a p50, and the chart has at least two scrapes (one interval).
  await page.waitForFunction(() => {
    const p50 = document.querySelector('[data-testid="task-row"][data-task="sleep"] [data-testid="task-p50"]');
    const chart = document.querySelector('[data-testid="throughput-chart"]');
    return p50 && p50.textContent !== '—' && chart && Number(chart.dataset.samples) >= 2;
  }, null, { timeout: WAIT }).catch(() => fail('the overview shows no p50 for sleep or the chart has under 2 scrapes'));
  const sleepRow = await page.locator('[data-testid="task-row"][data-task="sleep"]').innerText();
  await checkNoStrayText(page, 'the overview');
  const overviewShot = path.join(ARTIFACTS, 'overview.png');
  await page.screenshot({ path: overviewShot, fullPage: true });
  log(`ok - overview: task table (sleep: ${sleepRow.replace(/\s+/g, ' ')}), resources, throughput chart`);

  step = 'workers';
  await page.locator('[data-testid="nav-workers"]').click();
  await page.locator('[data-testid="worker-card"][data-task="idler"]').waitFor({ timeout: WAIT });
  await page.locator('[data-testid="worker-card"][data-task="idler"] [data-testid="worker-ready"]').filter({ hasText: /^1$/ })
    .waitFor({ timeout: WAIT }).catch(() => fail('the idler worker is not shown ready'));
  // Its one process, by pid, idle.
  const proc = page.locator('[data-testid="worker-card"][data-task="idler"] [data-testid="worker-process"]');
  await proc.filter({ hasText: /idle/ }).waitFor({ timeout: WAIT }).catch(() => fail('the idler worker process is not listed'));
  const pid = await proc.first().getAttribute('data-pid');
  if (!/^[1-9][0-9]*$/.test(pid || '')) fail(`the idler worker process has no pid: ${pid}`);
  await page.locator('[data-testid="worker-card"][data-task="flaky"] [data-testid="worker-trouble"]').waitFor({ timeout: WAIT })
    .catch(() => fail('the crash-looping flaky worker shows no trouble'));
  const stderrTail = await page.locator('[data-testid="worker-card"][data-task="flaky"] [data-testid="worker-stderr"]').textContent({ timeout: WAIT });
  if (!stderrTail.includes('cannot load model')) fail(`flaky's stderr tail is ${JSON.stringify(stderrTail)}`);
  await page.locator('[data-testid="health"][data-health="degraded"]').waitFor({ timeout: WAIT })
    .catch(() => fail('the header does not show the degraded health'));
  await checkNoStrayText(page, 'the workers page');
  const workersShot = path.join(ARTIFACTS, 'workers.png');
  await page.screenshot({ path: workersShot, fullPage: true });
  log('ok - workers: idler ready, flaky in trouble with its stderr tail, header degraded');

  step = 'a phone-sized viewport';
  const phone = await browser.newContext({ viewport: { width: 375, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const small = await phone.newPage();
  small.on('pageerror', (e) => pageErrors.push(`uncaught (375 px): ${e.message}`));
  const widths = {};
  for (const [hash, ready] of [['#/jobs', '[data-testid="job-row"]'], [`#/jobs/${broken.id}`, '[data-testid="error-message"]'],
    ['#/', '[data-testid="task-row"]'], ['#/workers', '[data-testid="worker-card"]']]) {
    await small.goto(`${base}/ui${hash}`);
    await small.locator(ready).first().waitFor({ timeout: WAIT });
    widths[hash] = await small.evaluate(() => document.documentElement.scrollWidth);
    if (hash === '#/jobs') await small.screenshot({ path: path.join(ARTIFACTS, 'jobs-375.png'), fullPage: true });
  }
  for (const [hash, w] of Object.entries(widths)) {
    if (w > 375) fail(`at 375 px, ${hash} is ${w} px wide (horizontal scroll)`);
  }
  await phone.close();
  log(`ok - 375 px: scrollWidth ${JSON.stringify(widths)}`);

  step = 'the API docs page without [auth]';
  await page.goto(base + '/docs');
  await waitDocsLoaded(page);
  log('ok - /docs: RapiDoc shows the spec docs.js fetched (no token)');

  if (pageErrors.length) fail(`the page reported errors:\n  ${pageErrors.join('\n  ')}`);
  log(`screenshots:\n  ${jobShot}\n  ${overviewShot}\n  ${workersShot}\n  ${path.join(ARTIFACTS, 'jobs-375.png')}`);
  await context.close();
  return browser;
}

// RapiDoc rendered the spec docs.js handed it: a path of the API shows in its shadow DOM.
async function waitDocsLoaded(page) {
  await page.locator('rapi-doc').getByText('/v1/jobs/cancel').first().waitFor({ timeout: WAIT })
    .catch(() => fail('RapiDoc shows no /v1/jobs/cancel: /docs did not load /openapi.json'));
  if (await page.locator('[data-testid="docs-auth"]').isVisible()) fail('/docs shows its token message beside the spec');
}

// A token made as an operator makes one: {name, token, sha256, scopes}.
function createToken(name, scopes) {
  const out = execFileSync(BIN, ['token', 'create', name, '--scopes', scopes, '--json'], { encoding: 'utf8', timeout: START_WAIT });
  const t = JSON.parse(out);
  if (!t.token || !/^[0-9a-f]{64}$/i.test(t.sha256)) fail(`offload token create printed ${out}`);
  return t;
}

function watchPage(page, where) {
  page.on('pageerror', (e) => pageErrors.push(`uncaught (${where}): ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Uncaught|TypeError|ReferenceError|SyntaxError/.test(m.text())) {
      pageErrors.push(`console (${where}): ${m.text()}`);
    }
  });
  page.on('dialog', (d) => d.accept());
  lastPage = page;
}

async function waitLive(page, state) {
  await page.waitForFunction((s) => document.querySelector('[data-testid="live"]').dataset.state === s, state, { timeout: WAIT })
    .catch(async () => fail(`the live indicator is not "${state}" (it is ${await page.locator('[data-testid="live"]').getAttribute('data-state')})`));
}

async function waitSignInForm(page) {
  await page.locator('[data-testid="sign-in"]').waitFor({ state: 'visible', timeout: WAIT })
    .catch(() => fail('no sign-in form after the 401'));
  const shown = await page.evaluate(() => ({
    type: document.querySelector('[data-testid="sign-in-token"]').type,
    view: !document.querySelector('#view').hidden && document.querySelector('#view').textContent.trim(),
    signOut: !document.querySelector('[data-testid="sign-out"]').hidden,
  }));
  if (shown.type !== 'password') fail(`the token input is of type ${shown.type}`);
  if (shown.view) fail(`the view shows beside the sign-in form: ${JSON.stringify(shown.view.slice(0, 80))}`);
  if (shown.signOut) fail('"sign out" shows while no token is held');
}

async function signIn(page, token) {
  await page.locator('[data-testid="sign-in-token"]').fill(token);
  await page.locator('[data-testid="sign-in-button"]').click();
  await page.locator('[data-testid="sign-in"]').waitFor({ state: 'hidden', timeout: WAIT })
    .catch(async () => fail(`the sign-in form stayed: ${await page.locator('[data-testid="sign-in-error"]').textContent()}`));
  await page.locator('[data-testid="sign-out"]').waitFor({ state: 'visible', timeout: WAIT })
    .catch(() => fail('no "sign out" while a token is held'));
}

const AUTH_CONFIG = (tokens) => `store = "memory"

[resources]
cpu = 4

# A text result, shown through a Range request.
[tasks.texty]
command = ["/bin/sh", "-c", "read -r input; printf 'hello from a text result'"]
content_type = "text/plain"

[auth]
tokens = [
${tokens.map((t) => `  {name = "${t.name}", sha256 = "${t.sha256}", scopes = ${JSON.stringify(t.scopes)}},`).join('\n')}
]
`;

// Part 2: the same dashboard on a server with [auth].
async function runAuth() {
  step = 'make tokens with offload token create';
  const ops = createToken('ops', 'admin');
  const alice = createToken('alice', 'submit,read,cancel');
  const configPath = path.join(tmp, 'offload-auth.toml');
  writeFileSync(configPath, AUTH_CONFIG([ops, alice]));

  step = 'start the server with [auth]';
  serverLog = [];
  const base = await startServer(configPath);
  log(`server with [auth]: ${base} (tokens ops: admin, alice: submit,read,cancel)`);
  const bare = await fetch(base + '/v1/jobs');
  if (bare.status !== 401 || !/^Bearer realm="offload"/.test(bare.headers.get('www-authenticate') || '')) {
    fail(`GET /v1/jobs without a token answered ${bare.status} (WWW-Authenticate: ${bare.headers.get('www-authenticate')})`);
  }
  const ui = await fetch(base + '/ui');
  if (ui.status !== 200) fail(`GET /ui without a token answered ${ui.status}: the dashboard's files need none`);

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  watchPage(page, 'auth');
  // Every request the page makes: none may carry a token in its URL, and while a
  // token is held every call of the API must carry it in the header.
  const requests = [];
  let holding = ''; // the token the page holds, as the test knows it
  page.on('request', (r) => {
    requests.push((async () => {
      const url = r.url();
      for (const t of [ops.token, alice.token]) if (url.includes(t)) return `the token in a URL: ${url}`;
      const p = new URL(url).pathname;
      const want = holding;
      if (want && (p.startsWith('/v1/') || p === '/metrics' || p === '/openapi.json')) {
        const got = (await r.allHeaders()).authorization;
        if (got !== 'Bearer ' + want) return `${r.method()} ${p} sent Authorization ${JSON.stringify(got)}`;
      }
      return '';
    })());
  });
  const checkRequests = async () => {
    const bad = (await Promise.all(requests)).filter(Boolean);
    if (bad.length) fail(`requests of the page:\n  ${[...new Set(bad)].slice(0, 10).join('\n  ')}`);
  };

  step = 'open /ui: a 401 brings up the sign-in form';
  await page.goto(base + '/ui#/jobs');
  await waitSignInForm(page);
  await waitLive(page, 'closed');
  await page.locator('[data-testid="sign-in-token"]').fill('ofl_not-a-token-this-server-knows');
  await page.locator('[data-testid="sign-in-button"]').click();
  await page.locator('[data-testid="sign-in-error"]').filter({ hasText: /does not know this token/ }).waitFor({ timeout: WAIT })
    .catch(() => fail('a token the server does not know gave no error in the form'));
  if (!(await page.locator('[data-testid="sign-in"]').isVisible())) fail('the form went away after a wrong token');
  if (await page.evaluate(() => sessionStorage.length)) fail('a refused token was kept');
  await page.screenshot({ path: path.join(ARTIFACTS, 'sign-in.png'), fullPage: true });
  log('ok - sign-in: the 401 shows the form (password input, live closed); an unknown token is refused in it');

  step = 'sign in as the admin';
  holding = ops.token;
  await signIn(page, ops.token);
  await page.locator('[data-testid="jobs-view"]').waitFor({ timeout: WAIT });
  await waitLive(page, 'open');
  const kept = await page.evaluate(() => ({
    session: Object.keys(sessionStorage).map((k) => [k, sessionStorage.getItem(k).length]),
    local: localStorage.length, cookie: document.cookie, href: location.href,
  }));
  if (kept.session.length !== 1 || kept.session[0][1] !== ops.token.length || kept.local || kept.cookie || kept.href.includes(ops.token)) {
    fail(`the token is kept as ${JSON.stringify(kept)}: sessionStorage only, never a cookie or the URL`);
  }
  await page.evaluate(() => {
    window.__seen = {};
    const record = () => {
      for (const row of document.querySelectorAll('[data-testid="job-row"]')) {
        const s = row.querySelector('[data-testid="job-status"]').textContent;
        const list = (window.__seen[row.dataset.jobId] ||= []);
        if (list[list.length - 1] !== s) list.push(s);
      }
    };
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  const opsJob = await submit(base, { task: 'sleep', input: { ms: 1500 } }, ops.token);
  if (opsJob.tenant !== 'ops') fail(`the admin's job has tenant ${JSON.stringify(opsJob.tenant)}`);
  await page.locator(rowSel(opsJob.id)).waitFor({ timeout: WAIT })
    .catch(() => fail(`the admin's job ${opsJob.id} did not appear in the table`));
  await page.locator(`${rowSel(opsJob.id)} [data-testid="job-status"]`).filter({ hasText: /^succeeded$/ }).waitFor({ timeout: WAIT })
    .catch(() => fail(`the admin's job ${opsJob.id} did not show succeeded`));
  const opsSeen = await page.evaluate((id) => window.__seen[id] || [], opsJob.id);
  if (!opsSeen.includes('running')) fail(`the admin's job row showed ${JSON.stringify(opsSeen)}, never running`);
  log(`ok - admin: signed in (sessionStorage only), ${opsJob.id} appeared and showed ${opsSeen.join(' → ')} live`);

  step = 'the admin\'s overview, from /metrics';
  await page.locator('[data-testid="nav-overview"]').click();
  await page.locator('[data-testid="task-row"][data-task="sleep"]').waitFor({ timeout: WAIT });
  await page.waitForFunction(() => {
    const p50 = document.querySelector('[data-testid="task-row"][data-task="sleep"] [data-testid="task-p50"]');
    const chart = document.querySelector('[data-testid="throughput-chart"]');
    return p50 && p50.textContent !== '—' && chart && Number(chart.dataset.samples) >= 2;
  }, null, { timeout: 2 * WAIT }).catch(() => fail('the admin\'s overview shows no p50 for sleep or under 2 scrapes of /metrics'));
  if (await page.locator('[data-testid="metrics-denied"]').isVisible()) fail('the admin\'s overview says /metrics is denied');
  log('ok - admin overview: p50 and the throughput chart from /metrics');

  step = 'results fetched with the token: an image, a text preview, a download';
  const png = await submit(base, { task: 'mandelbrot', input: { width: 64, height: 48, max_iter: 50 } }, ops.token);
  const text = await submit(base, { task: 'texty', input: {} }, ops.token);
  await page.evaluate((id) => { location.hash = '#/jobs/' + id; }, png.id);
  await waitJobPageStatus(page, png.id, 'succeeded');
  await page.waitForFunction(() => {
    const img = document.querySelector('[data-testid="result-image"]');
    return img && img.src.startsWith('blob:') && img.complete && img.naturalWidth === 64;
  }, null, { timeout: WAIT }).catch(() => fail(`the image result of ${png.id} is not shown from a blob: URL`));
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: WAIT }),
    page.locator('[data-testid="result-download"]').click(),
  ]).catch(() => fail('Download gave no download'));
  const saved = path.join(tmp, 'download.bin');
  await download.saveAs(saved);
  const bytes = readFileSync(saved);
  if (bytes.subarray(0, 8).toString('latin1') !== '\x89PNG\r\n\x1a\n') fail(`the download is not the PNG: ${bytes.subarray(0, 16).toString('hex')}`);
  await page.evaluate((id) => { location.hash = '#/jobs/' + id; }, text.id);
  await waitJobPageStatus(page, text.id, 'succeeded');
  await page.locator('[data-testid="result-preview"]').filter({ hasText: /^hello from a text result$/ }).waitFor({ timeout: WAIT })
    .catch(async () => fail(`the text result shows ${JSON.stringify(await page.locator('[data-testid="result-preview"]').textContent())}`));
  log(`ok - results: ${png.id}'s PNG from a blob: URL and downloaded (${bytes.length} bytes), ${text.id}'s text preview`);

  step = 'the job stream: SSE parsed from fetch(), resumed with Last-Event-ID';
  const long = await submit(base, { task: 'sleep', input: { ms: 60000 } }, ops.token);
  // The first answer is the test's own: a comment, retry:, an id, CR, LF and CRLF line
  // ends, and one message in two data: lines. It ends there, so the page reconnects,
  // which the test holds until it has seen the message shown.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let reconnected;
  const secondCall = new Promise((resolve) => { reconnected = resolve; });
  const streamCalls = [];
  const streamUrl = `${base}/v1/jobs/${long.id}/events`;
  await page.route(streamUrl, async (route) => {
    const headers = await route.request().allHeaders();
    streamCalls.push({ auth: headers.authorization, last: headers['last-event-id'] });
    if (streamCalls.length === 2) reconnected();
    if (streamCalls.length === 1) {
      await route.fulfill({
        status: 200, headers: { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' },
        body: `: a comment\r\nretry: 100\r\n\r\nid: test-7\revent: progress\rdata: {"id":"${long.id}",\ndata:"progress":0.42}\n\n` +
          `event: progress\ndata: {"id":"${long.id}","progress":0.9}\n`, // no blank line ends it: dropped
      });
    } else {
      await held;
      await route.continue();
    }
  });
  await page.evaluate((id) => { location.hash = '#/jobs/' + id; }, long.id);
  await page.locator('[data-testid="progress"][aria-valuenow="42"]').waitFor({ timeout: WAIT })
    .catch(() => fail('the progress event of the test\'s stream (two data: lines) is not shown as 42 %'));
  let bound;
  await Promise.race([secondCall, new Promise((resolve, reject) => {
    bound = setTimeout(() => reject(new Error(`the job stream that ended was not opened again within ${WAIT / 1000} s`)), WAIT);
  })]).finally(() => clearTimeout(bound));
  // The first answer has ended, all read: its cut-off last message was not shown.
  const shownProgress = await page.locator('[data-testid="progress"]').getAttribute('aria-valuenow');
  if (shownProgress !== '42') fail(`after the test's stream ended the progress shows ${shownProgress}, not 42`);
  release();
  await waitJobPageStatus(page, long.id, 'running');
  await page.locator('[data-testid="cancel-button"]').click({ timeout: WAIT });
  await waitJobPageStatus(page, long.id, 'canceled');
  await page.unroute(streamUrl);
  if (streamCalls[0].last !== undefined) fail(`the first stream request sent Last-Event-ID ${streamCalls[0].last}`);
  if (streamCalls[1].last !== 'test-7') fail(`the reconnect sent Last-Event-ID ${JSON.stringify(streamCalls[1].last)}, not test-7`);
  for (const c of streamCalls) if (c.auth !== 'Bearer ' + ops.token) fail(`a stream request sent Authorization ${JSON.stringify(c.auth)}`);
  log(`ok - SSE: comment, retry, id, CR/LF/CRLF and two data: lines read; reconnected with Last-Event-ID test-7 and the token; ${long.id} canceled live`);

  step = 'the API docs page as the admin';
  await page.goto(base + '/docs');
  await waitDocsLoaded(page);
  log('ok - /docs as the admin: docs.js fetched /openapi.json with the token from sessionStorage');

  step = 'sign out, sign in as alice';
  const aliceBefore = await submit(base, { task: 'sleep', input: { ms: 10 } }, alice.token);
  await page.goto(base + '/ui#/jobs'); // a new document: the token is still this tab's
  await page.locator('[data-testid="jobs-view"]').waitFor({ timeout: WAIT });
  await page.locator(rowSel(aliceBefore.id)).waitFor({ timeout: WAIT })
    .catch(() => fail('the admin does not see alice\'s job'));
  holding = '';
  await page.locator('[data-testid="sign-out"]').click();
  await waitSignInForm(page);
  if (await page.evaluate(() => sessionStorage.length)) fail('sign out left the token in sessionStorage');
  holding = alice.token;
  await signIn(page, alice.token);
  await page.locator('[data-testid="jobs-view"]').waitFor({ timeout: WAIT });
  await waitLive(page, 'open');
  await page.locator(rowSel(aliceBefore.id)).waitFor({ timeout: WAIT })
    .catch(() => fail(`alice does not see her job ${aliceBefore.id}`));
  await page.waitForFunction(() => !/…/.test(document.querySelector('[data-testid="jobs-count"]').textContent), null, { timeout: WAIT });
  const aliceLive = await submit(base, { task: 'sleep', input: { ms: 500 } }, alice.token);
  const opsLater = await submit(base, { task: 'sleep', input: { ms: 500 } }, ops.token);
  await page.locator(`${rowSel(aliceLive.id)} [data-testid="job-status"]`).filter({ hasText: /^succeeded$/ }).waitFor({ timeout: WAIT })
    .catch(() => fail(`alice's job ${aliceLive.id} did not appear and succeed live`));
  // The admin's job ended too (it was submitted after hers): a row for it would be there by now.
  const opsDone = await getJson(`${base}/v1/jobs/${opsLater.id}?wait=10`, ops.token);
  if (opsDone.status !== 'succeeded') fail(`the admin's job ${opsLater.id} is ${opsDone.status}`);
  // And the list as the server gives it to her, read again.
  await page.locator('[data-testid="refresh-button"]').click();
  await page.waitForFunction(() => !/…/.test(document.querySelector('[data-testid="jobs-count"]').textContent), null, { timeout: WAIT });
  await page.locator(rowSel(aliceLive.id)).waitFor({ timeout: WAIT });
  const shownIds = await page.locator('[data-testid="job-row"]').evaluateAll((rows) => rows.map((r) => r.dataset.jobId));
  const foreign = shownIds.filter((id) => ![aliceBefore.id, aliceLive.id].includes(id));
  if (foreign.length) fail(`alice sees jobs not hers: ${foreign.join(', ')} (admin's: ${opsJob.id}, ${opsLater.id}, …)`);
  await page.evaluate((id) => { location.hash = '#/jobs/' + id; }, opsJob.id);
  await page.locator('[data-testid="job-missing"]').waitFor({ timeout: WAIT })
    .catch(() => fail(`alice's page of the admin's job ${opsJob.id} does not say no such job`));
  log(`ok - alice: signed out and in, sees only ${shownIds.join(', ')} (her ${aliceLive.id} live), the admin's job is 404`);

  step = 'alice\'s overview: the 403 of /metrics instead of the chart';
  await page.locator('[data-testid="nav-overview"]').click();
  await page.locator('[data-testid="task-row"][data-task="sleep"]').waitFor({ timeout: WAIT })
    .catch(() => fail('alice\'s overview has no task table (read scope)'));
  await page.locator('[data-testid="metrics-denied"]').filter({ hasText: /scope "admin"/ }).waitFor({ timeout: WAIT })
    .catch(async () => fail(`alice's overview does not show the 403's reason: ${await page.locator('[data-testid="throughput"]').innerText()}`));
  const deniedText = (await page.locator('[data-testid="metrics-denied"]').innerText()).replace(/\s+/g, ' ').trim();
  if (await page.locator('[data-testid="throughput-chart"]').isVisible()) fail('alice\'s overview shows the chart beside the 403');
  if (await page.locator('[data-testid="sign-in"]').isVisible()) fail('a 403 brought up the sign-in form');
  await checkNoStrayText(page, 'alice\'s overview');
  await page.screenshot({ path: path.join(ARTIFACTS, 'overview-403.png'), fullPage: true });
  log(`ok - alice overview: "${deniedText}"`);

  step = 'the API docs page as alice, and in a tab with no token';
  await page.goto(base + '/docs');
  await page.locator('[data-testid="docs-auth"]').filter({ hasText: /admin/ }).waitFor({ timeout: WAIT })
    .catch(() => fail('/docs with alice\'s token does not say an admin token is needed'));
  const href = await page.locator('[data-testid="docs-sign-in"]').getAttribute('href');
  if (href !== '/ui') fail(`/docs links to ${href} to sign in`);
  const fresh = await context.newPage();
  watchPage(fresh, 'auth, no token');
  await fresh.goto(base + '/docs');
  await fresh.locator('[data-testid="docs-auth"]').filter({ hasText: /admin token/ }).waitFor({ timeout: WAIT })
    .catch(() => fail('/docs without a token does not say an admin token is needed'));
  await fresh.close();
  lastPage = page;
  log('ok - /docs: alice\'s token and no token are told an admin token is needed, with a link to /ui');

  step = 'a hidden tab pauses its stream and resumes it when shown';
  // A tab of its own, on a fake clock (30 s hidden is the pause), signed in as alice.
  const tab = await context.newPage();
  watchPage(tab, 'auth, hidden tab');
  const opened = [];
  tab.on('request', (r) => {
    if (new URL(r.url()).pathname === '/v1/events') opened.push(r.allHeaders().then((hd) => ({ url: r.url(), last: hd['last-event-id'], auth: hd.authorization })));
  });
  await tab.clock.install();
  await tab.goto(base + '/ui#/jobs');
  await waitSignInForm(tab);
  await signIn(tab, alice.token);
  await waitLive(tab, 'open');
  const seenBefore = await submit(base, { task: 'sleep', input: { ms: 10 } }, alice.token);
  await tab.locator(`${rowSel(seenBefore.id)} [data-testid="job-status"]`).filter({ hasText: /^succeeded$/ }).waitFor({ timeout: WAIT })
    .catch(() => fail(`alice's job ${seenBefore.id} did not show succeeded in the second tab`));
  const setHidden = (hidden) => tab.evaluate((h) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
  await setHidden(true);
  await tab.clock.fastForward('00:31');
  await waitLive(tab, 'paused');
  const beforeShow = opened.length;
  await setHidden(false);
  await waitLive(tab, 'open');
  const streams = await Promise.all(opened);
  const resumed = streams[streams.length - 1];
  if (streams.length <= beforeShow) fail('showing the tab opened no stream');
  if (!resumed.last || resumed.url.includes('last_event_id') || resumed.auth !== 'Bearer ' + alice.token) {
    fail(`the resumed stream was ${JSON.stringify({ ...resumed, auth: resumed.auth && resumed.auth.slice(0, 12) + '…' })}`);
  }
  await tab.close();
  lastPage = page;
  log(`ok - hidden tab: paused after 30 s, resumed when shown with Last-Event-ID ${resumed.last} and the token`);

  await checkRequests();
  if (pageErrors.length) fail(`the page reported errors:\n  ${pageErrors.join('\n  ')}`);
  log(`ok - ${requests.length} requests: no token in a URL, every API call with the token held`);
  await context.close();
}

// Interrupted: the server goes with us.
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (server && !server.exited) { try { process.kill(server.pid, 'SIGKILL'); } catch (e) { /* gone */ } }
    process.exit(130);
  });
}

let code = 0;
try {
  await run();
  await stopServer();
  await runAuth();
  log('dashboard test: all steps passed');
} catch (e) {
  code = 1;
  process.stderr.write(`FAIL (${step}): ${e.message}\n`);
  if (pageErrors.length) process.stderr.write(`page errors:\n  ${pageErrors.join('\n  ')}\n`);
  if (browser) {
    try {
      const pages = browser.contexts().flatMap((c) => c.pages());
      const shown = lastPage && pages.includes(lastPage) ? lastPage : pages[0];
      if (shown) {
        const shot = path.join(ARTIFACTS, 'failure.png');
        await shown.screenshot({ path: shot, fullPage: true });
        process.stderr.write(`screenshot of the failure: ${shot}\n`);
      }
    } catch (err) { /* the browser may be gone */ }
  }
  if (serverLog.length) process.stderr.write(`last server log lines:\n  ${serverLog.slice(-20).join('\n  ')}\n`);
} finally {
  if (browser) await browser.close().catch(() => {});
  await stopServer();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}
process.exit(code);
