// The offload dashboard: overview, jobs, one job, workers. Plain ES2020, no framework.
//
// How it is built, in short:
// - Every call goes to the server that served the page (relative URLs), so the same
//   files work embedded in the binary and from OFFLOAD_UI_DIR.
// - Data is inserted as text only (textContent, createElement via h()); no innerHTML,
//   so a job's error message or a task's name can never become markup.
// - One stream on /v1/events?latest=1 (jobs' latest states) feeds the whole app (`bus`); the job page opens a
//   second one on /v1/jobs/ID/events for its progress bar, closed once the job ends. Both are
//   read with fetch() (LiveSource), not EventSource, which cannot send a header.
// - A server with [auth] answers 401: the page then asks for a token, keeps it in
//   sessionStorage and sends it as Authorization: Bearer on every call (authFetch). A
//   server without it never answers 401, and the page looks and behaves as before.
// - /metrics is scraped every 5 s from the moment the page opens; rates and the
//   throughput chart come from the differences between scrapes, so they start empty.
// - Each view is an object with mount(root) and unmount(); unmount stops its timers
//   and streams, so that switching views leaks nothing.
'use strict';

(() => {
  // ---------------------------------------------------------------- DOM helpers

  // h('a', {href, class, testid, data: {jobId}, onclick}, child, [children], 'text')
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === 'class') node.className = value;
        else if (key === 'testid') node.dataset.testid = value;
        else if (key === 'data') Object.assign(node.dataset, value);
        else if (key === 'text') node.textContent = String(value);
        else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
        else if (typeof value === 'boolean') node.toggleAttribute(key, value);
        else node.setAttribute(key, String(value));
      }
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) append(node, child);
      else if (child instanceof Node) node.appendChild(child);
      else node.appendChild(document.createTextNode(String(child)));
    }
  }

  // Replaces a node's children (h()'s rules: arrays flattened, null skipped).
  function fill(node, ...children) {
    node.replaceChildren();
    append(node, children);
    return node;
  }

  const $ = (sel, root = document) => root.querySelector(sel);
  const enc = encodeURIComponent;
  const jobHref = (id) => '#/jobs/' + enc(id);
  const FINAL = new Set(['succeeded', 'failed', 'canceled']);
  const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'];

  // Calls fn once, `ms` after the first of a burst of calls: under a steady stream of
  // events it still runs every `ms` (a debounce would wait for a pause).
  function coalesce(fn, ms) {
    let timer = null;
    const wrapped = () => {
      if (timer === null) timer = setTimeout(() => { timer = null; fn(); }, ms);
    };
    wrapped.cancel = () => { clearTimeout(timer); timer = null; };
    return wrapped;
  }

  // ---------------------------------------------------------------- formatting

  const fmt = {
    time(iso) {
      if (!iso) return '—';
      const d = new Date(iso);
      if (Number.isNaN(d.getTime())) return String(iso);
      const today = new Date().toDateString() === d.toDateString();
      return today ? d.toLocaleTimeString() : d.toLocaleString();
    },
    // A duration in milliseconds, in the unit a person reads best.
    duration(ms) {
      if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
      if (ms < 0) ms = 0;
      if (ms < 1) return ms === 0 ? '0 ms' : '<1 ms';
      if (ms < 10) return ms.toFixed(1) + ' ms';
      if (ms < 1000) return Math.round(ms) + ' ms';
      if (ms < 10000) return (ms / 1000).toFixed(2) + ' s';
      if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
      const s = Math.round(ms / 1000);
      if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
      return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    },
    between(fromIso, toIso) {
      if (!fromIso || !toIso) return null;
      return Date.parse(toIso) - Date.parse(fromIso);
    },
    rate(x) {
      if (x === null || x === undefined || !Number.isFinite(x)) return '—';
      if (x === 0) return '0';
      if (x < 10) return x.toFixed(1);
      return Math.round(x).toLocaleString();
    },
    count(n) {
      return n === null || n === undefined ? '—' : Number(n).toLocaleString();
    },
    bytes(n) {
      if (!Number.isFinite(n)) return '';
      const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
      let i = 0;
      while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
      return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
    },
    percent(p) {
      return Number.isFinite(p) ? Math.round(p * 100) + ' %' : '';
    },
  };

  // Pretty JSON, cut at `limit` characters; returns [text, wasCut].
  function prettyJson(value, limit = 20000) {
    let text;
    try {
      text = JSON.stringify(value, null, 2);
    } catch (e) {
      text = String(value);
    }
    if (text === undefined) text = 'undefined';
    if (text.length <= limit) return [text, false];
    return [text.slice(0, limit), true];
  }

  // ---------------------------------------------------------------- errors banner

  // API errors are RFC 9457 problem bodies: the banner shows their title and detail.
  // The same message again only bumps a counter, so a server that went away does not
  // stack a banner per poll.
  const banner = {
    last: '',
    repeats: 0,
    show(title, detail) {
      const root = $('[data-testid="banner"]');
      const key = title + '\n' + detail;
      this.repeats = key === this.last && !root.hidden ? this.repeats + 1 : 1;
      this.last = key;
      $('[data-testid="banner-title"]').textContent = title;
      $('[data-testid="banner-detail"]').textContent = detail || '';
      $('[data-testid="banner-count"]').textContent = this.repeats > 1 ? `(×${this.repeats})` : '';
      root.hidden = false;
    },
    error(err) {
      // A 401 brought up the sign-in form, which says it; a banner would say it twice.
      if (err instanceof ApiError && err.status === 401) return;
      if (err instanceof ApiError) {
        const p = err.problem || {};
        const title = p.title || `HTTP ${err.status}`;
        const status = err.status ? ` (${err.status})` : '';
        this.show(title + status, p.detail || '');
      } else {
        this.show('Error', err && err.message ? err.message : String(err));
      }
    },
    hide() {
      $('[data-testid="banner"]').hidden = true;
      this.last = '';
    },
  };

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  // A 403: the token is known but lacks the scope. Views show the problem where their
  // data would be; signing in again would not help, so no form comes up.
  const isDenied = (e) => e instanceof ApiError && e.status === 403;

  function deniedNote(err, testid = 'denied') {
    const p = (err && err.problem) || {};
    return h('p', { class: 'denied', testid, role: 'status' },
      h('strong', null, p.title || `HTTP ${err && err.status}`), p.detail ? ' — ' + p.detail : '');
  }

  // ---------------------------------------------------------------- auth

  // The token this tab holds, in sessionStorage: it goes when the tab does, other tabs
  // and sites never see it, and unlike a cookie the browser sends it nowhere by itself.
  // It never goes in a URL (the server refuses one there: logs and history keep URLs).
  // docs.js reads the same key.
  const TOKEN_KEY = 'offload.token';
  const auth = {
    needed: false, // a 401 came: the sign-in form is up and the views are stopped
    token() {
      try {
        return sessionStorage.getItem(TOKEN_KEY) || '';
      } catch (e) {
        return '';
      }
    },
    set(token) {
      try {
        if (token) sessionStorage.setItem(TOKEN_KEY, token);
        else sessionStorage.removeItem(TOKEN_KEY);
      } catch (e) { /* storage refused: the token lives as long as this page */ }
      $('[data-testid="sign-out"]').hidden = !this.token();
    },
  };

  // fetch() with the token, when there is one. A 401 to the token it was sent with (not
  // to an older one, answered after a new sign-in) brings up the sign-in form. The
  // answer is returned as it came: callers handle the status as before.
  async function authFetch(url, init = {}) {
    const token = auth.token();
    const headers = new Headers(init.headers || {});
    if (token) headers.set('Authorization', 'Bearer ' + token);
    const res = await fetch(url, { ...init, headers });
    if (res.status === 401 && token === auth.token()) {
      const problem = await res.clone().json().catch(() => null);
      signIn.ask(problem, token);
    }
    return res;
  }

  // A result's bytes as a blob: URL (an <img src> or <a href> would be fetched without
  // the header). The page's CSP allows img-src blob:.
  async function fetchBlobUrl(url) {
    let res;
    try {
      res = await authFetch(url);
    } catch (e) {
      throw new ApiError(0, { title: 'Server unreachable', detail: `GET ${url}: ${e.message}` });
    }
    if (!res.ok) {
      const problem = await res.json().catch(() => null);
      throw new ApiError(res.status, problem || { title: `HTTP ${res.status}`, detail: `GET ${url}` });
    }
    return URL.createObjectURL(await res.blob());
  }

  // One call to the API. Resolves with the parsed JSON (or null for an empty body);
  // rejects with an ApiError holding the problem body for any non-2xx answer.
  async function api(path, { method = 'GET', body, headers = {} } = {}) {
    const init = { method, headers: { Accept: 'application/json', ...headers } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await authFetch(path, init);
    } catch (e) {
      throw new ApiError(0, { title: 'Server unreachable', detail: `${method} ${path}: ${e.message}` });
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = text;
      }
    }
    if (!res.ok) {
      const problem = data && typeof data === 'object' ? data
        : { title: `HTTP ${res.status} ${res.statusText}`, detail: `${method} ${path}: ${String(text).slice(0, 300)}` };
      throw new ApiError(res.status, problem);
    }
    return data;
  }

  // ---------------------------------------------------------------- live streams

  // Reads a Server-Sent Events stream into messages, as EventSource does (the WHATWG
  // HTML "event stream interpretation"): lines end at CRLF, LF or CR; a blank line ends
  // a message; `data:` lines join with \n; a line starting with ':' is a comment; one
  // space after the colon is dropped; `id:` holds until another one; `retry:` is a
  // number of milliseconds. A message with no data only sets the last id, and one the
  // stream ends inside is dropped.
  class SseParser {
    constructor(onMessage, onRetry) {
      this.onMessage = onMessage; // ({type, data, lastEventId, empty}) => void
      this.onRetry = onRetry; // (ms) => void
      this.decoder = new TextDecoder('utf-8'); // drops a leading BOM
      this.buffer = '';
      this.data = '';
      this.type = '';
      this.id = '';
      this.stopped = false; // set once the stream was closed: the rest is not read
    }

    push(bytes) {
      this.buffer += this.decoder.decode(bytes, { stream: true });
      let start = 0;
      for (;;) {
        const cr = this.buffer.indexOf('\r', start);
        const lf = this.buffer.indexOf('\n', start);
        if (cr < 0 && lf < 0) break;
        let end;
        let next;
        if (lf >= 0 && (cr < 0 || lf < cr)) {
          end = lf;
          next = lf + 1;
        } else if (cr === this.buffer.length - 1) {
          break; // a CR at the end of a chunk may be half of a CRLF
        } else {
          end = cr;
          next = this.buffer[cr + 1] === '\n' ? cr + 2 : cr + 1;
        }
        this.line(this.buffer.slice(start, end));
        start = next;
        if (this.stopped) return;
      }
      this.buffer = this.buffer.slice(start);
    }

    line(text) {
      if (text === '') {
        this.dispatch();
        return;
      }
      if (text[0] === ':') return;
      const colon = text.indexOf(':');
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? '' : text.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
      switch (field) {
        case 'data':
          this.data += value + '\n';
          break;
        case 'event':
          this.type = value;
          break;
        case 'id':
          if (!value.includes('\0')) this.id = value;
          break;
        case 'retry':
          if (/^[0-9]+$/.test(value)) this.onRetry(Number(value));
          break;
        default: // unknown fields are ignored
      }
    }

    dispatch() {
      const { data, type } = this;
      this.data = '';
      this.type = '';
      this.onMessage({ type: type || 'message', data: data.slice(0, -1), lastEventId: this.id, empty: data === '' });
    }
  }

  // A stream of events read with fetch(), so that it carries the token (EventSource
  // cannot send a header), used with or without one. It behaves as the EventSource it
  // replaces, and survives what EventSource alone does not:
  // - a lost connection or a stream that ends is opened again after the server's
  //   retry: time ('reconnecting'), resumed with Last-Event-ID;
  // - an answer that is not a stream (EventSource stops there for good: 'closed') is
  //   tried again every 5 s;
  // - while the tab is hidden for 30 s the stream is closed ('paused': browsers allow
  //   few connections per server; hidden tabs should not hold them) and opened again,
  //   resumed, when the tab is shown.
  // States: connecting, open, reconnecting, closed, paused.
  class LiveSource {
    constructor(url, handlers, onState) {
      this.url = url;
      this.handlers = handlers; // {eventName: (data, event) => void}
      this.onState = onState || (() => {});
      this.lastId = '';
      this.retryMs = 3000; // EventSource's usual start, until the stream says retry:
      this.ctrl = null; // the AbortController of the fetch under way, if any
      this.stopped = false;
      this.retryTimer = null;
      this.hideTimer = null;
      this.opens = 0;
      this.onVisibility = () => {
        if (document.hidden) {
          clearTimeout(this.hideTimer);
          this.hideTimer = setTimeout(() => this.pause(), 30000);
        } else {
          clearTimeout(this.hideTimer);
          if (!this.ctrl && !this.stopped) this.connect();
        }
      };
      document.addEventListener('visibilitychange', this.onVisibility);
      this.connect();
    }

    connect() {
      clearTimeout(this.retryTimer);
      if (this.stopped) return;
      this.onState('connecting');
      this.open();
    }

    async open() {
      if (this.stopped) return;
      if (this.ctrl) this.ctrl.abort();
      const ctrl = new AbortController();
      this.ctrl = ctrl;
      const headers = { Accept: 'text/event-stream' };
      if (this.lastId) headers['Last-Event-ID'] = this.lastId;
      let res;
      try {
        res = await authFetch(this.url, { headers, cache: 'no-store', signal: ctrl.signal });
      } catch (e) {
        if (this.ctrl === ctrl) this.lost();
        return;
      }
      if (this.ctrl !== ctrl) return;
      const type = (res.headers.get('Content-Type') || '').split(';')[0].trim().toLowerCase();
      if (res.status !== 200 || type !== 'text/event-stream' || !res.body) {
        ctrl.abort();
        this.ctrl = null;
        this.onState('closed', `HTTP ${res.status}`);
        this.retryTimer = setTimeout(() => this.connect(), 5000);
        return;
      }
      this.opens++;
      this.onState('open', this.opens);
      const parser = new SseParser((m) => this.deliver(m, ctrl, parser), (ms) => { this.retryMs = ms; });
      try {
        const reader = res.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done || this.ctrl !== ctrl) break;
          parser.push(value);
          if (this.ctrl !== ctrl) break;
        }
      } catch (e) {
        // Aborted by close() or pause(), or the connection broke.
      }
      if (this.ctrl === ctrl) this.lost();
    }

    // The stream broke or ended: open it again, resumed, as EventSource does.
    lost() {
      this.ctrl = null;
      this.onState('reconnecting');
      this.retryTimer = setTimeout(() => this.open(), this.retryMs);
    }

    deliver(m, ctrl, parser) {
      if (this.ctrl !== ctrl) {
        parser.stopped = true; // closed by a handler: nothing more from this answer
        return;
      }
      this.lastId = m.lastEventId;
      const fn = this.handlers[m.type];
      if (!fn || m.empty) return;
      let data = null;
      try {
        data = m.data ? JSON.parse(m.data) : null;
      } catch (err) {
        return;
      }
      fn(data, m);
      if (this.ctrl !== ctrl) parser.stopped = true;
    }

    abort() {
      clearTimeout(this.retryTimer);
      if (this.ctrl) this.ctrl.abort();
      this.ctrl = null;
    }

    pause() {
      if (this.stopped) return;
      this.abort();
      this.onState('paused');
    }

    close() {
      this.stopped = true;
      clearTimeout(this.hideTimer);
      document.removeEventListener('visibilitychange', this.onVisibility);
      this.abort();
    }
  }

  // The app's one stream of every job's status changes. Views listen on `bus`:
  // 'status' (detail: {id, task, status, attempt, at, error?}) and 'resync' (the
  // server could not resume the stream, or it started over: list again).
  const bus = new EventTarget();
  let live = null;
  function showLiveState(state, why) {
    const node = $('[data-testid="live"]');
    node.dataset.state = state;
    node.textContent = { open: 'live', connecting: 'connecting', reconnecting: 'reconnecting…', closed: 'offline', paused: 'paused' }[state] || state;
    node.title = why ? `GET /v1/events: ${why}` : 'GET /v1/events';
  }

  function openLive() {
    const source = new LiveSource('/v1/events?latest=1', {
      status: (data) => { if (data && data.id) bus.dispatchEvent(new CustomEvent('status', { detail: data })); },
      reset: () => bus.dispatchEvent(new Event('resync')),
    }, (state, arg) => {
      showLiveState(state, state === 'closed' ? arg : '');
      // A second open without any id seen could have missed events: refetch.
      if (state === 'open' && arg > 1 && !source.lastId) bus.dispatchEvent(new Event('resync'));
    });
    return source;
  }

  function onBus(name, fn) {
    const listener = (e) => fn(e.detail, e);
    bus.addEventListener(name, listener);
    return () => bus.removeEventListener(name, listener);
  }

  // ---------------------------------------------------------------- health

  const HEALTH_MS = 5000;
  async function pollHealth() {
    const node = $('[data-testid="health"]');
    const detailNode = $('[data-testid="health-detail"]');
    let status = 'unreachable';
    let detail = '';
    try {
      const res = await authFetch('/healthz', { headers: { Accept: 'application/json' } });
      const body = await res.json().catch(() => null);
      status = (body && body.status) || (res.ok ? 'ok' : `HTTP ${res.status}`);
      detail = (body && body.detail) || '';
    } catch (e) {
      detail = 'the server does not answer';
    }
    node.dataset.health = ['ok', 'degraded', 'draining'].includes(status) ? status : 'unreachable';
    node.textContent = status;
    node.title = detail ? `GET /healthz: ${detail}` : 'GET /healthz';
    detailNode.hidden = !detail || status === 'ok';
    detailNode.textContent = detail;
    setTimeout(pollHealth, HEALTH_MS);
  }

  // ---------------------------------------------------------------- metrics

  // Parses Prometheus's text format into [{name, labels, value}]; comments and lines
  // it cannot read are skipped.
  function parsePrometheus(text) {
    const out = [];
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line || line[0] === '#') continue;
      const m = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(line);
      if (!m) continue;
      let i = m[0].length;
      const labels = {};
      let ok = true;
      if (line[i] === '{') {
        i++;
        while (i < line.length && line[i] !== '}') {
          const km = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"/.exec(line.slice(i));
          if (!km) { ok = false; break; }
          i += km[0].length;
          let v = '';
          while (i < line.length && line[i] !== '"') {
            if (line[i] === '\\' && i + 1 < line.length) {
              const c = line[i + 1];
              v += c === 'n' ? '\n' : c;
              i += 2;
            } else {
              v += line[i++];
            }
          }
          i++;
          labels[km[1]] = v;
          while (line[i] === ',' || line[i] === ' ') i++;
        }
        if (line[i] !== '}') ok = false;
        i++;
      }
      if (!ok) continue;
      const value = parseNumber(line.slice(i).trim().split(/\s+/)[0]);
      if (value === null) continue;
      out.push({ name: m[0], labels, value });
    }
    return out;
  }

  function parseNumber(s) {
    if (s === '+Inf' || s === 'Inf') return Infinity;
    if (s === '-Inf') return -Infinity;
    if (s === 'NaN') return NaN;
    const v = Number(s);
    return s === '' || Number.isNaN(v) ? null : v;
  }

  // Prometheus's histogram_quantile: `buckets` are [[le, cumulative count]] sorted by
  // le and ending with +Inf; linear interpolation inside the bucket that holds the
  // rank; the +Inf bucket answers the highest finite bound. NaN without observations.
  function histogramQuantile(q, buckets) {
    if (buckets.length < 2 || buckets[buckets.length - 1][0] !== Infinity) return NaN;
    const fixed = [];
    let max = 0;
    for (const [le, c] of buckets) { max = Math.max(max, c); fixed.push([le, max]); }
    const total = fixed[fixed.length - 1][1];
    if (!(total > 0)) return NaN;
    const rank = q * total;
    let i = fixed.findIndex((b) => b[1] >= rank);
    if (i < 0) i = fixed.length - 1;
    if (i === fixed.length - 1) return fixed[fixed.length - 2][0];
    const upper = fixed[i][0];
    let lower = 0;
    let below = 0;
    if (i > 0) {
      lower = fixed[i - 1][0];
      below = fixed[i - 1][1];
    } else if (upper <= 0) {
      return upper;
    }
    const inBucket = fixed[i][1] - below;
    if (inBucket <= 0) return lower;
    return lower + (upper - lower) * ((rank - below) / inBucket);
  }

  // What the dashboard keeps of each scrape: per task, the finished counters by
  // status and the run-time histogram; and the process start, to see a restart.
  function toSample(series, t) {
    const finished = new Map();
    const buckets = new Map();
    let start = null;
    for (const s of series) {
      if (s.name === 'offload_jobs_finished_total') {
        const f = finished.get(s.labels.task) || { succeeded: 0, failed: 0, canceled: 0 };
        f[s.labels.status] = s.value;
        finished.set(s.labels.task, f);
      } else if (s.name === 'offload_job_run_seconds_bucket') {
        const le = parseNumber(s.labels.le);
        if (le === null) continue;
        const list = buckets.get(s.labels.task) || [];
        list.push([le, s.value]);
        buckets.set(s.labels.task, list);
      } else if (s.name === 'process_start_time_seconds') {
        start = s.value;
      }
    }
    for (const list of buckets.values()) list.sort((a, b) => a[0] - b[0]);
    return { t, start, finished, buckets };
  }

  // A counter's increase from a to b; a counter that went down was reset (a restart)
  // and counts from 0, as Prometheus's rate() does.
  function increase(b, a, restarted) {
    if (a === undefined || restarted) return b;
    return b >= a ? b - a : b;
  }

  const METRICS_MS = 5000;
  const HISTORY_MS = 10 * 60 * 1000;
  const metrics = {
    openedAt: new Date(),
    samples: [],
    listeners: new Set(),
    lastError: '',
    denied: null, // the ApiError of a 403: this token may not read /metrics
    timer: null,
    generation: 0, // bumped by reset(); a scrape of an older one is dropped

    // Forgets every scrape (another token may not see what this one saw) and stops.
    stop() {
      clearTimeout(this.timer);
      this.generation++;
      this.samples = [];
      this.lastError = '';
      this.denied = null;
    },

    // Starts again from nothing: at load and at each sign-in.
    reset() {
      this.stop();
      this.openedAt = new Date();
      this.poll();
    },

    async poll() {
      const gen = this.generation;
      if (auth.needed) return; // signing in starts it again
      try {
        const res = await authFetch('/metrics', { headers: { Accept: 'text/plain' } });
        if (gen !== this.generation) return;
        if (res.status === 403) {
          const problem = await res.json().catch(() => null);
          throw new ApiError(403, problem);
        }
        if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
        const text = await res.text();
        if (gen !== this.generation) return;
        const sample = toSample(parsePrometheus(text), Date.now());
        this.samples.push(sample);
        while (this.samples.length > 2 && sample.t - this.samples[1].t > HISTORY_MS) this.samples.shift();
        this.lastError = '';
        this.denied = null;
      } catch (e) {
        if (gen !== this.generation) return;
        this.denied = isDenied(e) ? e : null;
        this.lastError = this.denied ? '' : e.message;
      }
      for (const fn of this.listeners) fn();
      this.timer = setTimeout(() => this.poll(), METRICS_MS);
    },

    // The consecutive pairs of scrapes within the last `windowMs`.
    pairs(windowMs) {
      const s = this.samples;
      const out = [];
      if (s.length < 2) return out;
      const end = s[s.length - 1].t;
      for (let i = 1; i < s.length; i++) {
        if (end - s[i - 1].t > windowMs) continue;
        out.push([s[i - 1], s[i]]);
      }
      return out;
    },

    // Per task over the last `windowMs`: {finished, failed, perMinute, failedPerMinute}.
    rates(windowMs) {
      const pairs = this.pairs(windowMs);
      const out = new Map();
      if (!pairs.length) return out;
      const span = pairs[pairs.length - 1][1].t - pairs[0][0].t;
      for (const [a, b] of pairs) {
        const restarted = a.start !== b.start;
        for (const [task, f] of b.finished) {
          const prev = a.finished.get(task) || {};
          const r = out.get(task) || { finished: 0, failed: 0 };
          for (const st of ['succeeded', 'failed', 'canceled']) {
            const d = increase(f[st] || 0, prev[st], restarted);
            r.finished += d;
            if (st === 'failed') r.failed += d;
          }
          out.set(task, r);
        }
      }
      for (const r of out.values()) {
        r.perMinute = (r.finished / span) * 60000;
        r.failedPerMinute = (r.failed / span) * 60000;
      }
      return out;
    },

    // Per task: the run-time histogram of the jobs that ended in the last `windowMs`
    // as [[le, count]], and the whole one since the server started.
    histograms(windowMs) {
      const pairs = this.pairs(windowMs);
      const windowed = new Map();
      for (const [a, b] of pairs) {
        const restarted = a.start !== b.start;
        for (const [task, list] of b.buckets) {
          const prev = new Map(a.buckets.get(task) || []);
          const acc = windowed.get(task) || new Map();
          for (const [le, c] of list) acc.set(le, (acc.get(le) || 0) + increase(c, prev.get(le), restarted));
          windowed.set(task, acc);
        }
      }
      const last = this.samples[this.samples.length - 1];
      return {
        windowed: new Map([...windowed].map(([task, acc]) => [task, [...acc].sort((x, y) => x[0] - y[0])])),
        total: last ? last.buckets : new Map(),
      };
    },

    // The throughput chart's bars: [{t0, t1, finished, failed}], every task together.
    intervals() {
      const out = [];
      const s = this.samples;
      for (let i = 1; i < s.length; i++) {
        const a = s[i - 1];
        const b = s[i];
        const restarted = a.start !== b.start;
        let finished = 0;
        let failed = 0;
        for (const [task, f] of b.finished) {
          const prev = a.finished.get(task) || {};
          for (const st of ['succeeded', 'failed', 'canceled']) {
            const d = increase(f[st] || 0, prev[st], restarted);
            finished += d;
            if (st !== 'succeeded') failed += d;
          }
        }
        out.push({ t0: a.t, t1: b.t, finished, failed });
      }
      return out;
    },
  };

  // ---------------------------------------------------------------- shared bits

  function statusBadge(status, testid = 'job-status') {
    return h('span', { class: `badge status-${status}`, testid, data: { status } }, status);
  }

  function progressBar(p, testid = 'progress') {
    const known = Number.isFinite(p);
    const bar = h('div', { class: 'bar' });
    bar.style.width = known ? `${Math.max(0, Math.min(1, p)) * 100}%` : '0%';
    return h('div', {
      class: 'progress' + (known ? '' : ' unknown'), testid, role: 'progressbar',
      'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': known ? Math.round(p * 100) : null,
    }, bar, h('span', { class: 'progress-label' }, known ? fmt.percent(p) : 'no progress reported'));
  }

  // A cell whose text counts up from `since` (an RFC 3339 time) once a second while
  // the view's ticker runs.
  function liveDuration(since) {
    return h('span', { class: 'live-duration', data: { since } }, fmt.duration(Date.now() - Date.parse(since)));
  }

  function startTicker(root) {
    return setInterval(() => {
      for (const node of root.querySelectorAll('[data-since]')) {
        node.textContent = fmt.duration(Date.now() - Date.parse(node.dataset.since));
      }
    }, 1000);
  }

  function runTime(job) {
    if (!job.started_at) return '—';
    if (job.finished_at) return fmt.duration(fmt.between(job.started_at, job.finished_at));
    return job.status === 'running' ? liveDuration(job.started_at) : '—';
  }

  function queueWait(job) {
    if (job.started_at) return fmt.duration(fmt.between(job.created_at, job.started_at));
    if (job.status === 'queued' && job.created_at) return liveDuration(job.created_at);
    return '—';
  }

  // Orders a status event against a job object: whether the event is newer than the
  // state the object shows (events at the same millisecond: queued < running < final).
  const RANK = { queued: 0, running: 1, succeeded: 2, failed: 2, canceled: 2 };
  function eventIsNewer(ev, job) {
    const seen = Math.max(...[job.created_at, job.started_at, job.finished_at].map((x) => (x ? Date.parse(x) : 0)));
    const at = Date.parse(ev.at) || 0;
    if (at !== seen) return at > seen;
    return (RANK[ev.status] ?? 0) > (RANK[job.status] ?? 0);
  }

  // The job object after status event `ev`.
  function applyStatusEvent(job, ev) {
    const next = { ...job, status: ev.status };
    if (Number.isFinite(ev.attempt)) next.attempts = Math.max(job.attempts || 0, ev.attempt);
    if (ev.status === 'running') {
      next.started_at = ev.at;
      next.finished_at = null;
      next.position = null;
    } else if (ev.status === 'queued') {
      next.finished_at = null;
    } else {
      next.finished_at = ev.at;
      next.position = null;
      if (ev.error) next.error = ev.error;
      if (ev.status === 'succeeded') next.progress = 1;
    }
    return next;
  }

  async function loadTasks() {
    const data = await api('/v1/tasks');
    return (data && data.tasks) || [];
  }

  // One label and value of a <dl class="facts">, kept together for the grid.
  function fact(label, value, testid) {
    return h('div', { class: 'fact' }, h('dt', null, label), h('dd', { testid }, value));
  }

  function section(title, testid, ...children) {
    return h('section', { class: 'card', testid }, h('h2', null, title), children);
  }

  // ---------------------------------------------------------------- overview

  function overviewView() {
    let root = null;
    let timer = null;
    let tasks = [];
    let resources = [];
    let unlisten = [];
    let resizeObserver = null;
    let canvas = null;
    let loaded = false; // the tables wait for the first answers
    let denied = null; // the 403 of /v1/tasks or /v1/resources

    const refresh = async () => {
      try {
        const [t, r] = await Promise.all([api('/v1/tasks'), api('/v1/resources')]);
        tasks = (t && t.tasks) || [];
        resources = (r && r.resources) || [];
        loaded = true;
        denied = null;
        if (root) render();
      } catch (e) {
        if (isDenied(e)) {
          denied = e;
          if (root) render();
        } else {
          banner.error(e);
        }
      }
    };
    const refreshSoon = coalesce(refresh, 500);

    function taskTable() {
      const rates = metrics.rates(60000);
      const { windowed, total } = metrics.histograms(5 * 60000);
      const hasRates = metrics.samples.length >= 2;
      const rows = tasks.map((t) => {
        const r = rates.get(t.name);
        let hist = windowed.get(t.name);
        let since = 'of the jobs that ended in the last 5 minutes';
        if (!hist || !(hist.length && hist[hist.length - 1][1] > 0)) {
          hist = total.get(t.name) || [];
          since = 'since the server started (no job ended in the last 5 minutes)';
        }
        const p50 = histogramQuantile(0.5, hist);
        const p95 = histogramQuantile(0.95, hist);
        const w = t.workers;
        const workers = w
          ? h('a', { href: '#/workers', class: w.trouble ? 'bad' : '', title: w.trouble || 'idle · busy / configured' },
            `${w.ready} idle · ${w.busy} busy / ${w.configured}`, w.trouble ? ' ⚠' : '')
          : '—';
        const quantileCell = (v, testid, label) => h('td', {
          class: 'num' + (since.startsWith('since') ? ' muted' : ''), testid, 'data-label': label, title: `run time ${since}`,
        }, Number.isFinite(v) ? fmt.duration(v * 1000) : '—');
        return h('tr', { testid: 'task-row', data: { task: t.name } },
          h('th', { scope: 'row', 'data-label': 'Task' },
            h('a', { href: '#/jobs?task=' + enc(t.name) }, t.name),
            h('div', { class: 'sub mono' }, t.run || '')),
          h('td', { class: 'num', testid: 'task-queued', 'data-label': 'Queued' }, fmt.count(t.queued)),
          h('td', { class: 'num', testid: 'task-running', 'data-label': 'Running' }, fmt.count(t.running)),
          h('td', { testid: 'task-workers', 'data-label': 'Workers' }, workers),
          h('td', { class: 'num', testid: 'task-finished-rate', 'data-label': 'Finished/min' },
            hasRates ? fmt.rate(r ? r.perMinute : 0) : '—'),
          h('td', { class: 'num' + (r && r.failed > 0 ? ' bad' : ''), testid: 'task-failed-rate', 'data-label': 'Failed/min' },
            hasRates ? fmt.rate(r ? r.failedPerMinute : 0) : '—'),
          quantileCell(p50, 'task-p50', 'p50 run'),
          quantileCell(p95, 'task-p95', 'p95 run'));
      });
      return h('div', { class: 'table-wrap' },
        h('table', { class: 'grid stack', testid: 'task-table' },
          h('thead', null, h('tr', null,
            h('th', { scope: 'col' }, 'Task'), h('th', { scope: 'col', class: 'num' }, 'Queued'),
            h('th', { scope: 'col', class: 'num' }, 'Running'), h('th', { scope: 'col' }, 'Workers'),
            h('th', { scope: 'col', class: 'num' }, 'Finished/min'), h('th', { scope: 'col', class: 'num' }, 'Failed/min'),
            h('th', { scope: 'col', class: 'num' }, 'p50 run'), h('th', { scope: 'col', class: 'num' }, 'p95 run'))),
          h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: 8, class: 'muted' }, 'No tasks.')))));
    }

    function resourceTable() {
      const rows = resources.map((r) => {
        const used = r.capacity > 0 ? r.in_use / r.capacity : 0;
        return h('tr', { testid: 'resource-row', data: { resource: r.name } },
          h('th', { scope: 'row', 'data-label': 'Resource' }, r.name),
          h('td', { class: 'num', 'data-label': 'Capacity' }, fmt.count(r.capacity)),
          h('td', { 'data-label': 'In use', testid: 'resource-in-use' },
            h('div', { class: 'meter' }, progressMeter(used), h('span', null, `${fmt.count(r.in_use)} / ${fmt.count(r.capacity)}`))),
          h('td', { class: 'num', 'data-label': 'Queued demand' }, fmt.count(r.queued_demand)));
      });
      return h('div', { class: 'table-wrap' },
        h('table', { class: 'grid stack', testid: 'resource-table' },
          h('thead', null, h('tr', null,
            h('th', { scope: 'col' }, 'Resource'), h('th', { scope: 'col', class: 'num' }, 'Capacity'),
            h('th', { scope: 'col' }, 'In use'), h('th', { scope: 'col', class: 'num' }, 'Queued demand'))),
          h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: 4, class: 'muted' }, 'No resources.')))));
    }

    function progressMeter(fraction) {
      const bar = h('div', { class: 'bar' });
      bar.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
      return h('div', { class: 'progress thin' }, bar);
    }

    function render() {
      const opened = metrics.openedAt.toLocaleTimeString();
      if (denied) {
        fill($('[data-part="tables"]', root), deniedNote(denied));
      } else if (loaded) {
        fill($('[data-part="tables"]', root), h('div', { class: 'stack-v' },
          section('Tasks', 'tasks-section', taskTable()),
          section('Resources', 'resources-section', resourceTable())));
      }
      $('[data-testid="history-note"]', root).textContent =
        `History starts when this page was opened (${opened}) and keeps the last 10 minutes; a reload starts it again. ` +
        'Rates: the last minute (until the page has been open that long, the time since it opened). p50/p95: jobs that ended in the last 5 minutes (in grey: since the server started).' +
        (metrics.lastError ? ` Last scrape failed: ${metrics.lastError}.` : '');
      // A token that may not read /metrics: its reason instead of an empty chart.
      const metricsDenied = $('[data-testid="metrics-denied"]', root);
      fill(metricsDenied, metrics.denied ? deniedNote(metrics.denied, 'metrics-denied-reason') : null);
      metricsDenied.hidden = !metrics.denied;
      $('[data-part="chart"]', root).hidden = !!metrics.denied;
      drawChart();
    }

    function drawChart() {
      if (!canvas) return;
      const intervals = metrics.intervals();
      canvas.dataset.samples = String(metrics.samples.length);
      const dpr = window.devicePixelRatio || 1;
      const width = Math.max(200, canvas.parentElement.clientWidth);
      const height = 180;
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
      canvas.style.width = width + 'px';
      canvas.style.height = height + 'px';
      const ctx = canvas.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, width, height);
      const css = getComputedStyle(document.documentElement);
      const color = (name, fallback) => (css.getPropertyValue(name) || fallback).trim();
      const fg = color('--muted', '#666');
      const accent = color('--accent', '#2563eb');
      const bad = color('--bad', '#dc2626');
      const gridColor = color('--border', '#ddd');

      const left = 36;
      const right = 8;
      const top = 8;
      const bottom = 22;
      const plotW = width - left - right;
      const plotH = height - top - bottom;
      const now = Date.now();
      const span = Math.max(2 * 60000, Math.min(HISTORY_MS, now - metrics.openedAt.getTime()));
      const t0 = now - span;
      const per5s = intervals.map((iv) => {
        const scale = 5000 / Math.max(1, iv.t1 - iv.t0);
        return { ...iv, total: iv.finished * scale, bad: iv.failed * scale };
      });
      const maxValue = Math.max(1, ...per5s.map((iv) => iv.total));
      const step = niceStep(maxValue / 4);
      const ticks = Math.max(1, Math.ceil(maxValue / step - 1e-9));
      const yMax = step * ticks;
      const y = (v) => top + plotH - (v / yMax) * plotH;
      const x = (t) => left + ((t - t0) / span) * plotW;

      ctx.font = '11px system-ui, sans-serif';
      ctx.fillStyle = fg;
      ctx.strokeStyle = gridColor;
      ctx.lineWidth = 1;
      ctx.textAlign = 'right';
      ctx.textBaseline = 'middle';
      for (let i = 0; i <= ticks; i++) {
        const v = step * i;
        const yy = Math.round(y(v)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(left, yy);
        ctx.lineTo(width - right, yy);
        ctx.stroke();
        ctx.fillText(fmt.rate(v), left - 4, yy);
      }
      ctx.textAlign = 'center';
      ctx.textBaseline = 'top';
      const minutes = Math.round(span / 60000);
      for (let m = 0; m <= minutes; m += minutes > 5 ? 2 : 1) {
        const xx = x(now - m * 60000);
        ctx.fillText(m === 0 ? 'now' : `-${m} min`, Math.min(width - right - 10, Math.max(left + 10, xx)), top + plotH + 6);
      }
      for (const iv of per5s) {
        if (iv.t1 < t0) continue;
        const x0 = Math.max(left, x(iv.t0));
        const w = Math.max(1, x(iv.t1) - x0 - 1);
        ctx.fillStyle = accent;
        ctx.fillRect(x0, y(iv.total), w, y(0) - y(iv.total));
        if (iv.bad > 0) {
          ctx.fillStyle = bad;
          ctx.fillRect(x0, y(iv.bad), w, y(0) - y(iv.bad));
        }
      }
      const last = per5s[per5s.length - 1];
      canvas.setAttribute('aria-label', last
        ? `Jobs finished per 5 seconds over the last ${minutes} minutes; latest ${fmt.rate(last.total)}, peak ${fmt.rate(maxValue)}`
        : 'Jobs finished per 5 seconds: waiting for the second scrape of /metrics');
    }

    // The smallest of 1, 2 or 5 times a power of ten that is at least v.
    function niceStep(v) {
      const p = Math.pow(10, Math.floor(Math.log10(v)));
      for (const m of [1, 2, 5]) if (v <= m * p + 1e-12) return m * p;
      return 10 * p;
    }

    return {
      mount(container) {
        canvas = h('canvas', { testid: 'throughput-chart', role: 'img', 'aria-label': 'Jobs finished per 5 seconds', data: { samples: '0' } });
        root = h('div', { testid: 'overview-view' },
          h('h1', null, 'Overview'),
          h('div', { 'data-part': 'tables' }, h('p', { class: 'muted' }, 'Loading…')),
          section('Throughput: jobs finished per 5 s', 'throughput',
            h('div', { testid: 'metrics-denied', hidden: true }),
            h('div', { 'data-part': 'chart' },
              h('div', { class: 'chart' }, canvas),
              h('p', { class: 'legend' }, h('span', { class: 'swatch ok' }), 'finished ',
                h('span', { class: 'swatch bad' }), 'of which failed or canceled'),
              h('p', { class: 'note', testid: 'history-note' }))));
        fill(container, root);
        render();
        refresh();
        timer = setInterval(refresh, METRICS_MS);
        const onMetrics = () => render();
        metrics.listeners.add(onMetrics);
        unlisten = [onBus('status', refreshSoon), onBus('resync', refresh), () => metrics.listeners.delete(onMetrics)];
        resizeObserver = new ResizeObserver(() => drawChart());
        resizeObserver.observe(canvas.parentElement);
      },
      unmount() {
        clearInterval(timer);
        refreshSoon.cancel();
        for (const fn of unlisten) fn();
        if (resizeObserver) resizeObserver.disconnect();
        root = null;
        canvas = null;
      },
    };
  }

  // ---------------------------------------------------------------- jobs list

  const PAGE = 50;
  const MAX_FETCHES = 20; // jobs fetched at once to insert them live
  const MAX_LIVE_ROWS = 500; // past this many rows, new jobs are counted, not inserted

  function jobsView(params) {
    const filter = { status: params.get('status') || '', task: params.get('task') || '' };
    let root = null;
    let tbody = null;
    const rows = new Map(); // id -> {job, tr}
    let nextCursor = null;
    let loading = true;
    let pending = []; // status events that arrived while a page was loading
    const inflight = new Map(); // id -> [events seen while its job was fetched]
    let missed = 0;
    let ticker = null;
    let unlisten = [];
    let generation = 0; // bumped by every reload; answers of an older one are dropped

    const matches = (j) => (!filter.task || j.task === filter.task) && (!filter.status || j.status === filter.status);

    function row(job) {
      const progress = job.status === 'running' && Number.isFinite(job.progress) ? progressBar(job.progress, 'job-progress')
        : job.status === 'succeeded' ? '' : (Number.isFinite(job.progress) ? fmt.percent(job.progress) : '');
      const tr = h('tr', {
        testid: 'job-row', class: matches(job) ? '' : 'stale',
        title: matches(job) ? null : 'no longer matches the filter',
        data: { jobId: job.id, status: job.status, created: job.created_at || '' },
      },
      h('td', { 'data-label': 'Job', class: 'mono' }, h('a', { href: jobHref(job.id), testid: 'job-link' }, job.id),
        job.retry_of ? h('span', { class: 'sub', title: `retry of ${job.retry_of}` }, ' ↻') : null),
      h('td', { 'data-label': 'Task' }, job.task),
      h('td', { 'data-label': 'Status' }, statusBadge(job.status),
        job.error && job.status !== 'succeeded' ? h('div', { class: 'sub', title: job.error.message || '' }, job.error.type) : null),
      h('td', { 'data-label': 'Attempts', class: 'num' }, fmt.count(job.attempts)),
      h('td', { 'data-label': 'Created', title: job.created_at || '' }, fmt.time(job.created_at)),
      h('td', { 'data-label': 'Queue wait', class: 'num' }, queueWait(job)),
      h('td', { 'data-label': 'Run time', class: 'num' }, runTime(job)),
      h('td', { 'data-label': 'Progress' }, progress));
      return tr;
    }

    function put(job) {
      const old = rows.get(job.id);
      const tr = row(job);
      if (old) {
        old.tr.replaceWith(tr);
      } else {
        // Newest first: before the first row created earlier. A job older than every
        // row loaded belongs to a later page, unless this is the last page.
        const created = Date.parse(job.created_at) || 0;
        let before = null;
        for (const r of rows.values()) {
          if ((Date.parse(r.job.created_at) || 0) < created && (!before || Date.parse(r.job.created_at) > Date.parse(before.job.created_at))) {
            before = r;
          }
        }
        if (before) before.tr.before(tr);
        else if (nextCursor && rows.size) return;
        else tbody.appendChild(tr);
      }
      rows.set(job.id, { job, tr });
      updateEmpty();
    }

    function updateEmpty() {
      $('[data-testid="jobs-empty"]', root).hidden = loading || rows.size > 0;
      $('[data-testid="older-button"]', root).hidden = !nextCursor;
      $('[data-testid="jobs-count"]', root).textContent = loading ? 'Loading…'
        : `${rows.size} job${rows.size === 1 ? '' : 's'} shown${nextCursor ? ' (more below)' : ''}.`;
    }

    async function loadPage(cursor) {
      const gen = generation;
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (filter.status) q.set('status', filter.status);
      if (filter.task) q.set('task', filter.task);
      if (cursor) q.set('cursor', cursor);
      const data = await api('/v1/jobs?' + q.toString());
      if (gen !== generation || !root) return;
      nextCursor = data.next_cursor || null;
      for (const job of data.jobs || []) {
        if (rows.has(job.id)) continue;
        const tr = row(job);
        tbody.appendChild(tr);
        rows.set(job.id, { job, tr });
      }
    }

    async function reload() {
      generation++;
      loading = true;
      pending = [];
      rows.clear();
      missed = 0;
      nextCursor = null;
      fill(tbody);
      $('[data-testid="jobs-more"]', root).hidden = true;
      updateEmpty();
      const gen = generation;
      const deniedPart = $('[data-part="denied"]', root);
      fill(deniedPart);
      try {
        await loadPage(null);
      } catch (e) {
        if (isDenied(e) && gen === generation && root) fill(deniedPart, deniedNote(e));
        else banner.error(e);
      }
      if (gen !== generation || !root) return;
      loading = false;
      const events = pending;
      pending = [];
      for (const ev of events) onStatus(ev);
      updateEmpty();
    }

    async function older() {
      const button = $('[data-testid="older-button"]', root);
      button.disabled = true;
      try {
        await loadPage(nextCursor);
      } catch (e) {
        if (isDenied(e) && root) fill($('[data-part="denied"]', root), deniedNote(e));
        else banner.error(e);
      }
      button.disabled = false;
      updateEmpty();
    }

    function onStatus(ev) {
      if (!root) return;
      if (loading) {
        pending.push(ev);
        return;
      }
      const known = rows.get(ev.id);
      if (known) {
        if (eventIsNewer(ev, known.job)) put(applyStatusEvent(known.job, ev));
        return;
      }
      if (inflight.has(ev.id)) {
        inflight.get(ev.id).push(ev);
        return;
      }
      if (!matches(ev)) return;
      // A flood of new jobs is not fetched one by one: the table says how many it
      // did not show, and a click lists them again.
      if (inflight.size >= MAX_FETCHES || rows.size >= MAX_LIVE_ROWS) {
        missed++;
        const more = $('[data-testid="jobs-more"]', root);
        more.hidden = false;
        more.textContent = `${missed} more change${missed === 1 ? '' : 's'} not shown: list again`;
        return;
      }
      fetchNew(ev.id);
    }

    // A job the table does not show yet changed into the filter: fetch it whole, then
    // replay what happened to it meanwhile.
    async function fetchNew(id) {
      const gen = generation;
      inflight.set(id, []);
      let job = null;
      try {
        job = await api('/v1/jobs/' + enc(id));
      } catch (e) {
        if (!(e instanceof ApiError && (e.status === 404 || e.status === 403))) banner.error(e);
      }
      const late = inflight.get(id) || [];
      inflight.delete(id);
      if (!job || gen !== generation || !root) return;
      for (const ev of late) if (eventIsNewer(ev, job)) job = applyStatusEvent(job, ev);
      if (!rows.has(id) && matches(job)) put(job);
    }

    async function bulkCancel() {
      const status = filter.status === 'queued' || filter.status === 'running' ? filter.status : '';
      const what = `every ${status || 'queued and running'} job${filter.task ? ` of task “${filter.task}”` : ''}`;
      if (!window.confirm(`Cancel ${what}?`)) return;
      const button = $('[data-testid="bulk-cancel"]', root);
      const out = $('[data-testid="bulk-cancel-result"]', root);
      button.disabled = true;
      out.textContent = 'Canceling…';
      const body = {};
      if (filter.task) body.task = filter.task;
      if (status) body.status = status;
      if (!filter.task && !status) body.all = true;  // The server wants it said.
      try {
        const res = await api('/v1/jobs/cancel', { method: 'POST', body });
        const n = res && Number.isFinite(res.canceled) ? res.canceled : 0;
        out.textContent = `Canceled ${n} job${n === 1 ? '' : 's'}.`;
      } catch (e) {
        out.textContent = '';
        banner.error(e);
      }
      button.disabled = false;
    }

    function setFilter(key, value) {
      const q = new URLSearchParams();
      const next = { ...filter, [key]: value };
      if (next.status) q.set('status', next.status);
      if (next.task) q.set('task', next.task);
      const qs = q.toString();
      location.hash = '#/jobs' + (qs ? '?' + qs : '');
    }

    async function fillTasks(select) {
      try {
        const tasks = await loadTasks();
        const names = tasks.map((t) => t.name);
        if (filter.task && !names.includes(filter.task)) names.push(filter.task);
        fill(select, h('option', { value: '' }, 'any task'),
          names.map((n) => h('option', { value: n, selected: n === filter.task }, n)));
      } catch (e) {
        if (!isDenied(e)) banner.error(e); // the table says it
      }
    }

    return {
      mount(container) {
        const statusSelect = h('select', { testid: 'status-filter', id: 'status-filter', onchange: (e) => setFilter('status', e.target.value) },
          h('option', { value: '' }, 'any status'),
          STATUSES.map((s) => h('option', { value: s, selected: s === filter.status }, s)));
        const taskSelect = h('select', { testid: 'task-filter', id: 'task-filter', onchange: (e) => setFilter('task', e.target.value) },
          h('option', { value: '' }, 'any task'),
          filter.task ? h('option', { value: filter.task, selected: true }, filter.task) : null);
        const cancellable = !filter.status || filter.status === 'queued' || filter.status === 'running';
        const bulkLabel = filter.status === 'queued' ? 'Cancel all queued'
          : filter.status === 'running' ? 'Cancel all running' : 'Cancel all queued and running';
        tbody = h('tbody');
        root = h('div', { testid: 'jobs-view' },
          h('h1', null, 'Jobs'),
          h('div', { class: 'toolbar' },
            h('label', { for: 'status-filter' }, 'Status ', statusSelect),
            h('label', { for: 'task-filter' }, 'Task ', taskSelect),
            h('button', { type: 'button', testid: 'refresh-button', onclick: () => reload() }, 'Refresh'),
            h('span', { class: 'spacer' }),
            h('button', {
              type: 'button', class: 'danger', testid: 'bulk-cancel', disabled: !cancellable,
              title: cancellable ? `${bulkLabel}${filter.task ? ' of ' + filter.task : ''} (POST /v1/jobs/cancel)` : 'no job of a final status can be canceled',
              onclick: bulkCancel,
            }, bulkLabel + (filter.task ? ` ${filter.task}` : '')),
            h('span', { class: 'muted', testid: 'bulk-cancel-result', 'aria-live': 'polite' })),
          h('p', { class: 'muted', testid: 'jobs-count' }),
          h('div', { 'data-part': 'denied' }),
          h('button', { type: 'button', class: 'link', testid: 'jobs-more', hidden: true, onclick: () => reload() }),
          h('div', { class: 'table-wrap' },
            h('table', { class: 'grid stack jobs', testid: 'jobs-table' },
              h('thead', null, h('tr', null,
                ['Job', 'Task', 'Status', 'Attempts', 'Created', 'Queue wait', 'Run time', 'Progress']
                  .map((c) => h('th', { scope: 'col', class: ['Attempts', 'Queue wait', 'Run time'].includes(c) ? 'num' : '' }, c)))),
              tbody)),
          h('p', { class: 'muted', testid: 'jobs-empty', hidden: true }, 'No jobs match.'),
          h('button', { type: 'button', testid: 'older-button', hidden: true, onclick: older }, 'Older'));
        fill(container, root);
        unlisten = [onBus('status', onStatus), onBus('resync', () => reload())];
        ticker = startTicker(root);
        fillTasks(taskSelect);
        reload();
      },
      unmount() {
        generation++;
        for (const fn of unlisten) fn();
        clearInterval(ticker);
        root = null;
      },
    };
  }

  // ---------------------------------------------------------------- one job

  function jobView(id) {
    let root = null;
    let job = null;
    let stream = null;
    let ticker = null;
    let busy = false;
    const blobUrls = new Map(); // result URL -> Promise of its blob: URL

    function facts() {
      const item = fact;
      return h('dl', { class: 'facts' },
        item('Task', h('a', { href: '#/jobs?task=' + enc(job.task) }, job.task), 'job-task'),
        item('Attempts', fmt.count(job.attempts), 'job-attempts'),
        item('Priority', String(job.priority ?? 0)),
        job.status === 'queued' && job.position !== null && job.position !== undefined
          ? item('Position', `${job.position} ahead`, 'job-position') : null,
        item('Created', h('span', { title: job.created_at || '' }, fmt.time(job.created_at)), 'job-created'),
        item('Started', h('span', { title: job.started_at || '' }, fmt.time(job.started_at)), 'job-started'),
        item('Finished', h('span', { title: job.finished_at || '' }, fmt.time(job.finished_at)), 'job-finished'),
        item('Queue wait', queueWait(job), 'job-queue-wait'),
        item('Run time', runTime(job), 'job-run-time'));
    }

    function actions() {
      const out = [];
      if (job.status === 'queued' || job.status === 'running') {
        out.push(h('button', { type: 'button', class: 'danger', testid: 'cancel-button', disabled: busy, onclick: cancel }, 'Cancel'));
      }
      if (job.status === 'failed' || job.status === 'canceled') {
        out.push(h('button', { type: 'button', testid: 'retry-button', disabled: busy, onclick: retry }, 'Retry'));
      }
      return h('div', { class: 'actions' }, out);
    }

    function errorSection() {
      if (!job.error) return null;
      const e = job.error;
      return section('Error', 'error',
        h('p', null, h('code', { class: 'error-type', testid: 'error-type' }, e.type || 'unknown')),
        h('pre', { class: 'error-message', testid: 'error-message' }, e.message || ''),
        e.detail ? h('details', null, h('summary', null, 'Detail'), h('pre', { testid: 'error-detail' }, e.detail)) : null);
    }

    function historySection() {
      const list = job.error_history;
      if (!Array.isArray(list) || !list.length) return null;
      return section('Earlier attempts', 'error-history',
        h('ol', { class: 'history' }, list.map((e) => h('li', { testid: 'error-history-item' },
          h('code', null, e.type || 'unknown'), ' ', h('span', null, e.message || ''),
          e.detail ? h('pre', null, e.detail) : null))));
    }

    function jsonBlock(value, testid, moreHref) {
      const [text, cut] = prettyJson(value);
      const pre = h('pre', { class: 'json', testid }, text);
      // A new tab would fetch it without the token: with one, the page shows it all here.
      const whole = (e) => {
        if (!auth.token()) return;
        e.preventDefault();
        pre.textContent = prettyJson(value, Infinity)[0];
        e.target.closest('p').remove();
      };
      return [pre,
        cut ? h('p', { class: 'note' }, 'Cut at 20,000 characters. ', moreHref ? h('a', { href: moreHref, target: '_blank', rel: 'noopener', onclick: whole }, 'The whole of it') : null) : null];
    }

    // The result's bytes as a blob: URL, fetched once per page (the page renders again
    // at every event) and released when the page goes.
    function resultBlobUrl(url) {
      if (!blobUrls.has(url)) {
        const p = fetchBlobUrl(url);
        blobUrls.set(url, p);
        p.catch(() => blobUrls.delete(url));
      }
      return blobUrls.get(url);
    }

    // Without a token the link is followed as it is (the browser streams the result to
    // disk); with one, the bytes are fetched with it and saved from a blob: URL.
    function download(e, url, name) {
      if (!auth.token()) return;
      e.preventDefault();
      resultBlobUrl(url).then((blobUrl) => {
        const a = h('a', { href: blobUrl, download: name, hidden: true });
        document.body.appendChild(a);
        a.click();
        a.remove();
      }).catch((err) => banner.error(err));
    }

    function inputSection() {
      const body = 'input' in job ? jsonBlock(job.input, 'input-preview')
        : h('p', { class: 'muted', testid: 'input-preview' }, 'Not shown: the API does not return a job’s input.');
      const files = Array.isArray(job.files) && job.files.length
        ? h('ul', { class: 'files' }, job.files.map((f) => h('li', null,
          h('code', null, f.filename || f.field || 'file'), ` ${f.content_type || ''}, ${fmt.bytes(f.size)}`)))
        : null;
      return section('Input', 'input', body, files);
    }

    function resultSection() {
      if (job.status !== 'succeeded') return null;
      const url = `/v1/jobs/${enc(job.id)}/result`;
      const type = job.result_type || 'application/json';
      const size = Number.isFinite(job.result_size) ? `, ${fmt.bytes(job.result_size)}` : '';
      const link = h('a', { href: url, download: job.id, testid: 'result-download', onclick: (e) => download(e, url, job.id) },
        `Download (${type}${size})`);
      const base = type.split(';')[0].trim().toLowerCase();
      let body;
      if (base === 'application/json' || base.endsWith('+json')) {
        if ('result' in job) {
          body = jsonBlock(job.result, 'result-preview', url);
        } else {
          body = h('pre', { class: 'json', testid: 'result-preview' }, 'Loading…');
          api(url).then((v) => { body.textContent = prettyJson(v)[0]; })
            .catch((e) => { if (isDenied(e)) body.replaceWith(deniedNote(e)); else banner.error(e); });
        }
      } else if (base.startsWith('image/')) {
        // Fetched as a blob, with or without a token: one way, and an <img src> could not send it.
        const img = h('img', { alt: `result of job ${job.id}`, class: 'result-image', testid: 'result-image' });
        body = img;
        resultBlobUrl(url).then((blobUrl) => { img.src = blobUrl; })
          .catch((e) => img.replaceWith(isDenied(e) ? deniedNote(e) : h('p', { class: 'muted', testid: 'result-image-error' }, e.message)));
      } else if (base.startsWith('text/')) {
        body = h('pre', { testid: 'result-preview' }, 'Loading…');
        authFetch(url, { headers: { Range: 'bytes=0-8191' } })
          .then(async (r) => {
            if (r.ok) return r.text();
            const p = await r.json().catch(() => null);
            throw new Error(p && p.title ? `${p.title}${p.detail ? ' — ' + p.detail : ''}` : `GET ${url} answered ${r.status}`);
          })
          .then((t) => { body.textContent = t + (job.result_size > 8192 ? '\n…' : ''); })
          .catch((e) => { body.textContent = e.message; });
      } else {
        body = h('p', { class: 'muted' }, 'A binary result.');
      }
      return section('Result', 'result', body, h('p', null, link));
    }

    function mapSection() {
      const m = job.map;
      if (!m) return null;
      const item = (label, value) => fact(label, value === null || value === undefined ? '—' : String(value));
      return section('Parallel map', 'map',
        h('dl', { class: 'facts' }, item('Elements', m.total), item('Done', m.done), item('Failed', m.failed),
          item('Running', m.running), item('Chunk', m.chunk === null ? 'adaptive' : m.chunk), item('On error', m.on_error),
          item('Failed element', m.failed_index)));
    }

    function render() {
      if (!root) return;
      const live = job.status === 'queued' || job.status === 'running';
      fill(root, 
        h('p', { class: 'crumbs' }, h('a', { href: '#/jobs' }, '← Jobs')),
        h('div', { class: 'title-row' },
          h('h1', null, 'Job ', h('code', { testid: 'job-id' }, job.id)),
          statusBadge(job.status),
          actions()),
        job.retry_of ? h('p', { testid: 'retry-of' }, 'Retry of ', h('a', { href: jobHref(job.retry_of), testid: 'retry-of-link', class: 'mono' }, job.retry_of)) : null,
        section('Status', 'job-facts', facts(),
          (live || Number.isFinite(job.progress)) && job.status !== 'succeeded' ? progressBar(job.progress) : null,
          job.status === 'succeeded' ? progressBar(1) : null),
        errorSection(),
        historySection(),
        mapSection(),
        resultSection(),
        inputSection());
    }

    function updateProgress(p) {
      job = { ...job, progress: p };
      const bar = $('[data-testid="progress"]', root);
      if (!bar) return render();
      bar.replaceWith(progressBar(p));
    }

    function openStream() {
      if (stream || FINAL.has(job.status)) return;
      stream = new LiveSource(`/v1/jobs/${enc(id)}/events`, {
        job: (data) => {
          if (!data || data.id !== id) return;
          job = data;
          render();
          // The stream ends with the final job; an EventSource would reconnect.
          if (FINAL.has(job.status)) closeStream();
        },
        status: (ev) => {
          if (ev && ev.id === id && eventIsNewer(ev, job)) {
            job = applyStatusEvent(job, ev);
            render();
          }
        },
        progress: (ev) => { if (ev && ev.id === id && Number.isFinite(ev.progress)) updateProgress(ev.progress); },
      }, (state) => {
        // Not a stream (the job is gone, the server refuses): read the job again,
        // which says why and opens a new stream if it still runs.
        if (state === 'closed') {
          closeStream();
          setTimeout(() => { if (root) load(); }, 3000);
        }
      });
    }

    function closeStream() {
      if (stream) stream.close();
      stream = null;
    }

    async function load() {
      try {
        job = await api('/v1/jobs/' + enc(id) + '?include=input');
      } catch (e) {
        if (!isDenied(e)) banner.error(e);
        if (root) {
          fill(root, h('p', { class: 'crumbs' }, h('a', { href: '#/jobs' }, '← Jobs')),
            h('h1', null, 'Job ', h('code', null, id)),
            isDenied(e) ? deniedNote(e)
              : h('p', { class: 'muted', testid: 'job-missing' }, e instanceof ApiError && e.status === 404 ? 'No such job (or it was removed by retention).' : 'Could not load this job.'));
        }
        return;
      }
      if (!root) return;
      render();
      openStream();
    }

    async function cancel() {
      busy = true;
      render();
      try {
        job = await api('/v1/jobs/' + enc(id), { method: 'DELETE' });
      } catch (e) {
        banner.error(e);
        try { job = await api('/v1/jobs/' + enc(id)); } catch (e2) { /* the first error is shown */ }
      }
      busy = false;
      render();
    }

    async function retry() {
      busy = true;
      render();
      try {
        const fresh = await api(`/v1/jobs/${enc(id)}/retry`, { method: 'POST' });
        busy = false;
        if (fresh && fresh.id) {
          location.hash = jobHref(fresh.id);
          return;
        }
      } catch (e) {
        banner.error(e);
      }
      busy = false;
      render();
    }

    return {
      mount(container) {
        root = h('div', { testid: 'job-view', data: { jobId: id } }, h('p', { class: 'muted' }, 'Loading…'));
        fill(container, root);
        ticker = startTicker(root);
        load();
      },
      unmount() {
        closeStream();
        clearInterval(ticker);
        for (const p of blobUrls.values()) p.then((u) => URL.revokeObjectURL(u), () => {});
        blobUrls.clear();
        root = null;
      },
    };
  }

  // ---------------------------------------------------------------- workers

  function workersView() {
    let root = null;
    let timer = null;
    let unlisten = null;

    function card(t) {
      const w = t.workers;
      const item = (label, value, testid) => fact(label, value === null || value === undefined || value === '' ? '—' : String(value), testid);
      return h('section', { class: 'card worker-card' + (w.trouble ? ' trouble' : ''), testid: 'worker-card', data: { task: t.name } },
        h('h2', null, t.name, ' ', h('span', { class: 'sub mono' }, t.run || '')),
        w.trouble ? h('p', { class: 'trouble-text', testid: 'worker-trouble', role: 'status' }, '⚠ ', w.trouble) : null,
        h('dl', { class: 'facts' },
          item('Configured', w.configured, 'worker-configured'),
          item('Starting', w.starting, 'worker-starting'),
          item('Idle (ready)', w.ready, 'worker-ready'),
          item('Busy', w.busy, 'worker-busy'),
          item('Started', w.started, 'worker-started'),
          item('Restarts', w.restarts, 'worker-restarts'),
          item('Features', (w.features || []).join(', ')),
          item('Last exit', w.last_exit, 'worker-last-exit')),
        (w.processes || []).length ? h('div', null, h('h3', null, 'Processes'),
          h('table', { class: 'processes', testid: 'worker-processes' },
            h('thead', null, h('tr', null, h('th', null, 'PID'), h('th', null, 'State'), h('th', { class: 'num' }, 'Jobs served'))),
            h('tbody', null, ...w.processes.map((p) => h('tr', { testid: 'worker-process', data: { pid: String(p.pid) } },
              h('td', { class: 'mono' }, String(p.pid)), h('td', null, p.state), h('td', { class: 'num' }, String(p.jobs))))))) : null,
        w.last_error ? h('div', { testid: 'worker-last-error' },
          h('h3', null, 'Last start-up error'),
          h('p', null, h('code', null, w.last_error.type || 'unknown'), ' ', w.last_error.message || ''),
          w.last_error.detail ? h('pre', null, w.last_error.detail) : null) : null,
        w.stderr_tail ? h('div', null, h('h3', null, 'stderr of the last unexpected exit'),
          h('pre', { class: 'stderr', testid: 'worker-stderr' }, w.stderr_tail)) : null);
    }

    async function refresh() {
      let tasks;
      try {
        tasks = await loadTasks();
      } catch (e) {
        if (!isDenied(e)) banner.error(e);
        else if (root) fill($('[data-part="cards"]', root), deniedNote(e));
        return;
      }
      if (!root) return;
      const withWorkers = tasks.filter((t) => t.workers);
      fill($('[data-part="cards"]', root), withWorkers.length ? withWorkers.map(card)
        : h('p', { class: 'muted', testid: 'workers-empty' }, 'No task keeps persistent workers (worker or python tasks).'));
    }

    return {
      mount(container) {
        root = h('div', { testid: 'workers-view' }, h('h1', null, 'Workers'),
          h('p', { class: 'note intro' }, 'Tasks with persistent worker processes (worker and python tasks), from GET /v1/tasks, every 5 s.'),
          h('div', { 'data-part': 'cards', class: 'cards' }, h('p', { class: 'muted' }, 'Loading…')));
        fill(container, root);
        refresh();
        timer = setInterval(refresh, 5000);
        unlisten = onBus('resync', refresh);
      },
      unmount() {
        clearInterval(timer);
        if (unlisten) unlisten();
        root = null;
      },
    };
  }

  // ---------------------------------------------------------------- router

  let current = null;

  function route() {
    if (auth.needed) return; // signing in mounts the view the hash names
    const raw = location.hash.replace(/^#/, '') || '/';
    const [path, query = ''] = raw.split('?');
    const parts = path.split('/').filter(Boolean).map((p) => {
      try { return decodeURIComponent(p); } catch (e) { return p; }
    });
    const params = new URLSearchParams(query);
    let name;
    let view;
    if (parts.length === 0) {
      name = 'overview';
      view = overviewView();
    } else if (parts[0] === 'jobs' && parts.length === 1) {
      name = 'jobs';
      view = jobsView(params);
    } else if (parts[0] === 'jobs' && parts.length === 2) {
      name = 'jobs';
      view = jobView(parts[1]);
    } else if (parts[0] === 'workers') {
      name = 'workers';
      view = workersView();
    } else {
      name = '';
      view = {
        mount(c) { fill(c, h('h1', null, 'Not found'), h('p', null, 'No page at ', h('code', null, '#' + raw), '. ', h('a', { href: '#/' }, 'Overview'))); },
        unmount() {},
      };
    }
    if (current) current.unmount();
    current = view;
    for (const a of document.querySelectorAll('.nav a[data-route]')) {
      if (a.dataset.route === name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const titles = { overview: 'Overview', jobs: parts.length === 2 ? `Job ${parts[1]}` : 'Jobs', workers: 'Workers' };
    document.title = `${titles[name] || 'Not found'} · offload`;
    view.mount($('#view'));
  }

  // ---------------------------------------------------------------- sign-in

  // Everything that reads the API with the token: started at load and at each sign-in,
  // stopped when a 401 asks for a token, so that nothing of one token's view outlives it.
  function beginApp() {
    if (live) live.close();
    live = openLive();
    route();
    metrics.reset();
  }

  function stopApp() {
    if (current) current.unmount();
    current = null;
    fill($('#view'));
    if (live) live.close();
    live = null;
    showLiveState('closed', 'a token is needed');
    metrics.stop();
    banner.hide();
  }

  // The form of index.html, shown at the first 401 to the token this tab holds (or to
  // none). A token is tried on GET /v1/tasks before it is kept: a 401 there is a token
  // the server does not know; anything else (a 403 too) is one it does.
  const signIn = {
    ask(problem, sent) {
      if (auth.needed) return;
      auth.needed = true;
      if (sent) auth.set(''); // refused: of no more use
      stopApp();
      $('[data-testid="sign-in-message"]').textContent = sent
        ? 'The server no longer takes the token this tab held (revoked, or the server changed). Sign in again.'
        : 'This server takes requests with a token only. Sign in with yours.';
      $('[data-testid="sign-in-error"]').textContent = '';
      $('[data-testid="sign-in"]').hidden = false;
      $('#view').hidden = true;
      $('[data-testid="sign-in-token"]').focus();
    },

    async submit(e) {
      e.preventDefault();
      const input = $('[data-testid="sign-in-token"]');
      const button = $('[data-testid="sign-in-button"]');
      const error = $('[data-testid="sign-in-error"]');
      const token = input.value.trim();
      // What a header can carry (fetch would throw): a token is one printable word.
      if (!/^[\x21-\x7e]+$/.test(token)) {
        error.textContent = 'A token is one word, as offload token create prints it.';
        return;
      }
      button.disabled = true;
      error.textContent = '';
      let res = null;
      try {
        res = await fetch('/v1/tasks', { headers: { Accept: 'application/json', Authorization: 'Bearer ' + token } });
      } catch (err) {
        error.textContent = `The server does not answer (${err.message}).`;
      }
      button.disabled = false;
      if (!res || !auth.needed) return;
      if (res.status === 401) {
        error.textContent = 'The server does not know this token: mistyped, or revoked.';
        input.select();
        return;
      }
      input.value = '';
      auth.set(token);
      auth.needed = false;
      $('[data-testid="sign-in"]').hidden = true;
      $('#view').hidden = false;
      beginApp();
    },
  };

  // Forgets the token and starts again without one: a server with [auth] answers 401
  // and the form comes back; one without goes on as before.
  function signOut() {
    auth.set('');
    stopApp();
    beginApp();
  }

  function start() {
    $('[data-testid="banner-dismiss"]').addEventListener('click', () => banner.hide());
    $('[data-testid="sign-in"]').addEventListener('submit', (e) => signIn.submit(e));
    $('[data-testid="sign-out"]').addEventListener('click', signOut);
    $('[data-testid="sign-out"]').hidden = !auth.token();
    window.addEventListener('hashchange', route);
    beginApp();
    pollHealth();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
