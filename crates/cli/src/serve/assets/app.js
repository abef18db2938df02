// The aiobs viewer: a trace list, a waterfall per trace, a timeline per
// session, over the read-only JSON API under /api/ (docs/viewer.md).
//
// Safe by construction: every value that comes from the store reaches the
// page as text (text nodes, textContent, attributes set one by one), never
// as markup. The page's Content-Security-Policy backs this up: with Trusted
// Types and no policy, assigning a string to an HTML sink throws, and no
// inline script or event handler can run.
'use strict';

const app = document.getElementById('app');
const POLL_MS = 3000;
let poller = null; // the current view's refresh timer
let view = 0; // bumped on every navigation: late answers of old views are ignored

// ---------------------------------------------------------------- elements

/** An element with properties, listeners and children (strings become text). */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  return add(el, ...children);
}

/** Appends children (nodes, strings as text, arrays of either) to `el`. */
function add(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

function show(...children) {
  add(clear(app), ...children);
}

function link(href, ...children) {
  return h('a', { href }, ...children);
}

const tracePath = (id) => '/traces/' + encodeURIComponent(id);
const sessionPath = (id) => '/sessions/' + encodeURIComponent(id);
const listPath = (params) => '/?' + new URLSearchParams(params).toString();

// ---------------------------------------------------------------- formats

function fmtMs(ms) {
  if (ms === null || ms === undefined) return 'running';
  if (ms < 1) return Math.round(ms * 1000) + ' µs';
  if (ms < 10) return ms.toFixed(2) + ' ms';
  if (ms < 1000) return ms.toFixed(1) + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(2) + ' s';
  const m = Math.floor(ms / 60000);
  return m + ' min ' + Math.round((ms % 60000) / 1000) + ' s';
}

const number = new Intl.NumberFormat('en-US');
const fmtInt = (n) => (n === null || n === undefined ? '' : number.format(n));

function fmtCost(usd) {
  if (usd === null || usd === undefined) return '';
  if (usd === 0) return '$0';
  return '$' + (usd < 0.01 ? usd.toPrecision(2) : usd.toFixed(4));
}

function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function durationMs(start, end) {
  return end ? Math.max(0, new Date(end) - new Date(start)) : null;
}

/** The colour family of a span type (`t-model`, `t-tool`, ...). */
function family(type) {
  const t = String(type);
  if (t === 'agent_run') return 't-agent';
  if (t.startsWith('model_')) return 't-model';
  if (t.endsWith('tool_call')) return 't-tool';
  if (t.startsWith('workflow_')) return 't-workflow';
  if (t.startsWith('rag_')) return 't-rag';
  if (t === 'memory_operation') return 't-memory';
  if (t === 'scorer_run') return 't-scorer';
  return 't-other';
}

function statusBadge(status) {
  return h('span', { class: 'badge s-' + status }, status);
}

function tokens(u) {
  if (!u) return null;
  const cached = u.input_details && u.input_details.cache_read;
  return h('span', { class: 'tokens', title: 'input tokens (cached) → output tokens' },
    fmtInt(u.input_tokens), cached ? ` (${fmtInt(cached)} cached)` : '', ' → ', fmtInt(u.output_tokens), ' tok');
}

// ---------------------------------------------------------------- data

async function api(path) {
  const r = await fetch(path, { headers: { Accept: 'application/json' } });
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) throw new Error(body && body.error ? body.error : `${r.status} ${r.statusText}`);
  return body;
}

function failure(e) {
  return h('p', { class: 'error-box', role: 'alert' }, String(e.message || e));
}

function stopPolling() {
  if (poller) clearInterval(poller);
  poller = null;
  liveState(null);
}

function startPolling(fn) {
  stopPolling();
  poller = setInterval(() => { if (document.visibilityState === 'visible') fn(); }, POLL_MS);
  liveState('live');
}

function liveState(text) {
  const el = document.getElementById('live');
  el.hidden = !text;
  el.textContent = text || '';
}

// ---------------------------------------------------------------- routing

