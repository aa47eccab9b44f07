// End-to-end test of the dashboard (/ui): starts the real server on port 0 with a
// memory store, drives Debian's Chromium headless through playwright-core, and checks
// each page against jobs it submits itself. Every wait is on a condition, bounded.
//
//   cd tests/ui && npm ci && OFFLOAD_BIN=../../build/src/offload node dashboard.test.mjs
//
// Environment:
//   OFFLOAD_BIN        the server binary (default: build/src/offload in the repository)
//   OFFLOAD_UI_DIR     passed on to the server when set: it then serves ui/ from that folder
//                      instead of its embedded copy (left unset, the embedded copy is tested)
//   OFFLOAD_ARTIFACTS  where screenshots go (default: ui-artifacts in the OS temp folder)
//   CHROMIUM           the browser (default /usr/bin/chromium)
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
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

async function submit(base, body) {
  const res = await fetch(base + '/v1/jobs', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 202 && res.status !== 200) fail(`POST /v1/jobs ${JSON.stringify(body)} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

async function getJson(url) {
  const res = await fetch(url);
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

  if (pageErrors.length) fail(`the page reported errors:\n  ${pageErrors.join('\n  ')}`);
  log(`screenshots:\n  ${jobShot}\n  ${overviewShot}\n  ${workersShot}\n  ${path.join(ARTIFACTS, 'jobs-375.png')}`);
  return browser;
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
  log('dashboard test: all steps passed');
} catch (e) {
  code = 1;
  process.stderr.write(`FAIL (${step}): ${e.message}\n`);
  if (pageErrors.length) process.stderr.write(`page errors:\n  ${pageErrors.join('\n  ')}\n`);
  if (browser) {
    try {
      const pages = browser.contexts().flatMap((c) => c.pages());
      if (pages.length) {
        const shot = path.join(ARTIFACTS, 'failure.png');
        await pages[0].screenshot({ path: shot, fullPage: true });
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
