// Shoal dashboard: polls the agent's API (with the API token from
// sessionStorage, as an Authorization header) and renders the members
// table (only the current page), the aggregate-load chart, the scaler's
// state when the agent has one, and recent events. No dependencies.
(() => {
  'use strict';
  const params = new URLSearchParams(location.search);
  const interval = Math.max(250, Number(params.get('interval')) || 2000);
  const TOKEN_KEY = 'shoal-token';
  const $ = (id) => document.getElementById(id);

  const state = {
    dash: null, history: null, events: [],
    scale: { available: true, probedAt: 0, status: null, history: [] },
    sort: { key: 'name', asc: true }, filter: '', status: '', page: 0, pageSize: 50,
    needToken: false, timer: null, inflight: false,
  };
  // Figures for tests and the curious: window.__shoal.
  const stats = window.__shoal = {
    polls: 0, renders: 0, errors: 0, firstRenderMs: null, lastFetchMs: null, lastRenderMs: null,
    renderTimes: [], rows: 0, lastError: '',
  };

  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';
  class HTTPError extends Error { constructor(path, status, msg) { super(`${path}: ${status} ${msg}`); this.status = status; } }
  async function api(path) {
    const headers = {};
    const t = token();
    if (t) headers.Authorization = 'Bearer ' + t;
    const r = await fetch(path, { headers, cache: 'no-store' });
    if (!r.ok) {
      let msg = '';
      try { msg = (await r.json()).error || ''; } catch (_) { /* not JSON */ }
      throw new HTTPError(path, r.status, msg);
    }
    return r.json();
  }

  // ---- formatting -------------------------------------------------------
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const pct = (v) => v.toFixed(1) + '%';
  function rate(b) {
    if (b >= 1e9) return (b / 1e9).toFixed(1) + ' GB/s';
    if (b >= 1e6) return (b / 1e6).toFixed(1) + ' MB/s';
    if (b >= 1e3) return (b / 1e3).toFixed(1) + ' kB/s';
    return b.toFixed(0) + ' B/s';
  }
  function age(s) {
    if (s < 0) return '–';
    if (s < 60) return s.toFixed(1) + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + String(Math.floor(s % 60)).padStart(2, '0') + 's';
    return Math.floor(s / 3600) + 'h' + String(Math.floor(s % 3600 / 60)).padStart(2, '0') + 'm';
  }
  const clock = (d) => d.toLocaleTimeString([], { hour12: false });
  // Shares and uptime are fractions; -1 (or no share) means nothing measured.
  const shareOf = (m, k) => (m.share && m.share[k] >= 0 ? m.share[k] : -1);
  const frac = (v) => (v >= 0 ? (100 * v).toFixed(1) + '%' : '–');
  const fracRange = (lo, hi, n) => (n > 0 && lo >= 0 ? (lo.toFixed(3) === hi.toFixed(3) ? frac(lo) : `${(100 * lo).toFixed(1)}–${frac(hi)}`) + ` of ${n}` : '–');
  const tagStr = (t) => t ? Object.keys(t).sort().map((k) => k + '=' + t[k]).join(', ') : '';
  function bar(v, cls) {
    const w = Math.max(0, Math.min(100, v));
    const heat = v >= 90 ? ' hot' : v >= 75 ? ' warm' : '';
    return `<span class="bar ${cls}"><i><b class="${heat}" style="width:${w.toFixed(1)}%"></b></i>${pct(v)}</span>`;
  }

  // ---- members table ----------------------------------------------------
  const statusRank = { failed: 0, leaving: 1, left: 2, alive: 3 };
  const sorters = {
    name: (a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    status: (a, b) => (statusRank[a.status] ?? 9) - (statusRank[b.status] ?? 9),
    cpu: (a, b) => (a.has_load ? a.cpu : -1) - (b.has_load ? b.cpu : -1),
    mem: (a, b) => (a.has_load ? a.mem : -1) - (b.has_load ? b.mem : -1),
    net: (a, b) => (a.net_rx + a.net_tx) - (b.net_rx + b.net_tx),
    weight: (a, b) => a.weight - b.weight,
    age: (a, b) => a.age - b.age,
    pick: (a, b) => shareOf(a, 'pick_share') - shareOf(b, 'pick_share'),
    proxy: (a, b) => shareOf(a, 'proxy_share') - shareOf(b, 'proxy_share'),
    up: (a, b) => shareOf(a, 'uptime') - shareOf(b, 'uptime'),
  };

  function visibleMembers() {
    const ms = state.dash ? state.dash.members : [];
    const f = state.filter.trim().toLowerCase();
    const st = state.status;
    let out = ms;
    if (f || st) {
      out = ms.filter((m) => {
        if (st && m.status !== st) return false;
        if (!f) return true;
        if (m.name.toLowerCase().includes(f) || m.addr.includes(f) || m.status.includes(f)) return true;
        if (m._tags === undefined) m._tags = tagStr(m.tags).toLowerCase();
        return m._tags.includes(f) || (m.coordinator && 'coordinator'.includes(f));
      });
    } else {
      out = ms.slice();
    }
    const cmp = sorters[state.sort.key] || sorters.name;
    const dir = state.sort.asc ? 1 : -1;
    out.sort((a, b) => dir * cmp(a, b) || sorters.name(a, b));
    return out;
  }

  function renderMembers() {
    const all = visibleMembers();
    const pages = Math.max(1, Math.ceil(all.length / state.pageSize));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * state.pageSize;
    const page = all.slice(start, start + state.pageSize);
    let html = '';
    for (const m of page) {
      const badges = (m.self ? '<span class="badge">this agent</span>' : '') +
        (m.coordinator ? '<span class="badge coord">coordinator</span>' : '');
      const load = m.has_load;
      const ageCls = m.age < 0 ? '' : m.age > 30 ? ' dead' : m.age > 5 ? ' stale' : '';
      html += `<tr data-name="${esc(m.name)}" data-status="${esc(m.status)}" data-load="${load ? 1 : 0}" class="${esc(m.status)}${m.self ? ' self' : ''}">` +
        `<td title="${esc(m.addr)}">${esc(m.name)}${badges}</td>` +
        `<td><span class="status ${esc(m.status)}">${esc(m.status)}</span></td>` +
        `<td class="num cpu">${load ? bar(m.cpu, 'cpu') : '–'}</td>` +
        `<td class="num mem">${load ? bar(m.mem, 'mem') : '–'}</td>` +
        `<td class="num hide-s">${load ? '&darr;' + rate(m.net_rx) + ' &uarr;' + rate(m.net_tx) : '–'}</td>` +
        `<td class="num hide-s">${m.status === 'alive' && load ? m.weight.toFixed(2) : '–'}</td>` +
        `<td class="num age${ageCls}">${age(m.age)}</td>` +
        `<td class="num pick hide-s">${frac(shareOf(m, 'pick_share'))}</td>` +
        `<td class="num proxy hide-m">${frac(shareOf(m, 'proxy_share'))}</td>` +
        `<td class="num up">${frac(shareOf(m, 'uptime'))}</td>` +
        `<td class="tags hide-m" title="${esc(tagStr(m.tags))}">${esc(tagStr(m.tags))}</td></tr>`;
    }
    if (!page.length) html = `<tr><td colspan="11" class="muted">${state.dash ? 'no member matches' : 'loading…'}</td></tr>`;
    $('rows').innerHTML = html;
    stats.rows = page.length;
    const total = state.dash ? state.dash.members.length : 0;
    $('m-count').textContent = all.length === total ? `(${total})` : `(${all.length} of ${total})`;
    $('page').textContent = all.length ? `${start + 1}–${start + page.length} of ${all.length}` : '0';
    $('prev').disabled = state.page === 0;
    $('next').disabled = state.page >= pages - 1;
    for (const th of document.querySelectorAll('th[data-sort]')) {
      th.classList.toggle('sorted', th.dataset.sort === state.sort.key);
      th.classList.toggle('asc', th.dataset.sort === state.sort.key && state.sort.asc);
    }
  }

  function renderSummary() {
    const d = state.dash;
    if (!d) return;
    $('node').textContent = '· ' + d.node + (d.synthetic ? ` (+${d.synthetic} synthetic)` : '');
    $('version').textContent = d.version;
    const c = d.counts || {};
    $('s-members').textContent = d.members.length;
    $('s-alive').textContent = c.alive || 0;
    const failed = c.failed || 0;
    $('s-failed').textContent = failed;
    $('s-failed').className = failed ? 'bad' : '';
    const l = d.leader;
    const coord = $('s-coord');
    if (!l) { coord.textContent = 'no election'; coord.className = 'muted'; }
    else if (l.coordinator) { coord.textContent = l.coordinator + (l.acting ? ' (acting)' : ''); coord.className = ''; }
    else { coord.textContent = l.electing ? 'electing…' : 'none'; coord.className = 'warn'; }
    $('s-term').textContent = l && l.term ? l.term : '–';
    const ag = d.aggregate;
    $('s-cpu').textContent = ag.members ? pct(ag.cpu_mean) : '–';
    $('s-mem').textContent = ag.members ? pct(ag.mem_mean) : '–';
    $('s-age').textContent = ag.members ? age(ag.max_age_seconds) : '–';
  }

  // ---- model and measured -----------------------------------------------------
  function renderMeasured() {
    const d = state.dash;
    const m = d && d.measured;
    $('measured').hidden = !m;
    if (!m) return;
    const win = m.recent_seconds >= 60 && m.recent_seconds % 60 === 0 ? (m.recent_seconds / 60) + 'm' : m.recent_seconds + 's';
    $('recent-window').textContent = win;
    const model = (n, share, a) => n > 0 ? [`N/${n} = ${frac(share)}`, a.toFixed(2)] : ['–', '–'];
    const rows = [];
    const [mp, ma] = model(m.n, m.model_share, m.model_availability);
    rows.push(`<tr data-scope="mesh"><td>all members</td><td class="num">${m.n}</td><td class="num">${mp}</td><td class="num">${ma}</td>` +
      `<td class="num avail">${frac(m.availability)}</td><td class="num hide-s">${frac(m.availability_recent)}</td><td class="num hide-s">–</td>` +
      `<td class="num">${m.picks} picks</td><td class="num hide-m">${m.proxy_requests} proxied</td><td class="num hide-m uptime">${frac(m.uptime_mean)}</td></tr>`);
    for (const s of m.services || []) {
      const [sp, sa] = model(s.n, s.model_share, s.model_availability);
      const name = s.service ? 'service ' + esc(s.service) : 'no service';
      rows.push(`<tr data-scope="${s.service ? 'service' : 'none'}" data-service="${esc(s.service)}"><td>${name}</td><td class="num">${s.n}</td><td class="num">${sp}</td><td class="num">${sa}</td>` +
        `<td class="num avail">${frac(s.availability)}</td><td class="num hide-s">${frac(s.availability_recent)}</td><td class="num hide-s">${s.service ? s.healthy : '–'}</td>` +
        `<td class="num">${fracRange(s.pick_share_min, s.pick_share_max, s.picks)}</td><td class="num hide-m">${fracRange(s.proxy_share_min, s.proxy_share_max, s.proxy_requests)}</td><td class="num hide-m">–</td></tr>`);
    }
    $('measured-rows').innerHTML = rows.join('');
  }

  // ---- scaler -------------------------------------------------------------
  const pick = (o, ...keys) => { for (const k of keys) { const v = k.split('.').reduce((x, p) => x == null ? x : x[p], o); if (v != null) return v; } return undefined; };
  function scaleRecords() {
    const h = state.scale.history;
    const list = Array.isArray(h) ? h : (h && (h.records || h.history || h.decisions)) || [];
    return list.map((r) => {
      const d = r.decision || r;
      return {
        time: new Date(r.time || d.time), outcome: r.outcome || (d.dry_run ? 'dry-run' : ''), action: d.action || '',
        current: d.current, desired: d.desired, reason: (d.reasons || []).join('; ') || r.reason || '', error: r.error || '', node: r.node || '',
      };
    }).filter((r) => !isNaN(r.time));
  }
  function scaleTarget() {
    const s = state.scale.status;
    if (!s) return null;
    const target = pick(s, 'target', 'config.target', 'policy.target', 'config.Target');
    if (typeof target !== 'number') return null;
    const tol = pick(s, 'tolerance', 'config.tolerance', 'policy.tolerance', 'config.Tolerance');
    const metric = String(pick(s, 'metric', 'config.metric', 'policy.metric', 'config.Metric') || 'cpu');
    return { target, tol: typeof tol === 'number' ? tol : 0, metric };
  }
  function flatten(o, prefix, out, depth) {
    for (const [k, v] of Object.entries(o || {})) {
      if (v && typeof v === 'object' && !Array.isArray(v) && depth < 2) flatten(v, prefix + k + '.', out, depth + 1);
      else if (!Array.isArray(v) || v.length <= 4) out.push([prefix + k, Array.isArray(v) ? v.join(', ') : v]);
    }
    return out;
  }
  // The fields of GET /v1/scale/status worth a line, in order; anything
  // else the status carries is shown flattened when none of these is there.
  const scaleFields = [
    ['provider', (s) => s.provider + (s.resource ? ' · ' + s.resource : '') + (s.dry_run ? ' (dry run)' : '')],
    ['policy', (s) => s.mode === 'thresholds' ? 'thresholds on ' + s.metric : `${s.metric} target ${s.target}`],
    ['value', (s) => s.value_valid === false ? 'no figures' : `${(+s.value).toFixed(1)} over ${s.members} members`],
    ['instances', (s) => `${s.current}${s.current_source ? ' (' + s.current_source + ')' : ''} → desired ${s.desired}, bounds ${s.min}–${s.max || '∞'}`],
    ['last evaluation', (s) => (s.action || '') + (s.reasons && s.reasons.length ? ': ' + s.reasons.join('; ') : '')],
    ['coordinator', (s) => s.coordinator ? `${s.coordinator} (term ${s.term})${s.acting ? ', acting here' : ''}` : 'none'],
    ['decisions', (s) => Object.entries(s.decisions || {}).map(([k, v]) => `${k} ${v}`).join(', ') || 'none yet'],
    ['error', (s) => s.error || ''],
  ];
  function renderScale() {
    const st = state.scale.status;
    const on = state.scale.available && st && st.enabled !== false;
    $('scale').hidden = !on;
    $('legend-scale').hidden = !on;
    if (!on) return;
    const rows = 'provider' in st
      ? scaleFields.map(([k, f]) => { try { return [k, f(st)]; } catch (_) { return [k, '']; } }).filter(([, v]) => v !== '' && v != null)
      : flatten(st, '', [], 0).slice(0, 24);
    const recs = scaleRecords();
    const last = recs[recs.length - 1];
    let html = '<dl>' + rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v === null ? '–' : v)}</dd>`).join('') + '</dl>';
    if (last) html += `<p class="small">last decision ${esc(clock(last.time))}: <b>${esc(last.outcome || last.action)}</b> ${esc(last.current ?? '')}&rarr;${esc(last.desired ?? '')} <span class="muted">${esc(last.reason)}${last.error ? ' · ' + esc(last.error) : ''}</span></p>`;
    $('scale-body').innerHTML = html;
  }

  // ---- chart --------------------------------------------------------------
  function renderChart() {
    const cv = $('chart');
    const dpr = window.devicePixelRatio || 1;
    const w = cv.clientWidth, h = cv.clientHeight || 180;
    if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) { cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr); }
    const g = cv.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const col = (n) => css.getPropertyValue(n).trim();
    const samples = (state.history && state.history.samples) || [];
    const L = 34, R = 8, T = 8, B = 20;
    const pw = w - L - R, ph = h - T - B;
    const now = Date.now();
    const span = 10 * 60 * 1000;
    const t0 = samples.length ? Math.min(samples[0].t, now - 60 * 1000) : now - span;
    const x = (t) => L + (t - t0) / (now - t0) * pw;
    const y = (v) => T + ph - Math.max(0, Math.min(100, v)) / 100 * ph;
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = col('--muted'); g.strokeStyle = col('--line'); g.lineWidth = 1;
    for (const v of [0, 25, 50, 75, 100]) {
      g.beginPath(); g.moveTo(L, y(v) + .5); g.lineTo(L + pw, y(v) + .5); g.stroke();
      g.fillText(v + '%', 2, y(v) + 4);
    }
    for (let m = Math.ceil((now - t0) / 60000); m >= 1; m--) {
      const t = now - m * 60000;
      if (t < t0) continue;
      g.fillText(`-${m}m`, x(t) - 10, h - 5);
    }
    g.fillText('now', L + pw - 20, h - 5);
    const tgt = scaleTarget();
    if (state.scale.available && state.scale.status && state.scale.status.enabled !== false && tgt && /cpu|mem/.test(tgt.metric) && tgt.target <= 100) {
      g.fillStyle = 'rgba(255,179,71,.10)';
      const hi = tgt.target * (1 + tgt.tol), lo = tgt.target * (1 - tgt.tol);
      g.fillRect(L, y(hi), pw, y(lo) - y(hi));
      g.strokeStyle = col('--warn'); g.setLineDash([5, 4]);
      g.beginPath(); g.moveTo(L, y(tgt.target)); g.lineTo(L + pw, y(tgt.target)); g.stroke();
      g.setLineDash([]);
      g.fillStyle = col('--warn'); g.fillText(`target ${tgt.target} (${tgt.metric})`, L + 4, y(hi) - 3);
    }
    const line = (key, color, alpha, width, dash) => {
      g.strokeStyle = color; g.globalAlpha = alpha; g.lineWidth = width; g.setLineDash(dash || []); g.beginPath();
      let started = false;
      for (const s of samples) {
        if (!s.with_load) { started = false; continue; }
        const px = x(s.t), py = y(s[key]);
        if (started) g.lineTo(px, py); else { g.moveTo(px, py); started = true; }
      }
      g.stroke(); g.globalAlpha = 1; g.lineWidth = 1; g.setLineDash([]);
    };
    line('mem_mean', col('--mem'), 1, 1.5);
    line('cpu_mean', col('--cpu'), 1, 2);
    // The max is drawn last and dashed, so it stays visible where it equals the mean.
    line('cpu_max', col('--cpu'), .9, 1.5, [4, 3]);
    if (state.scale.available) {
      for (const r of scaleRecords()) {
        const t = r.time.getTime();
        if (t < t0) continue;
        const refused = /refused|failed/.test(r.outcome);
        g.strokeStyle = refused ? col('--bad') : r.action === 'down' || r.desired < r.current ? col('--accent') : col('--ok');
        if (!refused && r.action === 'none') continue;
        g.beginPath(); g.moveTo(x(t) + .5, T); g.lineTo(x(t) + .5, T + ph); g.stroke();
        g.fillStyle = g.strokeStyle;
        g.fillText(refused ? '✕' : `${r.current}→${r.desired}`, x(t) + 3, T + 10);
      }
    }
    const last = samples[samples.length - 1];
    $('chart-note').textContent = last ? `${samples.length} samples every ${state.history.interval_seconds}s · ${last.with_load} members with load, ${last.failed} failed` : 'no samples yet';
  }

  // ---- events -------------------------------------------------------------
  function renderEvents() {
    const evs = state.events.map((e) => ({ time: new Date(e.time), type: e.type, text: (e.member || '') + (e.detail ? ' · ' + e.detail : '') }));
    if (state.scale.available) {
      for (const r of scaleRecords()) {
        evs.push({ time: r.time, type: 'scale ' + (r.outcome || r.action), cls: r.outcome, text: `${r.current ?? ''}→${r.desired ?? ''} ${r.reason}${r.error ? ' · ' + r.error : ''}` });
      }
    }
    evs.sort((a, b) => b.time - a.time);
    $('events').innerHTML = evs.slice(0, 100).map((e) =>
      `<li><time>${esc(clock(e.time))}</time><span class="type ${esc(e.cls || e.type)}">${esc(e.type)}</span><span>${esc(e.text)}</span></li>`).join('') ||
      '<li class="muted">no events yet</li>';
  }

  function render() {
    const t = performance.now();
    renderSummary();
    renderMembers();
    renderEvents();
    renderMeasured();
    renderScale();
    renderChart();
    const ms = performance.now() - t;
    stats.renders++;
    stats.lastRenderMs = ms;
    stats.renderTimes.push(ms);
    if (stats.renderTimes.length > 50) stats.renderTimes.shift();
    if (stats.firstRenderMs === null && state.dash) stats.firstRenderMs = performance.now();
  }

  // ---- polling --------------------------------------------------------------
  function setConn(kind, text) {
    $('conn').className = 'dot ' + kind;
    $('conn-text').textContent = text;
  }
  async function probeScale() {
    const s = state.scale;
    if (!s.available && Date.now() - s.probedAt < 30000) return;
    s.probedAt = Date.now();
    try {
      const [st, hist] = await Promise.all([api('/v1/scale/status'), api('/v1/scale/history').catch(() => [])]);
      s.available = true; s.status = st; s.history = hist;
    } catch (e) {
      if (e.status === 401) throw e;
      s.available = false; s.status = null; s.history = []; // 404: no scaler here; hide the panel
    }
  }
  async function poll() {
    if (state.inflight || state.needToken) return;
    state.inflight = true;
    const t = performance.now();
    try {
      const [dash, hist, evs] = await Promise.all([api('/v1/dashboard'), api('/v1/history'), api('/v1/events')]);
      await probeScale();
      state.dash = dash; state.history = hist; state.events = evs || [];
      stats.lastFetchMs = performance.now() - t;
      stats.polls++;
      setConn('live', 'live · ' + clock(new Date()));
      render();
    } catch (e) {
      stats.errors++; stats.lastError = String(e.message || e);
      if (e.status === 401) {
        askToken(token() ? 'The agent refused this token.' : '');
      } else {
        setConn('down', 'agent unreachable · retrying');
      }
    } finally {
      state.inflight = false;
    }
  }
  function askToken(msg) {
    state.needToken = true;
    setConn('down', 'API token needed');
    $('token-form').hidden = false;
    $('token-error').textContent = msg || '';
    $('token').focus();
  }

  // ---- wiring ---------------------------------------------------------------
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('token').value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v); else sessionStorage.removeItem(TOKEN_KEY);
    $('token').value = '';
    $('token-form').hidden = true;
    state.needToken = false;
    poll();
  });
  $('token-btn').addEventListener('click', () => askToken(''));
  document.querySelector('thead').addEventListener('click', (ev) => {
    const th = ev.target.closest('th[data-sort]');
    if (!th) return;
    const k = th.dataset.sort;
    if (state.sort.key === k) state.sort.asc = !state.sort.asc;
    else state.sort = { key: k, asc: k === 'name' || k === 'status' };
    renderMembers();
  });
  let ft = null;
  $('filter').addEventListener('input', (ev) => {
    clearTimeout(ft);
    ft = setTimeout(() => { state.filter = ev.target.value; state.page = 0; renderMembers(); }, 80);
  });
  $('status').addEventListener('change', (ev) => { state.status = ev.target.value; state.page = 0; renderMembers(); });
  $('pagesize').addEventListener('change', (ev) => { state.pageSize = Number(ev.target.value); state.page = 0; renderMembers(); });
  $('prev').addEventListener('click', () => { state.page = Math.max(0, state.page - 1); renderMembers(); });
  $('next').addEventListener('click', () => { state.page++; renderMembers(); });
  window.addEventListener('resize', () => renderChart());
  $('interval').textContent = interval >= 1000 ? interval / 1000 + ' s' : interval + ' ms';
  state.pageSize = Number($('pagesize').value);

  poll();
  state.timer = setInterval(poll, interval);
})();