function route() {
  view += 1;
  stopPolling();
  const m = location.pathname.match(/^\/(traces|sessions)\/([^/]+)$/);
  if (m && m[1] === 'traces') return showTrace(decodeURIComponent(m[2]), view);
  if (m) return showSession(decodeURIComponent(m[2]), view);
  return showList(view);
}

function navigate(url) {
  history.pushState(null, '', url);
  route();
  window.scrollTo(0, 0);
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a');
  if (!a || a.origin !== location.origin || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
});
window.addEventListener('popstate', route);

// ---------------------------------------------------------------- trace list

const RANGES = { '': 'any time', '15m': 'last 15 min', '1h': 'last hour', '24h': 'last 24 h', '7d': 'last 7 days' };
const RANGE_MS = { '15m': 9e5, '1h': 36e5, '24h': 864e5, '7d': 6048e5 };
const TEXT_FILTERS = [
  ['name_contains', 'Search span names'], ['user_id', 'User'], ['session_id', 'Session'],
  ['tag', 'Tag'], ['trace_id', 'Trace id'],
];

/** The API query of the list page's own query (`range` becomes `started_after`). */
function listQuery(pageParams, extra) {
  const q = new URLSearchParams();
  for (const [k, v] of pageParams) {
    if (k === 'range') {
      if (RANGE_MS[v]) q.set('started_after', new Date(Date.now() - RANGE_MS[v]).toISOString());
    } else if (v) q.append(k, v);
  }
  for (const [k, v] of Object.entries(extra || {})) if (v) q.set(k, v);
  return q;
}

function filterForm(params) {
  const field = (name, label) => h('label', {}, label,
    h('input', { name, type: 'search', value: params.get(name) || '', placeholder: label, spellcheck: 'false' }));
  const select = (name, label, options) => {
    const s = h('select', { name }, Object.entries(options).map(([v, text]) => h('option', { value: v }, text)));
    s.value = params.get(name) || '';
    return h('label', {}, label, s);
  };
  // The span types come with /api/info; the one asked for is there at once.
  const wanted = params.get('span_type');
  const types = select('span_type', 'Span type', wanted ? { '': 'any type', [wanted]: wanted } : { '': 'any type' });
  info.then((i) => {
    const s = types.querySelector('select');
    for (const t of i.span_types || []) if (t !== wanted) s.append(h('option', { value: t }, t));
  }, () => {});
  const form = h('form', { class: 'filters', role: 'search' },
    TEXT_FILTERS.map(([n, l]) => field(n, l)),
    select('status', 'Status', { '': 'any status', ok: 'ok', error: 'error', running: 'running' }),
    types,
    select('range', 'Started', RANGES),
    h('button', { type: 'submit' }, 'Filter'),
    link('/', 'Clear'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (String(v).trim()) q.append(k, String(v).trim());
    navigate('/?' + q.toString());
  });
  return form;
}

function traceRow(t) {
  const dur = durationMs(t.start_time, t.end_time);
  const u = t.usage || {};
  return h('tr', { 'data-trace-id': t.trace_id, class: t.status === 'error' ? 'row-error' : null },
    h('td', { class: 'time' }, fmtTime(t.start_time)),
    h('td', {}, h('span', { class: 'dot ' + family(t.span_type) }), link(tracePath(t.trace_id), t.name)),
    h('td', {}, statusBadge(t.status)),
    h('td', { class: 'num' }, fmtMs(dur)),
    h('td', { class: 'num' }, fmtInt(t.span_count)),
    h('td', { class: 'num' + (t.error_count ? ' bad' : '') }, fmtInt(t.error_count)),
    h('td', { class: 'num' }, fmtInt(u.input_tokens)),
    h('td', { class: 'num' }, fmtInt(u.cached_input_tokens)),
    h('td', { class: 'num' }, fmtInt(u.output_tokens)),
    h('td', { class: 'num' }, fmtCost(u.cost_usd)),
    h('td', {}, t.user_id ? link(listPath({ user_id: t.user_id }), t.user_id) : ''),
    h('td', {}, t.session_id ? link(sessionPath(t.session_id), t.session_id) : ''),
    h('td', {}, (t.tags || []).map((tag) => link(listPath({ tag }), h('span', { class: 'chip' }, tag)))));
}

