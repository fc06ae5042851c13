/* rask dashboard: the one script of every page (plain ES2020, no dependencies).
 *
 * Each page's <body data-page="..."> says which view to run. Every page listens to the
 * server-sent `snapshot` events of /api/events (data = the body of /api/status) and, where it
 * shows more, fetches its endpoint after each snapshot, never with two fetches of one endpoint
 * in flight (a snapshot arriving meanwhile asks for one more fetch when the current returns).
 *
 * Memory stays bounded however long a page stays open: the task stream keeps at most
 * MAX_RECORDS records and is drawn on one canvas; every other view updates its rows in place,
 * keyed by name, so the DOM holds one element per prefix / worker / graph node.
 */
(function () {
  'use strict';

  const MAX_RECORDS = 5000;
  // Records asked for per snapshot: the newest this many (Dask's task stream draws 1000
  // rectangles at a time too). More would cost the scheduler's machine CPU for bars that
  // are drawn a pixel wide, if at all.
  const FETCH_RECORDS = 1000;
  const STREAM_WINDOW_MS = 10000;
  const STATES = ['waiting', 'queued', 'processing', 'memory', 'erred', 'released'];
  const STATE_COLORS = {
    waiting: '#b8bec6',
    queued: '#dfe3e8',
    processing: '#2ca02c',
    memory: '#d62728',
    erred: '#111111',
    released: '#5b8fd6',
  };
  const KIND_COLORS = { transfer: '#e0302b', spill: '#ff8c1a' };

  const pageName = document.body.dataset.page || '';

  /** What tests and curious users can read: see docs/dashboard.md. */
  const R = {
    page: pageName,
    seq: null,
    status: null,
    records: [],
    connected: false,
    lastRecordId: null,
    dropped: 0,
    lastError: null,
    prefixColor: prefixColor,
  };
  window.raskDashboard = R;

  // ---------------------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------------------

  const $ = (sel, root) => (root || document).querySelector(sel);

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }

  /** Sets an attribute / text only when it changes (cheap redraws, no layout churn). */
  function setData(e, name, value) {
    const v = String(value);
    if (e.dataset[name] !== v) e.dataset[name] = v;
  }
  function setText(e, text) {
    const t = String(text);
    if (e.textContent !== t) e.textContent = t;
  }
  function setWidth(e, frac) {
    const w = (Math.max(0, Math.min(1, frac || 0)) * 100).toFixed(3) + '%';
    if (e.style.width !== w) e.style.width = w;
  }

  const num = (v) => (typeof v === 'number' && isFinite(v) ? v : 0);

  function fmtInt(n) {
    return Math.round(num(n)).toLocaleString('en-US');
  }

  function fmtBytes(n) {
    n = num(n);
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let v = Math.abs(n);
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    const s = i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0);
    return (n < 0 ? '-' : '') + s + ' ' + units[i];
  }

  function fmtRate(n) {
    return fmtBytes(n) + '/s';
  }

  function fmtDuration(ms) {
    ms = num(ms);
    if (ms < 0) ms = 0;
    if (ms < 1000) return ms < 10 ? ms.toFixed(1) + ' ms' : Math.round(ms) + ' ms';
    const s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + ' s';
    const total = Math.floor(s);
    const d = Math.floor(total / 86400);
    const h = Math.floor((total % 86400) / 3600);
    const m = Math.floor((total % 3600) / 60);
    const sec = total % 60;
    const pad = (x) => String(x).padStart(2, '0');
    if (d > 0) return d + 'd ' + h + 'h ' + pad(m) + 'm';
    if (h > 0) return h + 'h ' + pad(m) + 'm ' + pad(sec) + 's';
    return m + 'm ' + pad(sec) + 's';
  }

  function fmtClock(ms) {
    const d = new Date(num(ms));
    const pad = (x) => String(x).padStart(2, '0');
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function fmtDate(ms) {
    const d = new Date(num(ms));
    const pad = (x) => String(x).padStart(2, '0');
    return (
      d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + fmtClock(ms)
    );
  }

  // ---------------------------------------------------------------------------------------
  // Colour per task prefix: a stable hash of the string -> HSL, the same on every page.
  // ---------------------------------------------------------------------------------------

  function hashString(s) {
    // FNV-1a, 32 bits, then a final avalanche so that close strings differ in every byte.
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h >>> 0;
  }

  const colorCache = new Map();
  /** `dl` shifts the lightness (negative: darker, positive: lighter). */
  function prefixColor(prefix, dl) {
    const key = String(prefix) + '|' + (dl || 0);
    let c = colorCache.get(key);
    if (c) return c;
    const h = hashString(String(prefix));
    // Hue from the hash; three lightness and two saturation levels, so that two prefixes
    // whose hues fall close still differ.
    const hue = h % 360;
    const sat = 55 + ((h >>> 9) % 2) * 15;
    const light = Math.max(8, Math.min(94, 38 + ((h >>> 17) % 3) * 10 + (dl || 0)));
    c = 'hsl(' + hue + ', ' + sat + '%, ' + light + '%)';
    if (colorCache.size > 2000) colorCache.clear(); // bounded
    colorCache.set(key, c);
    return c;
  }

  // ---------------------------------------------------------------------------------------
  // Connection state, badge
  // ---------------------------------------------------------------------------------------

  const badge = $('#conn');
  let authProblem = false;

  function showBadge() {
    if (!badge) return;
    badge.textContent = '';
    if (authProblem) {
      badge.className = 'badge warn';
      const a = el('a', null, 'token needed: log in');
      a.href = location.pathname;
      badge.appendChild(a);
    } else if (R.connected) {
      badge.className = 'badge ok';
      badge.textContent = 'live';
    } else {
      badge.className = 'badge bad';
      badge.textContent = R.status ? 'disconnected' : 'connecting\u2026';
    }
    badge.dataset.connected = String(R.connected);
    if (R.lastError) badge.title = R.lastError;
    else badge.removeAttribute('title');
  }

  function setConnected(on) {
    if (on) authProblem = false;
    if (R.connected === on) return;
    R.connected = on;
    document.body.dataset.connected = String(on);
    showBadge();
  }

  function noteError(what, err) {
    R.lastError = what + ': ' + (err && err.message ? err.message : String(err));
    if (err && err.status === 401) authProblem = true;
    showBadge();
  }

  function getJSON(url) {
    return fetch(url, {
      cache: 'no-store',
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
    }).then((resp) => {
      if (!resp.ok) {
        const e = new Error('HTTP ' + resp.status + ' for ' + url);
        e.status = resp.status;
        throw e;
      }
      return resp.json();
    });
  }

  // ---------------------------------------------------------------------------------------
  // Fetching after snapshots: one request per endpoint in flight at most
  // ---------------------------------------------------------------------------------------

  let lastSnapSeq = -1;
  const pollers = [];

  /** The page's `seq`: the oldest snapshot every part of the page has caught up with. */
  function commit() {
    let seq = lastSnapSeq;
    for (const p of pollers) seq = Math.min(seq, p.doneSeq);
    if (seq < 0) return;
    if (R.seq !== seq) {
      R.seq = seq;
      document.body.dataset.seq = String(seq);
      const s = $('#seq');
      if (s) s.textContent = 'seq ' + seq;
    }
  }

  class Poller {
    constructor(name, url, apply) {
      this.name = name;
      this.url = url; // string, or a function giving the URL of the next request
      this.apply = apply;
      this.inFlight = false;
      this.pending = false;
      this.wantSeq = -1;
      this.doneSeq = -1;
    }

    /** After snapshot `seq`; nothing to do if a request made after it is done or under way. */
    request(seq, force) {
      if (!force && seq <= this.wantSeq && (this.inFlight || seq <= this.doneSeq)) return;
      if (seq > this.wantSeq) this.wantSeq = seq;
      if (this.inFlight) {
        // Skip this redraw; ask again once the request in flight has returned.
        this.pending = true;
        return;
      }
      this.run();
    }

    run() {
      this.inFlight = true;
      this.pending = false;
      const seq = this.wantSeq;
      const url = typeof this.url === 'function' ? this.url() : this.url;
      getJSON(url)
        .then((data) => this.apply(data))
        .catch((err) => noteError(this.name, err))
        .then(() => {
          this.inFlight = false;
          if (seq > this.doneSeq) this.doneSeq = seq;
          commit();
          if (this.pending) this.run();
        });
    }

    reset() {
      this.wantSeq = -1;
      this.doneSeq = -1;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Snapshots: the event stream, and one plain fetch at start (and on each reconnect)
  // ---------------------------------------------------------------------------------------

  let view = null; // the page's view object
  let freshConnection = false;

  function applySnapshot(s, fromStream) {
    if (!s || typeof s !== 'object' || typeof s.seq !== 'number') return;
    if (s.seq < lastSnapSeq) {
      // Older than what the page shows: a late answer, unless the server restarted (a new
      // connection whose first snapshot numbers from 0 again).
      if (!(fromStream && freshConnection)) return;
      for (const p of pollers) p.reset();
      if (view && view.reset) view.reset();
    }
    if (fromStream) freshConnection = false;
    lastSnapSeq = s.seq;
    R.status = s;
    if (view && view.snapshot) {
      try {
        view.snapshot(s);
      } catch (err) {
        noteError('draw', err);
      }
    }
    for (const p of pollers) p.request(s.seq);
    commit();
  }

  const statusPoller = new Poller('/api/status', '/api/status', (s) => applySnapshot(s, false));

  let source = null;
  let retryTimer = null;
  let retryDelay = 1000;

  function connect() {
    if (retryTimer) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }
    if (!window.EventSource) {
      // No server-sent events: poll instead.
      setInterval(() => statusPoller.request(0, true), 1000);
      statusPoller.request(0, true);
      return;
    }
    if (source) source.close();
    const es = new EventSource('/api/events');
    source = es;
    es.addEventListener('open', () => {
      freshConnection = true;
      retryDelay = 1000;
      setConnected(true);
    });
    es.addEventListener('snapshot', (ev) => {
      let s;
      try {
        s = JSON.parse(ev.data);
      } catch (err) {
        noteError('/api/events', err);
        return;
      }
      setConnected(true);
      applySnapshot(s, true);
    });
    es.addEventListener('error', () => {
      setConnected(false);
      if (es.readyState === EventSource.CLOSED && source === es) {
        // The browser gave up (e.g. an error status): find out why, and retry ourselves.
        es.close();
        source = null;
        statusPoller.request(0, true);
        retryTimer = setTimeout(connect, retryDelay);
        retryDelay = Math.min(30000, retryDelay * 2);
      }
    });
  }

  // ---------------------------------------------------------------------------------------
  // Status page
  // ---------------------------------------------------------------------------------------

  /** Keeps one child per key in `container`, in the given order; returns them by key. */
  function keyedRows(container, items, keyOf, create, update) {
    if (!container._rows) container._rows = new Map();
    const rows = container._rows;
    const seen = new Set();
    let prev = null;
    for (const item of items) {
      const key = keyOf(item);
      if (seen.has(key)) continue;
      seen.add(key);
      let row = rows.get(key);
      if (!row) {
        row = create(item, key);
        rows.set(key, row);
      }
      update(row, item, key);
      const want = prev ? prev.nextSibling : container.firstChild;
      if (want !== row) container.insertBefore(row, want);
      prev = row;
    }
    for (const [key, row] of rows) {
      if (!seen.has(key)) {
        row.remove();
        rows.delete(key);
      }
    }
    let empty = container.querySelector(':scope > .empty');
    if (rows.size === 0) {
      if (!empty && container.dataset.empty) {
        empty = el('div', 'empty', container.dataset.empty);
        container.appendChild(empty);
      }
    } else if (empty) {
      empty.remove();
    }
  }

  function rowSkeleton(className, nameText, segClasses, extra) {
    const row = el('div', 'row ' + className);
    const name = el('div', 'name');
    const sw = el('span', 'swatch');
    name.appendChild(sw);
    name.appendChild(document.createTextNode(nameText));
    name.title = nameText;
    const bar = el('div', 'bar' + (extra && extra.thin ? ' thin' : ''));
    row._segs = {};
    for (const c of segClasses) {
      const s = el('span', 'seg ' + c);
      bar.appendChild(s);
      row._segs[c] = s;
    }
    const text = el('div', 'text');
    row.appendChild(name);
    row.appendChild(bar);
    row.appendChild(text);
    row._name = name;
    row._swatch = sw;
    row._bar = bar;
    row._text = text;
    return row;
  }

  function renderProgress(container, prefixes) {
    keyedRows(
      container,
      prefixes,
      (p) => String(p.prefix),
      (p, key) => {
        const row = rowSkeleton('prefix-row', key, [
          'done',
          'memory',
          'processing',
          'queued',
          'waiting',
          'erred',
        ]);
        row._swatch.style.background = prefixColor(key);
        row._segs.done.style.background = prefixColor(key);
        row._segs.memory.style.background = prefixColor(key, -16);
        row._segs.processing.style.background = prefixColor(key, 28);
        row._text.classList.add('counts');
        row.dataset.prefix = key;
        return row;
      },
      (row, p) => {
        const c = {};
        for (const k of STATES) c[k] = Math.max(0, num(p[k]));
        c.forgotten = Math.max(0, num(p.forgotten));
        const total =
          c.waiting + c.queued + c.processing + c.memory + c.erred + c.released + c.forgotten;
        for (const k of STATES) setData(row, k, c[k]);
        setData(row, 'forgotten', c.forgotten);
        setData(row, 'total', total);
        const t = total || 1;
        const done = c.released + c.forgotten;
        setWidth(row._segs.done, done / t);
        setWidth(row._segs.memory, c.memory / t);
        setWidth(row._segs.processing, c.processing / t);
        setWidth(row._segs.queued, c.queued / t);
        setWidth(row._segs.waiting, c.waiting / t);
        setWidth(row._segs.erred, c.erred / t);
        const key =
          [c.memory, c.released, c.forgotten, c.processing, c.queued, c.waiting, c.erred, total].join(
            ','
          );
        if (row._key !== key) {
          row._key = key;
          const text = row._text;
          text.textContent = '';
          const main = el('b', null, fmtInt(done + c.memory));
          text.appendChild(main);
          text.appendChild(document.createTextNode(' / ' + fmtInt(total)));
          if (row._detail) row._detail.remove();
          const parts = [];
          if (c.memory) parts.push(['in memory ' + fmtInt(c.memory), '']);
          if (c.processing) parts.push(['processing ' + fmtInt(c.processing), '']);
          if (c.queued) parts.push(['queued ' + fmtInt(c.queued), '']);
          if (c.waiting) parts.push(['waiting ' + fmtInt(c.waiting), '']);
          if (c.erred) parts.push(['erred ' + fmtInt(c.erred), 'err']);
          const detail = el('div', 'detail');
          parts.forEach(([s, cls], i) => {
            if (i) detail.appendChild(document.createTextNode(' \u00b7 '));
            detail.appendChild(el('span', cls, s));
          });
          if (!parts.length) detail.textContent = total ? 'all done' : '';
          row.appendChild(detail);
          row._detail = detail;
          row.title =
            `${p.prefix}: memory ${c.memory}, released ${c.released}, forgotten ${c.forgotten}, ` +
              `processing ${c.processing}, queued ${c.queued}, waiting ${c.waiting}, erred ${c.erred}`;
        }
      }
    );
    setData(container, 'prefixes', container._rows.size);
  }

  function renderWorkerMemory(container, workers) {
    // Workers without a limit share one scale: the largest use.
    let common = 1;
    for (const w of workers) {
      common = Math.max(common, Math.max(num(w.process), num(w.managed)) + num(w.spilled));
    }
    keyedRows(
      container,
      workers,
      (w) => String(w.name),
      (w, key) => {
        const row = rowSkeleton('worker-row', key, ['managed', 'unmanaged', 'spilled']);
        row._swatch.remove();
        row._mark = el('span', 'mark');
        row._bar.appendChild(row._mark);
        row.dataset.worker = key;
        return row;
      },
      (row, w) => {
        const managed = num(w.managed);
        const spilled = num(w.spilled);
        const proc = num(w.process);
        const limit = num(w.memory_limit);
        setData(row, 'managed', managed);
        setData(row, 'spilled', spilled);
        setData(row, 'process', proc);
        setData(row, 'limit', limit);
        const used = Math.max(proc, managed);
        const scale = limit > 0 ? Math.max(limit, used + spilled) : common;
        setWidth(row._segs.managed, managed / scale);
        setWidth(row._segs.unmanaged, Math.max(0, proc - managed) / scale);
        setWidth(row._segs.spilled, spilled / scale);
        if (limit > 0) {
          row._mark.style.display = '';
          row._mark.style.left = ((limit / scale) * 100).toFixed(3) + '%';
        } else {
          row._mark.style.display = 'none';
        }
        const frac = limit > 0 ? used / limit : 0;
        row.classList.toggle('high', frac >= 0.8 && frac < 0.95);
        row.classList.toggle('over', frac >= 0.95);
        row.classList.toggle('paused', !!w.paused);
        const text =
          fmtBytes(used) + (limit > 0 ? ' of ' + fmtBytes(limit) + ' (' + Math.round(frac * 100) + ' %)' : '') +
          ' \u00b7 managed ' + fmtBytes(managed) +
          (spilled ? ' \u00b7 spilled ' + fmtBytes(spilled) : '') +
          (w.paused ? ' \u00b7 paused' : '');
        setText(row._text, text);
        row.title =
          `${w.name}: managed ${fmtBytes(managed)}, unmanaged ${fmtBytes(Math.max(0, proc - managed))}, ` +
          `process (RSS) ${fmtBytes(proc)}, spilled ${fmtBytes(spilled)}, ` +
          `limit ${limit > 0 ? fmtBytes(limit) : 'none'}`;
      }
    );
  }

  function renderCpu(container, workers) {
    let scale = 100;
    for (const w of workers) scale = Math.max(scale, num(w.cpu), 100 * Math.max(1, num(w.nthreads)));
    keyedRows(
      container,
      workers,
      (w) => String(w.name),
      (w, key) => {
        const row = rowSkeleton('cpu-row', key, ['cpu']);
        row._swatch.remove();
        row.dataset.worker = key;
        return row;
      },
      (row, w) => {
        const cpu = num(w.cpu);
        setData(row, 'cpu', cpu);
        setWidth(row._segs.cpu, cpu / scale);
        row._segs.cpu.classList.toggle('hot', cpu > 95 * Math.max(1, num(w.nthreads)));
        setText(row._text, cpu.toFixed(cpu < 10 ? 1 : 0) + ' %');
        row.title = `${w.name}: ${cpu.toFixed(1)} % of one core (${num(w.nthreads)} threads)`;
      }
    );
  }

  function renderNetwork(container, workers) {
    let scale = 1024;
    for (const w of workers) scale = Math.max(scale, num(w.net_read_bps), num(w.net_write_bps));
    keyedRows(
      container,
      workers,
      (w) => String(w.name),
      (w, key) => {
        const row = rowSkeleton('net-row', key, []);
        row._swatch.remove();
        // two thin bars in place of the one bar
        const stack = el('div', 'netbars');
        const rb = el('div', 'bar thin');
        const wb = el('div', 'bar thin');
        row._segs.read = el('span', 'seg net-read');
        row._segs.write = el('span', 'seg net-write');
        rb.appendChild(row._segs.read);
        wb.appendChild(row._segs.write);
        stack.appendChild(rb);
        stack.appendChild(wb);
        row.replaceChild(stack, row._bar);
        row.dataset.worker = key;
        return row;
      },
      (row, w) => {
        const r = num(w.net_read_bps);
        const wr = num(w.net_write_bps);
        setData(row, 'read', r);
        setData(row, 'write', wr);
        setWidth(row._segs.read, r / scale);
        setWidth(row._segs.write, wr / scale);
        setText(row._text, '\u2193 ' + fmtRate(r) + '  \u2191 ' + fmtRate(wr));
        row.title = `${w.name}: read ${fmtRate(r)}, write ${fmtRate(wr)}`;
      }
    );
  }

  /** The task stream, drawn on one canvas from R.records. */
  class TaskStream {
    constructor(canvas) {
      this.canvas = canvas;
      this.tip = canvas.parentNode.querySelector('.tooltip');
      this.layout = null;
      this.scheduled = false;
      canvas.addEventListener('mousemove', (e) => this.hover(e));
      canvas.addEventListener('mouseleave', () => {
        if (this.tip) this.tip.hidden = true;
      });
      window.addEventListener('resize', () => this.schedule());
    }

    schedule() {
      if (this.scheduled) return;
      this.scheduled = true;
      requestAnimationFrame(() => {
        this.scheduled = false;
        this.draw();
      });
    }

    /** Lanes: each thread of each known worker, plus any (worker, lane) the records use. */
    lanes() {
      const workers = (R.status && R.status.workers) || [];
      const order = new Map();
      const nthreads = new Map();
      workers.forEach((w, i) => {
        order.set(String(w.name), i);
        nthreads.set(String(w.name), Math.max(0, num(w.nthreads)));
      });
      const keys = new Map();
      const add = (worker, lane) => {
        const k = worker + '\u0000' + lane;
        if (!keys.has(k)) keys.set(k, { worker, lane });
      };
      for (const w of workers) {
        const n = nthreads.get(String(w.name));
        for (let l = 0; l < n; l++) add(String(w.name), l);
      }
      for (const r of R.records) add(String(r.worker), num(r.lane));
      const lanes = Array.from(keys.values());
      lanes.sort((a, b) => {
        const oa = order.has(a.worker) ? order.get(a.worker) : 1e9;
        const ob = order.has(b.worker) ? order.get(b.worker) : 1e9;
        if (oa !== ob) return oa - ob;
        if (a.worker !== b.worker) return a.worker < b.worker ? -1 : 1;
        return a.lane - b.lane;
      });
      const index = new Map();
      lanes.forEach((l, i) => {
        const n = nthreads.get(l.worker);
        l.extra = n !== undefined && l.lane >= n;
        index.set(l.worker + '\u0000' + l.lane, i);
      });
      return { lanes, index };
    }

    /** The counts the page exposes, now; the drawing itself waits for the next frame. */
    update(redraw) {
      const { lanes } = this.lanes();
      const changed =
        this.canvas.dataset.lanes !== String(lanes.length) ||
        this.canvas.dataset.records !== String(R.records.length);
      setData(this.canvas, 'records', R.records.length);
      setData(this.canvas, 'lanes', lanes.length);
      if (redraw || changed || !this.layout) this.schedule();
    }

    draw() {
      const canvas = this.canvas;
      const recs = R.records;
      const { lanes, index } = this.lanes();
      setData(canvas, 'records', recs.length);
      setData(canvas, 'lanes', lanes.length);

      const n = Math.max(1, lanes.length);
      const laneH = n <= 8 ? 26 : n <= 16 ? 18 : Math.max(3, Math.floor(400 / n));
      const axisH = 22;
      const cssW = Math.max(300, canvas.clientWidth || canvas.parentNode.clientWidth || 800);
      const cssH = Math.max(120, n * laneH + axisH + 4);
      if (canvas.style.height !== cssH + 'px') canvas.style.height = cssH + 'px';
      const dpr = window.devicePixelRatio || 1;
      const W = Math.round(cssW * dpr);
      const H = Math.round(cssH * dpr);
      if (canvas.width !== W) canvas.width = W;
      if (canvas.height !== H) canvas.height = H;
      const ctx = canvas.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, cssW, cssH);

      const labelW = laneH >= 10 ? Math.min(150, Math.max(90, cssW * 0.14)) : 0;
      const plotX = labelW + 4;
      const plotW = Math.max(10, cssW - plotX - 8);
      const plotH = n * laneH;

      // The window: 10 s ending at the newest record's stop, or now without records.
      let end = -Infinity;
      for (const r of recs) if (num(r.stop_ms) > end) end = num(r.stop_ms);
      if (!isFinite(end)) end = R.status ? num(R.status.now_ms) : Date.now();
      if (!end) end = Date.now();
      const start = end - STREAM_WINDOW_MS;
      const xOf = (t) => plotX + ((t - start) / STREAM_WINDOW_MS) * plotW;

      // lane backgrounds: one band per worker
      let band = 0;
      let prevWorker = null;
      ctx.font = '11px ' + getComputedStyle(document.body).fontFamily;
      ctx.textBaseline = 'middle';
      for (let i = 0; i < lanes.length; i++) {
        const l = lanes[i];
        if (l.worker !== prevWorker) {
          band++;
          prevWorker = l.worker;
          if (i > 0) {
            ctx.fillStyle = '#d5d9de';
            ctx.fillRect(0, i * laneH, cssW, 1);
          }
        }
        ctx.fillStyle = band % 2 ? '#f7f8fa' : '#ffffff';
        ctx.fillRect(plotX, i * laneH + (i > 0 && lanes[i - 1].worker !== l.worker ? 1 : 0), plotW, laneH - 1);
        if (labelW && laneH >= 16) {
          ctx.fillStyle = l.extra ? '#9a5b00' : '#555d66';
          const suffix = l.extra ? ' transfer' : ' #' + l.lane;
          ctx.fillText(ellipsize(ctx, l.worker, labelW - ctx.measureText(suffix).width - 6) + suffix, 2, i * laneH + laneH / 2);
        }
      }
      if (labelW && laneH < 16) {
        // Thin lanes: one label per worker, in the middle of its lanes.
        ctx.fillStyle = '#555d66';
        let first = 0;
        for (let i = 1; i <= lanes.length; i++) {
          if (i === lanes.length || lanes[i].worker !== lanes[first].worker) {
            const mid = ((first + i) / 2) * laneH;
            ctx.fillText(ellipsize(ctx, lanes[first].worker, labelW - 6), 2, mid);
            first = i;
          }
        }
      }

      // bars
      const pad = laneH >= 10 ? 3 : laneH >= 5 ? 1 : 0;
      for (const r of recs) {
        const s0 = num(r.start_ms);
        const s1 = Math.max(s0, num(r.stop_ms));
        if (s1 < start) continue;
        const li = index.get(String(r.worker) + '\u0000' + num(r.lane));
        if (li === undefined) continue;
        const x0 = Math.max(plotX, xOf(s0));
        const x1 = Math.min(plotX + plotW, xOf(s1));
        const w = Math.max(1, x1 - x0);
        ctx.fillStyle =
          r.kind === 'transfer' || r.kind === 'spill'
            ? KIND_COLORS[r.kind]
            : prefixColor(r.prefix || prefixOfKey(r.key));
        ctx.fillRect(x0, li * laneH + pad, w, laneH - 2 * pad - 1);
      }

      // time axis
      ctx.fillStyle = '#c9ced4';
      ctx.fillRect(plotX, plotH, plotW, 1);
      ctx.fillStyle = '#66707a';
      ctx.textBaseline = 'top';
      for (let s = 0; s <= STREAM_WINDOW_MS / 1000; s++) {
        const x = plotX + (s * 1000 * plotW) / STREAM_WINDOW_MS;
        ctx.fillRect(Math.round(x), plotH, 1, 4);
        if (s % 2 === 0 || plotW > 700) {
          const label = s === 10 ? fmtClock(end) : '-' + (10 - s) + ' s';
          const tw = ctx.measureText(label).width;
          ctx.fillText(label, Math.min(cssW - tw - 2, Math.max(plotX, x - tw / 2)), plotH + 6);
        }
      }
      if (!recs.length) {
        ctx.fillStyle = '#8a939d';
        ctx.textBaseline = 'middle';
        const msg = 'no task records yet';
        ctx.fillText(msg, plotX + plotW / 2 - ctx.measureText(msg).width / 2, plotH / 2);
      }
      this.layout = { lanes, index, start, end, plotX, plotW, laneH, plotH };
    }

    hover(e) {
      const L = this.layout;
      if (!L || !this.tip) return;
      const rect = this.canvas.getBoundingClientRect();
      const x = e.clientX - rect.left;
      const y = e.clientY - rect.top;
      const li = Math.floor(y / L.laneH);
      let found = null;
      if (x >= L.plotX && li >= 0 && li < L.lanes.length) {
        const t = L.start + ((x - L.plotX) / L.plotW) * STREAM_WINDOW_MS;
        const slack = (2 * STREAM_WINDOW_MS) / L.plotW; // 2 px
        const lane = L.lanes[li];
        for (let i = R.records.length - 1; i >= 0; i--) {
          const r = R.records[i];
          if (String(r.worker) !== lane.worker || num(r.lane) !== lane.lane) continue;
          if (num(r.start_ms) - slack <= t && t <= num(r.stop_ms) + slack) {
            found = r;
            break;
          }
        }
      }
      if (!found) {
        this.tip.hidden = true;
        return;
      }
      const tip = this.tip;
      tip.textContent = '';
      tip.appendChild(el('div', 'k', String(found.key)));
      tip.appendChild(
        el(
          'div',
          'muted',
          `${found.kind} on ${found.worker} \u00b7 ${fmtDuration(num(found.stop_ms) - num(found.start_ms))}`
        )
      );
      tip.hidden = false;
      const tw = tip.offsetWidth;
      tip.style.left = Math.max(0, Math.min(rect.width - tw - 4, x + 12)) + 'px';
      tip.style.top = y + 14 + 'px';
    }
  }

  function ellipsize(ctx, s, maxW) {
    if (maxW <= 0) return '';
    if (ctx.measureText(s).width <= maxW) return s;
    let lo = 0;
    let hi = s.length;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (ctx.measureText(s.slice(0, mid) + '\u2026').width <= maxW) lo = mid;
      else hi = mid - 1;
    }
    return s.slice(0, lo) + '\u2026';
  }

  function prefixOfKey(key) {
    // Fallback only (records carry `prefix`): the part of a key before its token.
    let k = String(key || '');
    const m = /^\(?['"]?([^'",)]+)/.exec(k);
    if (m) k = m[1];
    const parts = k.split('-');
    while (parts.length > 1 && /^[0-9a-f]{4,}$|^\d+$/.test(parts[parts.length - 1])) parts.pop();
    return parts.join('-');
  }

  function statusView() {
    const progress = $('#progress');
    const memory = $('#worker-memory');
    const cpu = $('#worker-cpu');
    const net = $('#worker-network');
    const stream = new TaskStream($('#task-stream'));
    const streamInfo = $('#stream-info');

    const tasksPoller = new Poller(
      '/api/tasks',
      () =>
        '/api/tasks?limit=' + FETCH_RECORDS +
        (R.lastRecordId !== null ? '&since=' + R.lastRecordId : ''),
      (d) => {
        const recs = Array.isArray(d.records) ? d.records : [];
        const last = typeof d.last === 'number' ? d.last : null;
        if (R.lastRecordId !== null && last !== null && last < R.lastRecordId) {
          // The server numbers from scratch (it restarted): start over.
          R.records.length = 0;
          R.lastRecordId = null;
          tasksPoller.pending = true;
          stream.update();
          return;
        }
        let maxId = R.lastRecordId === null ? -Infinity : R.lastRecordId;
        for (const r of recs) {
          if (!r || typeof r !== 'object') continue;
          if (R.lastRecordId !== null && num(r.id) <= R.lastRecordId) continue;
          R.records.push(r);
          if (num(r.id) > maxId) maxId = num(r.id);
        }
        if (R.records.length > MAX_RECORDS) R.records.splice(0, R.records.length - MAX_RECORDS);
        if (last !== null && last > maxId) maxId = last;
        if (isFinite(maxId)) R.lastRecordId = maxId;
        R.dropped = num(d.dropped);
        if (streamInfo) {
          setText(
            streamInfo,
            fmtInt(R.records.length) + ' records' +
              (R.dropped ? ' \u00b7 ' + fmtInt(R.dropped) + ' dropped by workers' : '')
          );
        }
        stream.update(recs.length > 0);
      }
    );
    pollers.push(tasksPoller);
    stream.draw();

    return {
      snapshot(s) {
        const prefixes = Array.isArray(s.prefixes) ? s.prefixes : [];
        const workers = Array.isArray(s.workers) ? s.workers : [];
        renderProgress(progress, prefixes);
        renderWorkerMemory(memory, workers);
        renderCpu(cpu, workers);
        renderNetwork(net, workers);
        stream.update();
        const pi = $('#progress-info');
        if (pi) {
          let total = 0;
          let done = 0;
          for (const p of prefixes) {
            const f = num(p.memory) + num(p.released) + num(p.forgotten);
            done += f;
            total += f + num(p.waiting) + num(p.queued) + num(p.processing) + num(p.erred);
          }
          setText(pi, total ? fmtInt(done) + ' / ' + fmtInt(total) + ' tasks' : '');
        }
        const wi = $('#workers-info');
        if (wi) {
          let threads = 0;
          for (const w of workers) threads += num(w.nthreads);
          setText(wi, workers.length + ' workers \u00b7 ' + threads + ' threads');
        }
      },
      reset() {
        R.records.length = 0;
        R.lastRecordId = null;
        stream.update();
      },
    };
  }

  // ---------------------------------------------------------------------------------------
  // Graph page
  // ---------------------------------------------------------------------------------------

  function graphView() {
    const svg = $('#graph');
    const info = $('#graph-info');
    let sig = null;
    let nodeEls = new Map(); // id -> element
    let box = null; // the whole drawing: {x, y, w, h}
    let vb = null; // the current view box

    function setViewBox(v) {
      vb = v;
      svg.setAttribute('viewBox', `${v.x} ${v.y} ${v.w} ${v.h}`);
    }

    // pan and zoom
    let drag = null;
    svg.addEventListener('wheel', (e) => {
      if (!vb) return;
      e.preventDefault();
      const rect = svg.getBoundingClientRect();
      const k = Math.exp(Math.max(-0.5, Math.min(0.5, e.deltaY * 0.0015)));
      const s = Math.max(vb.w / rect.width, vb.h / rect.height); // user units per px (meet)
      const cx = vb.x + vb.w / 2 + (e.clientX - rect.left - rect.width / 2) * s;
      const cy = vb.y + vb.h / 2 + (e.clientY - rect.top - rect.height / 2) * s;
      const w = Math.max(20, Math.min(box.w * 4 + 400, vb.w * k));
      const h = (vb.h * w) / vb.w;
      setViewBox({ x: cx - (cx - vb.x) * (w / vb.w), y: cy - (cy - vb.y) * (h / vb.h), w, h });
    }, { passive: false });
    svg.addEventListener('mousedown', (e) => {
      if (!vb) return;
      drag = { x: e.clientX, y: e.clientY, vb: Object.assign({}, vb) };
      svg.classList.add('dragging');
    });
    window.addEventListener('mousemove', (e) => {
      if (!drag) return;
      const rect = svg.getBoundingClientRect();
      const s = Math.max(drag.vb.w / rect.width, drag.vb.h / rect.height);
      setViewBox({
        x: drag.vb.x - (e.clientX - drag.x) * s,
        y: drag.vb.y - (e.clientY - drag.y) * s,
        w: drag.vb.w,
        h: drag.vb.h,
      });
    });
    window.addEventListener('mouseup', () => {
      drag = null;
      svg.classList.remove('dragging');
    });
    svg.addEventListener('dblclick', () => {
      if (box) setViewBox(Object.assign({}, box));
    });

    function signature(g) {
      let h = 0x811c9dc5;
      const mix = (v) => {
        h ^= v & 0xffff;
        h = Math.imul(h, 0x01000193);
        h ^= v >>> 16;
        h = Math.imul(h, 0x01000193);
      };
      mix(g.grouped ? 1 : 2);
      mix(g.nodes.length);
      for (const n of g.nodes) mix(num(n.id));
      mix(g.edges.length);
      for (const e of g.edges) {
        mix(num(e[0]));
        mix(num(e[1]));
      }
      return h >>> 0;
    }

    /** Depth = longest path from a root; nodes in cycles go after their placed inputs. */
    function layers(nodes, edges) {
      const n = nodes.length;
      const idx = new Map();
      nodes.forEach((node, i) => idx.set(node.id, i));
      const outs = Array.from({ length: n }, () => []);
      const ins = Array.from({ length: n }, () => []);
      const drawn = [];
      for (const e of edges) {
        if (!Array.isArray(e) || e.length < 2) continue;
        const a = idx.get(e[0]);
        const b = idx.get(e[1]);
        if (a === undefined || b === undefined) continue;
        drawn.push([a, b]);
        if (a === b) continue;
        outs[a].push(b);
        ins[b].push(a);
      }
      const indeg = ins.map((l) => l.length);
      const depth = new Array(n).fill(0);
      const placed = new Array(n).fill(false);
      let queue = [];
      for (let i = 0; i < n; i++) if (indeg[i] === 0) queue.push(i);
      let nextUnplaced = 0;
      let count = 0;
      for (;;) {
        while (queue.length) {
          const next = [];
          for (const v of queue) {
            placed[v] = true;
            count++;
            for (const w of outs[v]) {
              if (placed[w]) continue;
              if (depth[v] + 1 > depth[w]) depth[w] = depth[v] + 1;
              if (--indeg[w] === 0) next.push(w);
            }
          }
          queue = next;
        }
        if (count >= n) break;
        // A cycle: place the first unplaced node after its placed inputs, and go on.
        while (placed[nextUnplaced]) nextUnplaced++;
        const v = nextUnplaced;
        let d = 0;
        for (const u of ins[v]) if (placed[u]) d = Math.max(d, depth[u] + 1);
        depth[v] = Math.max(depth[v], d);
        indeg[v] = 0;
        queue = [v];
      }
      let maxDepth = 0;
      for (const d of depth) if (d > maxDepth) maxDepth = d;
      const byDepth = Array.from({ length: maxDepth + 1 }, () => []);
      for (let i = 0; i < n; i++) byDepth[depth[i]].push(i);
      // Order each layer by the mean position of its inputs (fewer crossings).
      const pos = new Array(n).fill(0);
      byDepth.forEach((layer, d) => {
        const key = new Map();
        for (const v of layer) {
          let s = 0;
          let c = 0;
          for (const u of ins[v]) {
            if (depth[u] < d) {
              s += pos[u];
              c++;
            }
          }
          key.set(v, c ? s / c : -1);
        }
        layer.sort((a, b) => {
          const ka = key.get(a);
          const kb = key.get(b);
          if (d > 0 && ka !== kb) return ka - kb;
          const pa = String(nodes[a].prefix);
          const pb = String(nodes[b].prefix);
          if (pa !== pb) return pa < pb ? -1 : 1;
          return num(nodes[a].id) - num(nodes[b].id);
        });
        layer.forEach((v, i) => (pos[v] = (i + 0.5) / layer.length));
      });
      return { byDepth, drawn, depth };
    }

    function countsOf(node) {
      const c = node.counts || {};
      const out = {};
      let total = 0;
      for (const k of STATES.concat(['forgotten'])) {
        out[k] = Math.max(0, num(c[k]));
        total += out[k];
      }
      out.total = total;
      return out;
    }

    function updateNode(elm, node, grouped) {
      const state = String(node.state || 'waiting');
      setData(elm, 'state', state);
      const fill = STATE_COLORS[state] || '#cccccc';
      const circle = grouped ? elm._circle : elm;
      if (circle.getAttribute('fill') !== fill) circle.setAttribute('fill', fill);
      if (grouped) {
        const c = countsOf(node);
        const parts = [];
        const done = c.released + c.forgotten;
        if (c.memory) parts.push(fmtInt(c.memory) + ' mem');
        if (c.processing) parts.push(fmtInt(c.processing) + ' proc');
        if (c.queued) parts.push(fmtInt(c.queued) + ' queued');
        if (c.waiting) parts.push(fmtInt(c.waiting) + ' wait');
        if (c.erred) parts.push(fmtInt(c.erred) + ' err');
        if (done) parts.push(fmtInt(done) + ' done');
        setText(elm._counts, fmtInt(c.total) + (c.total === 1 ? ' task' : ' tasks'));
        setText(elm._detail, parts.join(' \u00b7 '));
        setText(elm._title, `${node.label}\n${state}\n` +
          STATES.concat(['forgotten']).map((k) => `${k}: ${c[k]}`).join('\n'));
        for (const k of elm._barKeys) {
          const seg = elm._bar[k];
          const v = k === 'done' ? done : c[k];
          seg.setAttribute('width', c.total ? ((v / c.total) * 140).toFixed(2) : 0);
        }
        let x = -70;
        for (const k of elm._barKeys) {
          const seg = elm._bar[k];
          seg.setAttribute('x', x.toFixed(2));
          x += parseFloat(seg.getAttribute('width'));
        }
        for (const k of STATES) setData(elm, k, c[k]);
      } else {
        setText(elm._title, `${node.label}\n${state}`);
      }
    }

    function rebuild(g) {
      const nodes = g.nodes;
      const grouped = !!g.grouped;
      const { byDepth, drawn, depth } = layers(nodes, g.edges);
      let maxLayer = 1;
      for (const l of byDepth) if (l.length > maxLayer) maxLayer = l.length;
      const dx = grouped ? 290 : 70; // between layers
      const dy = grouped ? 130 : 26; // between nodes of a layer
      const sub = 22; // between the columns of one wide layer
      // A layer with more nodes than fit the height is wrapped into several columns; the
      // number of rows is chosen so that the drawing's shape is close to the window's.
      const rect0 = svg.getBoundingClientRect();
      const aspect = (rect0.width || 1200) / (rect0.height || 700);
      let rows = maxLayer;
      if (!grouped && maxLayer > 12) {
        let best = Infinity;
        for (let r = 8; r <= maxLayer; r = Math.max(r + 1, Math.ceil(r * 1.05))) {
          let w = (byDepth.length - 1) * dx;
          for (const l of byDepth) w += (Math.ceil(l.length / r) - 1) * sub;
          const score = Math.abs(Math.log(Math.max(w, dx) / (r * dy) / aspect));
          if (score < best) {
            best = score;
            rows = r;
          }
        }
      }
      const height = rows * dy;
      const xy = new Array(nodes.length);
      let x0 = 0;
      let width = 0;
      byDepth.forEach((layer) => {
        const cols = Math.ceil(layer.length / rows);
        const perCol = Math.ceil(layer.length / cols);
        layer.forEach((v, i) => {
          const col = Math.floor(i / perCol);
          const inCol = Math.min(perCol, layer.length - col * perCol);
          const row = i - col * perCol;
          xy[v] = [x0 + col * sub, ((row + 0.5) * height) / inCol];
        });
        width = x0 + (cols - 1) * sub;
        x0 = width + dx;
      });
      svg.textContent = '';
      nodeEls = new Map();
      const defs = svgEl('defs');
      const marker = svgEl('marker', {
        id: 'arrow', viewBox: '0 0 10 10', refX: '10', refY: '5',
        markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse',
      });
      marker.appendChild(svgEl('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#8a939d' }));
      defs.appendChild(marker);
      svg.appendChild(defs);

      const r = grouped ? 0 : Math.max(3, Math.min(8, dy * 0.3));
      const radius = nodes.map((node) => {
        if (!grouped) return r;
        const t = countsOf(node).total;
        return Math.max(12, Math.min(34, 10 + 3 * Math.sqrt(t) ** 0.75));
      });
      const edgeGroup = svgEl('g', { class: 'edge-layer' });
      const f = (v) => v.toFixed(1);
      if (grouped) {
        for (const [a, b] of drawn) {
          const [x1, y1] = xy[a];
          const [x2, y2] = xy[b];
          let d;
          if (a === b) {
            // a prefix reading its own tasks (a tree reduction): a loop above the node
            const r0 = radius[a];
            d = `M ${f(x1 - r0 * 0.5)} ${f(y1 - r0 * 0.87)} C ${f(x1 - r0 * 1.3)} ${f(y1 - r0 * 2.7)} ` +
              `${f(x1 + r0 * 1.3)} ${f(y1 - r0 * 2.7)} ${f(x1 + r0 * 0.55)} ${f(y1 - r0 * 0.95)}`;
          } else {
            const span = depth[b] - depth[a];
            // Edges that skip layers (or go back) bow out, so they do not run through nodes.
            // (above for forward edges, below for backward ones)
            const bow = span === 1 ? 0 : (span > 0 ? -1 : 1) * (Math.abs(span) * 0.3 + 0.25) * dy;
            const cy = (y1 + y2) / 2 + bow;
            const mx = (x1 + x2) / 2;
            const a0 = Math.atan2(cy - y1, mx - x1);
            const a1 = Math.atan2(y2 - cy, x2 - mx);
            const sx = x1 + Math.cos(a0) * radius[a];
            const sy = y1 + Math.sin(a0) * radius[a];
            const ex = x2 - Math.cos(a1) * (radius[b] + 2);
            const ey = y2 - Math.sin(a1) * (radius[b] + 2);
            d = bow
              ? `M ${f(sx)} ${f(sy)} Q ${f(mx)} ${f(cy + bow)} ${f(ex)} ${f(ey)}`
              : `M ${f(sx)} ${f(sy)} C ${f(mx)} ${f(sy)} ${f(mx)} ${f(ey)} ${f(ex)} ${f(ey)}`;
          }
          edgeGroup.appendChild(svgEl('path', { class: 'edge', d, 'marker-end': 'url(#arrow)' }));
        }
      } else {
        let d = '';
        for (const [a, b] of drawn) {
          if (a === b) continue;
          const [x1, y1] = xy[a];
          const [x2, y2] = xy[b];
          const mx = (x1 + x2) / 2;
          const span = depth[b] - depth[a];
          if (span === 1) {
            d += `M${f(x1)} ${f(y1)}C${f(mx)} ${f(y1)} ${f(mx)} ${f(y2)} ${f(x2)} ${f(y2)}`;
          } else {
            const cy = (y1 + y2) / 2 + (span > 0 ? -1 : 1) * (Math.abs(span) * 0.25 + 0.3) * dy;
            d += `M${f(x1)} ${f(y1)}Q${f(mx)} ${f(cy)} ${f(x2)} ${f(y2)}`;
          }
        }
        edgeGroup.appendChild(svgEl('path', { class: 'edges', d, 'stroke-width': nodes.length > 300 ? 0.6 : 1 }));
      }
      svg.appendChild(edgeGroup);

      const nodeGroup = svgEl('g', { class: 'node-layer' });
      nodes.forEach((node, i) => {
        const [x, y] = xy[i];
        const prefix = String(node.prefix || node.label || '');
        let elm;
        if (grouped) {
          elm = svgEl('g', { class: 'node', transform: `translate(${x} ${y})` });
          const circle = svgEl('circle', { r: radius[i], stroke: prefixColor(prefix) });
          elm.appendChild(circle);
          elm._circle = circle;
          const label = svgEl('text', {
            class: 'label', 'text-anchor': 'middle', y: radius[i] + 15, 'font-size': 13,
          });
          label.textContent = String(node.label || prefix);
          elm.appendChild(label);
          const counts = svgEl('text', {
            class: 'counts', 'text-anchor': 'middle', y: radius[i] + 30, 'font-size': 11,
          });
          elm.appendChild(counts);
          elm._counts = counts;
          const detail = svgEl('text', {
            class: 'counts', 'text-anchor': 'middle', y: radius[i] + 43, 'font-size': 10.5,
          });
          elm.appendChild(detail);
          elm._detail = detail;
          const bar = svgEl('g', { transform: `translate(0 ${radius[i] + 50})` });
          bar.appendChild(svgEl('rect', { x: -70, y: 0, width: 140, height: 5, fill: '#eef0f3' }));
          elm._bar = {};
          elm._barKeys = ['done', 'memory', 'processing', 'queued', 'waiting', 'erred'];
          const barColors = {
            done: STATE_COLORS.released, memory: STATE_COLORS.memory,
            processing: STATE_COLORS.processing, queued: '#cfd5db', waiting: STATE_COLORS.waiting,
            erred: STATE_COLORS.erred,
          };
          for (const k of elm._barKeys) {
            const seg = svgEl('rect', { x: -70, y: 0, width: 0, height: 5, fill: barColors[k] });
            bar.appendChild(seg);
            elm._bar[k] = seg;
          }
          elm.appendChild(bar);
        } else {
          elm = svgEl('circle', {
            class: 'node', cx: x.toFixed(1), cy: y.toFixed(1), r, stroke: prefixColor(prefix),
          });
        }
        const title = svgEl('title');
        elm.appendChild(title);
        elm._title = title;
        elm.dataset.id = String(node.id);
        elm.dataset.prefix = prefix;
        elm.dataset.label = String(node.label || '');
        updateNode(elm, node, grouped);
        nodeGroup.appendChild(elm);
        nodeEls.set(node.id, elm);
      });
      svg.appendChild(nodeGroup);

      if (!nodes.length) {
        box = { x: -200, y: -100, w: 400, h: 200 };
        const t = svgEl('text', { class: 'message', x: 0, y: 0, 'text-anchor': 'middle', 'font-size': 8 });
        t.textContent = 'no tasks';
        svg.appendChild(t);
      } else {
        const marginX = grouped ? 150 : 30;
        const marginTop = grouped ? 60 : 20;
        const marginBottom = grouped ? 90 : 20;
        const w = width;
        box = { x: -marginX, y: -marginTop, w: w + 2 * marginX, h: height + marginTop + marginBottom };
      }
      // A small graph is not blown up beyond twice its size.
      const rect = svg.getBoundingClientRect();
      const minW = (rect.width || 800) / 2;
      const minH = (rect.height || 500) / 2;
      if (box.w < minW) {
        box.x -= (minW - box.w) / 2;
        box.w = minW;
      }
      if (box.h < minH) {
        box.y -= (minH - box.h) / 2;
        box.h = minH;
      }
      setViewBox(Object.assign({}, box));
    }

    return {
      snapshot() {},
      poller: new Poller('/api/graph', '/api/graph', (g) => {
        const graph = {
          grouped: !!g.grouped,
          nodes: Array.isArray(g.nodes) ? g.nodes : [],
          edges: Array.isArray(g.edges) ? g.edges : [],
          n_tasks: num(g.n_tasks),
        };
        R.graph = graph;
        const s = signature(graph);
        if (s !== sig) {
          sig = s;
          rebuild(graph);
        } else {
          for (const node of graph.nodes) {
            const e = nodeEls.get(node.id);
            if (e) updateNode(e, node, graph.grouped);
          }
        }
        setData(svg, 'nodes', graph.nodes.length);
        setData(svg, 'edges', graph.edges.length);
        setData(svg, 'grouped', graph.grouped ? 'true' : 'false');
        if (info) {
          const counts = {};
          for (const node of graph.nodes) counts[node.state] = (counts[node.state] || 0) + 1;
          let text = graph.grouped
            ? fmtInt(graph.n_tasks) + ' tasks, grouped by prefix (' + graph.nodes.length + ' prefixes)'
            : fmtInt(graph.nodes.length) + ' tasks';
          if (!graph.grouped) {
            const parts = STATES.filter((k) => counts[k]).map((k) => counts[k] + ' ' + k);
            if (parts.length) text += ': ' + parts.join(', ');
          }
          setText(info, text);
        }
      }),
    };
  }

  // ---------------------------------------------------------------------------------------
  // Memory page
  // ---------------------------------------------------------------------------------------

  function memoryView() {
    const container = $('#memory-by-key');
    const total = $('#memory-total');
    return {
      snapshot() {},
      poller: new Poller('/api/memory', '/api/memory', (d) => {
        const prefixes = Array.isArray(d.prefixes) ? d.prefixes : [];
        R.memory = d;
        let max = 1;
        let sum = 0;
        let keys = 0;
        for (const p of prefixes) {
          max = Math.max(max, num(p.nbytes));
          sum += num(p.nbytes);
          keys += num(p.keys);
        }
        keyedRows(
          container,
          prefixes,
          (p) => String(p.prefix),
          (p, key) => {
            const row = rowSkeleton('key-row', key, ['nbytes']);
            row._swatch.style.background = prefixColor(key);
            row._segs.nbytes.style.background = prefixColor(key);
            row.dataset.prefix = key;
            return row;
          },
          (row, p) => {
            setData(row, 'nbytes', num(p.nbytes));
            setData(row, 'keys', num(p.keys));
            setWidth(row._segs.nbytes, num(p.nbytes) / max);
            setText(row._text, fmtBytes(p.nbytes) + ' \u00b7 ' + fmtInt(p.keys) + (num(p.keys) === 1 ? ' key' : ' keys'));
          }
        );
        if (total) {
          setText(total, fmtBytes(sum) + ' in ' + fmtInt(keys) + ' keys, ' + prefixes.length + ' prefixes');
        }
      }),
    };
  }

  // ---------------------------------------------------------------------------------------
  // Workers page
  // ---------------------------------------------------------------------------------------

  function workersView() {
    const table = $('#workers');
    const tbody = table.tBodies[0] || table.appendChild(document.createElement('tbody'));
    const logs = $('#worker-logs');
    const COLS = [
      'name', 'address', 'nthreads', 'memory_limit', 'managed', 'spilled', 'process',
      'tasks', 'in_memory', 'cpu', 'last_seen',
    ];

    return {
      snapshot() {},
      poller: new Poller('/api/workers', '/api/workers', (d) => {
        const workers = Array.isArray(d.workers) ? d.workers : [];
        R.workers = d;
        keyedRows(
          tbody,
          workers,
          (w) => String(w.name),
          (w, key) => {
            const tr = document.createElement('tr');
            tr.className = 'worker-row';
            tr.dataset.worker = key;
            tr._cells = {};
            for (const c of COLS) {
              const td = document.createElement('td');
              if (c === 'name' || c === 'address') td.className = 'mono';
              td.dataset.col = c;
              tr.appendChild(td);
              tr._cells[c] = td;
            }
            return tr;
          },
          (tr, w) => {
            const c = tr._cells;
            setData(tr, 'nthreads', num(w.nthreads));
            setData(tr, 'managed', num(w.managed));
            setData(tr, 'processing', num(w.processing));
            setData(tr, 'executing', num(w.executing));
            setData(tr, 'inMemory', num(w.in_memory));
            setText(c.name, String(w.name) + (w.paused ? ' (paused)' : ''));
            setText(c.address, String(w.address || ''));
            setText(c.nthreads, fmtInt(w.nthreads));
            setText(c.memory_limit, num(w.memory_limit) > 0 ? fmtBytes(w.memory_limit) : 'none');
            setText(c.managed, fmtBytes(w.managed));
            setText(c.spilled, fmtBytes(w.spilled));
            setText(c.process, fmtBytes(w.process));
            setText(c.tasks, fmtInt(w.executing) + ' / ' + fmtInt(w.processing));
            c.tasks.title = `${num(w.executing)} executing, ${num(w.ready)} ready, ${num(w.processing)} processing`;
            setText(c.in_memory, fmtInt(w.in_memory));
            // cpu: text and a small bar
            const cpu = num(w.cpu);
            if (!c.cpu._bar) {
              c.cpu.textContent = '';
              c.cpu._txt = document.createTextNode('');
              c.cpu.appendChild(c.cpu._txt);
              const mb = el('span', 'minibar');
              c.cpu._bar = el('span');
              mb.appendChild(c.cpu._bar);
              c.cpu.appendChild(mb);
            }
            c.cpu._txt.nodeValue = cpu.toFixed(cpu < 10 ? 1 : 0) + ' %';
            setWidth(c.cpu._bar, cpu / (100 * Math.max(1, num(w.nthreads))));
            const ago = num(w.last_seen_ms);
            setText(c.last_seen, fmtDuration(ago) + ' ago');
            c.last_seen.classList.toggle('stale', ago > 10000);
          }
        );
        // logs, one collapsible block per worker
        keyedRows(
          logs,
          workers,
          (w) => String(w.name),
          (w, key) => {
            const det = document.createElement('details');
            // open by default while there are few workers
            det.open = logs.children.length < 8;
            const sum = document.createElement('summary');
            sum.appendChild(document.createTextNode(key));
            det._n = el('span', 'n');
            sum.appendChild(det._n);
            det.appendChild(sum);
            const pre = el('pre', 'worker-logs');
            pre.dataset.worker = key;
            det.appendChild(pre);
            det._pre = pre;
            return det;
          },
          (det, w) => {
            const lines = Array.isArray(w.logs) ? w.logs : [];
            const text = lines.length ? lines.join('\n') : '';
            const pre = det._pre;
            setData(pre, 'lines', lines.length);
            setText(det._n, lines.length + (lines.length === 1 ? ' line' : ' lines'));
            if (pre.textContent !== text) {
              const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
              pre.textContent = text;
              if (atBottom) pre.scrollTop = pre.scrollHeight;
            }
            pre.classList.toggle('empty-log', !lines.length);
          }
        );
        const n = $('#workers-count');
        if (n) {
          let threads = 0;
          for (const w of workers) threads += num(w.nthreads);
          setText(n, workers.length + ' workers \u00b7 ' + threads + ' threads');
        }
      }),
    };
  }

  // ---------------------------------------------------------------------------------------
  // Info page
  // ---------------------------------------------------------------------------------------

  function infoView() {
    const dl = $('#info');
    const LABELS = {
      source: 'Source',
      version: 'Version',
      address: 'Scheduler address',
      started_ms: 'Started',
      now_ms: 'Now',
      uptime: 'Uptime',
      n_workers: 'Workers',
      n_threads: 'Threads',
      n_clients: 'Clients',
      n_tasks: 'Tasks',
      seq: 'Snapshot',
    };
    const ORDER = [
      'source', 'version', 'address', 'started_ms', 'now_ms', 'uptime',
      'n_workers', 'n_threads', 'n_clients', 'n_tasks', 'seq',
    ];
    const entries = new Map(); // field -> {dt, dd, value, human}
    let uptimeBase = null; // [uptime ms at receipt, performance.now() at receipt]

    function entry(field) {
      let e = entries.get(field);
      if (e) return e;
      const dt = el('dt', null, LABELS[field] || field.replace(/_/g, ' '));
      const dd = el('dd', /_ms$/.test(field) ? 'time' : null);
      const value = el('span');
      if (field === 'uptime') value.dataset.derived = 'uptime';
      else value.dataset.field = field;
      const human = el('span', 'human');
      dd.appendChild(value);
      dd.appendChild(human);
      e = { dt, dd, value, human };
      entries.set(field, e);
      return e;
    }

    function humanOf(field, v, info) {
      if (field === 'source') {
        return v === 'cluster' ? 'a scheduler and its workers' : v === 'local' ? 'a local computation on threads' : '';
      }
      if (field === 'started_ms' || field === 'now_ms') return num(v) ? fmtDate(v) : '';
      if (field === 'address' && !v) return 'none (a local computation)';
      if (field === 'n_tasks' && num(v) >= 10000) return fmtInt(v);
      return '';
    }

    function tick() {
      if (!uptimeBase) return;
      const e = entries.get('uptime');
      if (e) setText(e.value, fmtDuration(uptimeBase[0] + (performance.now() - uptimeBase[1])));
    }
    setInterval(tick, 1000);

    return {
      snapshot() {},
      poller: new Poller('/api/info', '/api/info', (d) => {
        R.info = d;
        const fields = ORDER.filter((f) => f === 'uptime' || f in d);
        for (const f of Object.keys(d)) if (!fields.includes(f)) fields.push(f);
        let prev = null;
        for (const f of fields) {
          const e = entry(f);
          if (f === 'uptime') {
            if (typeof d.started_ms === 'number' && typeof d.now_ms === 'number') {
              uptimeBase = [Math.max(0, d.now_ms - d.started_ms), performance.now()];
              tick();
              setText(e.human, 'since ' + fmtDate(d.started_ms));
            }
          } else {
            const v = d[f];
            setText(e.value, v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
            setText(e.human, humanOf(f, v, d));
          }
          const want = prev ? prev.dd.nextSibling : dl.firstChild;
          if (want !== e.dt) {
            dl.insertBefore(e.dt, want);
            dl.insertBefore(e.dd, e.dt.nextSibling);
          } else if (e.dt.nextSibling !== e.dd) {
            dl.insertBefore(e.dd, e.dt.nextSibling);
          }
          prev = e;
        }
        const t = $('#info-source');
        if (t) setText(t, d.source === 'local' ? 'local computation' : d.address ? 'scheduler at ' + d.address : '');
      }),
    };
  }

  // ---------------------------------------------------------------------------------------
  // Start
  // ---------------------------------------------------------------------------------------

  function start() {
    // A token given in the URL has become a cookie: take it out of the address bar.
    if (/[?&]token=/.test(location.search) && window.history && history.replaceState) {
      const params = new URLSearchParams(location.search);
      params.delete('token');
      const q = params.toString();
      history.replaceState(null, '', location.pathname + (q ? '?' + q : '') + location.hash);
    }
    for (const a of document.querySelectorAll('.topbar nav a')) {
      if (a.getAttribute('href') === '/' + pageName) a.classList.add('active');
    }
    const views = {
      status: statusView,
      graph: graphView,
      memory: memoryView,
      workers: workersView,
      info: infoView,
    };
    const make = views[pageName];
    if (make) {
      view = make();
      if (view.poller) pollers.push(view.poller);
    }
    showBadge();
    statusPoller.request(0, true);
    connect();
    // A browser allows six HTTP/1.1 connections per host, and every open event stream holds
    // one: a page kept in the back/forward cache or a tab in the background would starve the
    // pages in front of their fetches. So the stream is open only while the page is shown.
    const disconnect = () => {
      if (retryTimer) {
        clearTimeout(retryTimer);
        retryTimer = null;
      }
      if (source) {
        source.close();
        source = null;
      }
    };
    window.addEventListener('pagehide', disconnect);
    window.addEventListener('pageshow', (ev) => {
      if (ev.persisted) {
        statusPoller.request(0, true);
        connect();
      }
    });
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) {
        disconnect();
      } else if (!source) {
        statusPoller.request(0, true);
        connect();
      }
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