async function showList(me) {
  const params = new URLSearchParams(location.search);
  const rows = new Map(); // trace id + root span id -> {summary, tr}
  const body = h('tbody');
  const more = h('div', { class: 'more' });
  const count = h('span', { class: 'muted' });
  const key = (t) => t.trace_id + '/' + t.root_span_id;
  show(
    h('h1', {}, 'Traces ', count),
    filterForm(params),
    h('table', { class: 'traces' },
      h('thead', {}, h('tr', {}, ['Started', 'Name', 'Status', 'Duration', 'Spans', 'Errors',
        'Input tok', 'Cached', 'Output tok', 'Cost', 'User', 'Session', 'Tags'].map((c) => h('th', {}, c)))),
      body),
    more);

  const place = (t) => {
    const old = rows.get(key(t));
    const tr = traceRow(t);
    if (old) {
      if (JSON.stringify(old.summary) !== JSON.stringify(t)) old.tr.replaceWith(tr); else return;
    } else {
      // Newest first: before the first row that started earlier.
      const after = [...rows.values()].find((r) => r.summary.start_time < t.start_time);
      body.insertBefore(tr, after ? after.tr : null);
    }
    rows.set(key(t), { summary: t, tr });
  };
  const counted = () => { count.textContent = rows.size ? `(${fmtInt(rows.size)} shown)` : ''; };

  const load = async (cursor) => {
    clear(more);
    let page;
    try {
      page = await api('/api/traces?' + listQuery(params, { cursor }).toString());
    } catch (e) {
      if (me === view) add(more, failure(e));
      return;
    }
    if (me !== view) return;
    page.traces.forEach(place);
    if (!rows.size) add(more, h('p', { class: 'muted empty' }, 'No traces match. Run `aiobs demo`, or clear the filters.'));
    if (page.next_cursor) add(more, h('button', { type: 'button', onclick: () => load(page.next_cursor) }, 'Load more'));
    counted();
  };
  await load(null);
  // Live: new traces appear at the top, running ones update in place.
  startPolling(async () => {
    try {
      const page = await api('/api/traces?' + listQuery(params).toString());
      if (me !== view) return;
      page.traces.forEach(place);
      counted();
      liveState('live · ' + fmtTime(new Date().toISOString()).slice(11, 19));
    } catch (e) {
      liveState('offline');
    }
  });
  performance.mark('aiobs:list-ready');
  document.body.dataset.ready = 'list';
}

// ---------------------------------------------------------------- values

const FOLD_LINES = 30;
const FOLD_CHARS = 3000;

/** Text in a <pre>, folded past FOLD_LINES lines or FOLD_CHARS characters. */
function foldedText(text, cls) {
  const pre = h('pre', { class: cls || 'value' });
  const lines = text.split('\n');
  const long = lines.length > FOLD_LINES || text.length > FOLD_CHARS;
  if (!long) { pre.textContent = text; return pre; }
  let short = lines.slice(0, FOLD_LINES).join('\n');
  if (short.length > FOLD_CHARS) short = short.slice(0, FOLD_CHARS);
  pre.textContent = short + ' …';
  const button = h('button', { type: 'button', class: 'fold' },
    `Show all (${fmtInt(lines.length)} lines, ${fmtInt(text.length)} characters)`);
  button.addEventListener('click', () => {
    const open = button.dataset.open === '1';
    pre.textContent = open ? short + ' …' : text;
    button.dataset.open = open ? '0' : '1';
    button.textContent = open ? `Show all (${fmtInt(lines.length)} lines, ${fmtInt(text.length)} characters)` : 'Fold';
  });
  return h('div', {}, pre, button);
}

function jsonText(v) {
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}

/** Chat messages: one {role, content}, an array of them, or {messages: [...]}. */
function chatMessages(v) {
  const isMsg = (m) => m && typeof m === 'object' && !Array.isArray(m) && typeof m.role === 'string' &&
    ('content' in m || 'tool_calls' in m || 'parts' in m);
  if (isMsg(v)) return [v];
  const list = Array.isArray(v) ? v : (v && typeof v === 'object' && Array.isArray(v.messages) ? v.messages : null);
  return list && list.length && list.every(isMsg) ? list : null;
}

function messageContent(c) {
  if (typeof c === 'string') return foldedText(c, 'message-text');
  if (Array.isArray(c)) {
    return c.map((part) => (part && typeof part === 'object' && typeof part.text === 'string')
      ? foldedText(part.text, 'message-text')
      : foldedText(jsonText(part)));
  }
  return c === undefined || c === null ? null : foldedText(jsonText(c));
}

/** A payload: chat messages as messages, a string as text, anything else as JSON. */
function valueView(v) {
  const messages = chatMessages(v);
  if (messages) {
    return h('div', { class: 'messages' }, messages.map((m) => h('div', { class: 'message role-' + String(m.role).replace(/[^a-z_]/gi, '') },
      h('div', { class: 'role' }, m.role, m.name ? ' · ' + m.name : ''),
      messageContent(m.content !== undefined ? m.content : m.parts),
      m.tool_calls ? h('div', { class: 'tool-calls' }, h('div', { class: 'muted' }, 'tool calls'), foldedText(jsonText(m.tool_calls))) : null)));
  }
  return foldedText(jsonText(v));
}

// ---------------------------------------------------------------- trace view

function kv(pairs) {
  const dl = h('dl', { class: 'kv' });
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === '') continue;
    add(dl, [h('dt', {}, k), h('dd', {}, v)]);
  }
  return dl.childNodes.length ? dl : null;
}

function section(title, id, ...content) {
  const body = content.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);
  if (!body.length) return null;
  return h('section', { class: 'block', id }, h('h3', {}, title), body);
}

function recordList(records, label) {
  if (!records || !records.length) return null;
  return h('ul', { class: 'records' }, records.map((r) => h('li', {},
    h('strong', {}, r.name || r.key), ' = ', h('code', {}, jsonText(r.value)),
    r.comment ? h('span', { class: 'muted' }, ' — ', r.comment) : null,
    r.source ? h('span', { class: 'muted' }, ' (', r.source, ')') : null,
    r.user_id ? h('span', { class: 'muted' }, ' (user ', r.user_id, ')') : null,
    label ? h('span', { class: 'muted' }, ' · ', label) : null)));
}

function usageTable(u) {
  if (!u) return null;
  const i = u.input_details || {};
  const o = u.output_details || {};
  const c = u.cost || {};
  const row = (name, value, cost) => (value === undefined || value === null) ? null
    : h('tr', {}, h('th', {}, name), h('td', { class: 'num' }, fmtInt(value)), h('td', { class: 'num' }, fmtCost(cost)));
  return h('table', { class: 'usage' },
    h('thead', {}, h('tr', {}, h('th', {}, 'tokens'), h('th', {}, 'count'), h('th', {}, 'cost'))),
    h('tbody', {},
      row('input', u.input_tokens, c.input),
      row('  cache read', i.cache_read), row('  cache write', i.cache_write),
      row('  audio', i.audio), row('  image', i.image),
      row('output', u.output_tokens, c.output),
      row('  reasoning', o.reasoning), row('  audio', o.audio), row('  image', o.image),
      row('total', (u.input_tokens || 0) + (u.output_tokens || 0), c.total)));
}

function spanDetail(d, row) {
  const s = d.span;
  const a = s.attributes || {};
  const dur = durationMs(s.start_time, s.end_time);
  let where = null;
  if (row && row.placement === 'continued') where = 'continues span ' + s.external_parent_span_id + ' (recorded by another process)';
  if (row && row.placement === 'detached') where = 'its parent ' + s.parent_span_id + ' is not in the store';
  if (row && row.placement === 'root' && s.external_parent_span_id) where = 'continues span ' + s.external_parent_span_id + ', which is not in this store';
  const entity = s.entity ? [s.entity.type, s.entity.name || s.entity.id].join(' ') : null;
  const e = s.error;
  return h('div', { class: 'detail-body', 'data-span-id': s.span_id },
    h('h2', {}, h('span', { class: 'dot ' + family(s.span_type) }), s.name),
    h('p', {}, h('span', { class: 'badge ' + family(s.span_type) }, s.span_type), ' ', statusBadge(s.status),
      s.is_event ? h('span', { class: 'badge' }, 'event') : null),
    kv([['span id', s.span_id], ['parent', s.parent_span_id], ['placement', where],
      ['started', fmtTime(s.start_time)], ['ended', fmtTime(s.end_time)], ['duration', fmtMs(dur)],
      ['entity', entity], ['user', s.user_id], ['session', s.session_id],
      ['tags', (s.tags || []).length ? (s.tags || []).map((t) => h('span', { class: 'chip' }, t)) : null]]),
    e ? section('Error', 'detail-error', h('div', { class: 'error-box' },
      h('strong', {}, e.kind ? e.kind + ': ' : ''), e.message,
      e.stack ? foldedText(e.stack, 'stack') : null,
      e.details !== undefined ? foldedText(jsonText(e.details)) : null)) : null,
    a.kind === 'model' ? section('Model', 'detail-model', kv([
      ['model', a.model], ['provider', a.provider], ['response model', a.response_model],
      ['response id', a.response_id], ['finish reason', a.finish_reason],
      ['streaming', a.streaming === undefined ? null : String(a.streaming)],
      ['first token', fmtTime(a.completion_start_time)]]),
    a.parameters !== undefined ? [h('h4', {}, 'parameters'), foldedText(jsonText(a.parameters))] : null,
    usageTable(a.usage)) : null,
    a.kind === 'tool' ? section('Tool', 'detail-tool', kv([['tool', a.tool_id], ['type', a.tool_type],
      ['MCP server', a.mcp_server], ['success', a.success === undefined ? null : String(a.success)],
      ['description', a.description]])) : null,
    a.kind === 'agent' ? section('Agent', 'detail-agent', kv([['agent', a.agent_id], ['max steps', a.max_steps],
      ['tools', (a.available_tools || []).join(', ')]]), a.instructions ? foldedText(a.instructions) : null) : null,
    a.kind === 'workflow' ? section('Workflow', 'detail-workflow', kv([['step', a.step_id], ['status', a.status],
      ['iteration', a.iteration], ['condition', a.condition_result === undefined ? null : String(a.condition_result)]])) : null,
    s.input !== undefined ? section('Input', 'detail-input', valueView(s.input)) : null,
    s.output !== undefined ? section('Output', 'detail-output', valueView(s.output)) : null,
    Object.keys(s.metadata || {}).length ? section('Metadata', 'detail-metadata', foldedText(jsonText(s.metadata))) : null,
    section('Scores and feedback', 'detail-scores', recordList(d.scores), recordList(d.feedback, 'feedback')),
    d.logs && d.logs.length ? section('Logs', 'detail-logs', h('ul', { class: 'records' }, d.logs.map((l) =>
      h('li', {}, h('span', { class: 'time' }, fmtTime(l.timestamp)), ' ', h('span', { class: 'badge lvl-' + l.level }, l.level), ' ', l.message)))) : null);
}

/** The time axis over the waterfall: four ticks. */
function axis(total) {
  const el = h('div', { class: 'axis' });
  for (let i = 0; i <= 3; i++) {
    const tick = h('span', { class: 'tick' }, i ? fmtMs((total * i) / 3) : '0');
    tick.style.left = ((i * 100) / 3) + '%';
    add(el, tick);
  }
  return el;
}

function spanRow(r, total, onToggle, onSelect) {
  const toggle = r.children
    ? h('button', { type: 'button', class: 'toggle', 'aria-label': 'fold', 'aria-expanded': 'true', onclick: (e) => { e.stopPropagation(); onToggle(r.span_id); } }, '▾')
    : h('span', { class: 'toggle-space' });
  const label = h('div', { class: 'label' }, toggle, h('span', { class: 'dot ' + family(r.span_type) }),
    h('span', { class: 'name' }, r.name),
    r.placement === 'continued' ? h('span', { class: 'badge', title: 'continued from another process' }, '↪ continued') : null,
    r.placement === 'detached' ? h('span', { class: 'badge', title: 'its parent is not in the store' }, 'detached') : null,
    r.model ? h('span', { class: 'model' }, r.model) : null,
    r.error ? h('span', { class: 'err-mark', title: r.error }, '⚠') : null);
  label.style.paddingLeft = (Math.min(r.depth, 40) * 14 + 4) + 'px';
  const bar = h('div', { class: 'bar ' + family(r.span_type) + (r.duration_ms === null ? ' running' : '') });
  const span = total > 0 ? total : 1;
  const width = r.duration_ms === null ? Math.max(0, total - r.offset_ms) : r.duration_ms;
  bar.style.left = Math.min(100, (r.offset_ms / span) * 100) + '%';
  bar.style.width = `max(2px, ${Math.min(100, (width / span) * 100)}%)`;
  const track = h('div', { class: 'track' }, bar);
  const meta = h('div', { class: 'meta' }, h('span', { class: 'dur' }, r.is_event ? 'event' : fmtMs(r.duration_ms)),
    r.usage ? ' · ' : '', tokens(r.usage));
  return h('div', {
    class: 'row' + (r.status === 'error' ? ' error' : ''), role: 'treeitem', tabindex: '-1',
    'data-span-id': r.span_id, 'data-depth': r.depth, 'aria-level': r.depth + 1,
    onclick: () => onSelect(r.span_id),
  }, label, track, meta);
}

async function showTrace(id, me) {
  let data;
  try {
    data = await api('/api/traces/' + encodeURIComponent(id));
  } catch (e) {
    if (me === view) show(h('h1', {}, 'Trace'), failure(e), link('/', '← all traces'));
    return;
  }
  if (me !== view) return;
  const collapsed = new Set();
  const detail = h('aside', { class: 'detail', 'aria-live': 'polite' });
  const rowsEl = h('div', { class: 'rows', role: 'tree' });
  const header = h('div');
  let rows = [];
  let selected = new URLSearchParams(location.search).get('span');
  let byId = new Map();

  const applyCollapse = () => {
    let hideBelow = Infinity;
    for (const el of rowsEl.children) {
      const depth = Number(el.dataset.depth);
      if (depth <= hideBelow) hideBelow = Infinity;
      el.hidden = depth > hideBelow;
      const isCollapsed = collapsed.has(el.dataset.spanId);
      const t = el.querySelector('.toggle');
      if (t) { t.textContent = isCollapsed ? '▸' : '▾'; t.setAttribute('aria-expanded', String(!isCollapsed)); }
      if (!el.hidden && isCollapsed) hideBelow = depth;
    }
  };
  const onToggle = (spanId) => {
    if (collapsed.has(spanId)) collapsed.delete(spanId); else collapsed.add(spanId);
    applyCollapse();
  };
  const select = async (spanId) => {
    selected = spanId;
    for (const el of rowsEl.querySelectorAll('.row.selected')) el.classList.remove('selected');
    const el = rowsEl.querySelector(`.row[data-span-id="${CSS.escape(spanId)}"]`);
    if (el) { el.classList.add('selected'); el.focus({ preventScroll: true }); }
    const q = new URLSearchParams(location.search);
    q.set('span', spanId);
    history.replaceState(null, '', location.pathname + '?' + q.toString());
    try {
      const d = await api(`/api/traces/${encodeURIComponent(id)}/spans/${encodeURIComponent(spanId)}`);
      if (me !== view || selected !== spanId) return;
      add(clear(detail), spanDetail(d, byId.get(spanId)));
    } catch (e) {
      if (me === view) add(clear(detail), failure(e));
    }
  };
  const draw = (t) => {
    rows = t.spans;
    byId = new Map(rows.map((r) => [r.span_id, r]));
    clear(header);
    const u = t.usage || {};
    add(header,
      h('p', { class: 'crumbs' }, link('/', '← traces'), t.session_id ? [' · ', link(sessionPath(t.session_id), 'session ', t.session_id)] : null),
      h('h1', {}, h('span', { class: 'dot ' + family(rows.length ? rows[0].span_type : '') }), t.name, ' ', statusBadge(t.status)),
      h('p', { class: 'mono muted' }, 'trace ', t.trace_id),
      h('div', { class: 'stats' },
        stat('started', fmtTime(t.start_time)), stat('duration', fmtMs(t.end_time ? t.duration_ms : null)),
        stat('spans', fmtInt(t.span_count)), stat('errors', fmtInt(t.error_count), t.error_count ? 'bad' : null),
        stat('input tokens', fmtInt(u.input_tokens)), stat('cached', fmtInt(u.cached_input_tokens)),
        stat('output tokens', fmtInt(u.output_tokens)), u.cost_usd !== null && u.cost_usd !== undefined ? stat('cost', fmtCost(u.cost_usd)) : null,
        t.user_id ? stat('user', link(listPath({ user_id: t.user_id }), t.user_id)) : null,
        (t.tags || []).length ? stat('tags', t.tags.map((tag) => h('span', { class: 'chip' }, tag))) : null),
      (t.scores.length || t.feedback.length) ? h('div', { class: 'block', id: 'trace-scores' }, h('h3', {}, 'Scores and feedback'),
        recordList(t.scores.filter((s) => !s.span_id)), recordList(t.feedback.filter((f) => !f.span_id), 'feedback'),
        recordList(t.scores.filter((s) => s.span_id), 'on a span'), recordList(t.feedback.filter((f) => f.span_id), 'feedback on a span')) : null);
    const list = rows.map((r) => spanRow(r, t.duration_ms, onToggle, select));
    clear(rowsEl);
    add(rowsEl, list);
    applyCollapse();
    if (!selected || !byId.has(selected)) selected = rows.length ? rows[0].span_id : null;
    if (selected) {
      const el = rowsEl.querySelector(`.row[data-span-id="${CSS.escape(selected)}"]`);
      if (el) el.classList.add('selected');
    }
  };
  const stat = (label, value, cls) => h('div', { class: 'stat' + (cls ? ' ' + cls : '') }, h('span', { class: 'k' }, label), h('span', { class: 'v' }, value));

  draw(data);
  const waterfall = h('div', { class: 'waterfall' },
    h('div', { class: 'wf-head' }, h('div', { class: 'label' }, 'span'), axis(data.duration_ms), h('div', { class: 'meta' }, 'duration · tokens')),
    rowsEl);
  show(header, h('div', { class: 'split' }, waterfall, detail));
  rowsEl.addEventListener('keydown', (e) => {
    const visible = [...rowsEl.children].filter((el) => !el.hidden);
    const at = visible.findIndex((el) => el.dataset.spanId === selected);
    const go = (i) => { if (visible[i]) { e.preventDefault(); select(visible[i].dataset.spanId); } };
    if (e.key === 'ArrowDown') go(at + 1);
    else if (e.key === 'ArrowUp') go(at - 1);
    else if ((e.key === 'ArrowLeft' && !collapsed.has(selected)) || (e.key === 'ArrowRight' && collapsed.has(selected))) {
      if (byId.get(selected) && byId.get(selected).children) { e.preventDefault(); onToggle(selected); }
    }
  });
  if (selected) await select(selected);
  performance.mark('aiobs:trace-ready');
  document.body.dataset.ready = 'trace';
  // A trace still running is redrawn as its spans arrive.
  if (data.status === 'running') {
    startPolling(async () => {
      try {
        const t = await api('/api/traces/' + encodeURIComponent(id));
        if (me !== view) return;
        const axisEl = waterfall.querySelector('.axis');
        axisEl.replaceWith(axis(t.duration_ms));
        draw(t);
        if (t.status !== 'running') stopPolling();
      } catch (e) {
        liveState('offline');
      }
    });
  }
}

// ---------------------------------------------------------------- session view

async function showSession(id, me) {
  const list = h('div', { class: 'session-rows' });
  const head = h('div');
  const earlier = h('div', { class: 'more' });
  let traces = [];
  show(h('p', { class: 'crumbs' }, link('/', '← traces')), head, earlier, list);

  const draw = () => {
    const start = Math.min(...traces.map((t) => new Date(t.start_time).getTime()));
    const end = Math.max(...traces.map((t) => new Date(t.end_time || t.start_time).getTime()));
    const span = Math.max(1, end - start);
    const sum = (f) => traces.reduce((a, t) => a + (f(t) || 0), 0);
    const costs = traces.filter((t) => t.usage && t.usage.cost_usd !== null && t.usage.cost_usd !== undefined);
    clear(head);
    add(head, h('h1', {}, 'Session ', h('span', { class: 'mono' }, id)),
      h('div', { class: 'stats' },
        h('div', { class: 'stat' }, h('span', { class: 'k' }, 'traces'), h('span', { class: 'v' }, fmtInt(traces.length))),
        h('div', { class: 'stat' }, h('span', { class: 'k' }, 'from'), h('span', { class: 'v' }, fmtTime(new Date(start).toISOString()))),
        h('div', { class: 'stat' }, h('span', { class: 'k' }, 'over'), h('span', { class: 'v' }, fmtMs(end - start))),
        h('div', { class: 'stat' }, h('span', { class: 'k' }, 'errors'), h('span', { class: 'v' }, fmtInt(sum((t) => t.error_count)))),
        h('div', { class: 'stat' }, h('span', { class: 'k' }, 'input tokens'), h('span', { class: 'v' }, fmtInt(sum((t) => t.usage.input_tokens)))),
        h('div', { class: 'stat' }, h('span', { class: 'k' }, 'output tokens'), h('span', { class: 'v' }, fmtInt(sum((t) => t.usage.output_tokens)))),
        costs.length ? h('div', { class: 'stat' }, h('span', { class: 'k' }, 'cost'), h('span', { class: 'v' }, fmtCost(sum((t) => t.usage.cost_usd)))) : null));
    clear(list);
    add(list, traces.map((t, i) => {
      const dur = durationMs(t.start_time, t.end_time);
      const bar = h('div', { class: 'bar ' + family(t.span_type) + (t.status === 'error' ? ' bad' : '') });
      bar.style.left = ((new Date(t.start_time) - start) / span) * 100 + '%';
      bar.style.width = `max(2px, ${((dur === null ? end - new Date(t.start_time) : dur) / span) * 100}%)`;
      return h('div', { class: 'srow', 'data-trace-id': t.trace_id },
        h('div', { class: 'label' }, h('span', { class: 'turn' }, '#' + (i + 1)), ' ', link(tracePath(t.trace_id), t.name), ' ', statusBadge(t.status),
          h('div', { class: 'muted small' }, fmtTime(t.start_time), ' · ', fmtMs(dur), ' · ', fmtInt(t.span_count), ' spans · ',
            fmtInt(t.usage.input_tokens), ' → ', fmtInt(t.usage.output_tokens), ' tok', t.usage.cost_usd != null ? ' · ' + fmtCost(t.usage.cost_usd) : '')),
        h('div', { class: 'track' }, bar));
    }));
  };
  const load = async (cursor) => {
    clear(earlier);
    let page;
    try {
      page = await api('/api/sessions/' + encodeURIComponent(id) + (cursor ? '?cursor=' + encodeURIComponent(cursor) : ''));
    } catch (e) {
      if (me === view) add(earlier, failure(e));
      return;
    }
    if (me !== view) return;
    traces = page.traces.concat(traces);
    draw();
    if (page.earlier_cursor) add(earlier, h('button', { type: 'button', onclick: () => load(page.earlier_cursor) }, 'Earlier traces'));
  };
  await load(null);
  document.body.dataset.ready = 'session';
}

// ---------------------------------------------------------------- start

// What the viewer serves, asked for alongside the first view (not before it).
const info = api('/api/info');
info.then((i) => {
  document.getElementById('store').textContent = i.store + ' · read-only';
}, (e) => {
  document.getElementById('store').textContent = 'store unavailable: ' + e.message;
});
route();
