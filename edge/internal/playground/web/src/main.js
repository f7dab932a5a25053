// The CodeExec playground: write code, run it, keep it as a project, share it.

import { call, describe, ApiError } from './api.js';
import { Workspace } from './workspace.js';
import { Projects } from './projects.js';

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const byId = (id) => document.getElementById(id);

const state = {
  me: null, // {userId, email, username}
  languages: [],
  project: null, // the open project {id, name, shareId}
  shared: null, // the shared project on view at /s/:shareId
  running: false,
};

const notice = byId('notice');
function say(text, kind = 'info') {
  notice.textContent = text;
  notice.className = `notice ${kind}`;
  notice.hidden = !text;
}
function fail(err) {
  say(describe(err), 'error');
  if (err instanceof ApiError && err.code === 'invalid_session' && state.me) {
    // The session ended elsewhere (logout, expiry): show the login form again.
    state.me = null;
    setProject(null);
    renderAccount();
  }
}

const workspace = new Workspace({
  parent: $('editor'),
  tabs: byId('tabs'),
  nonce: document.querySelector('meta[name="csp-nonce"]').content,
  onRun: () => run(),
});

const projects = new Projects({
  list: $('projects'),
  onOpen: (id) => openProject(id).catch(fail),
  onChange: (p) => {
    if (state.project && state.project.id === p.id) {
      if (p.deleted) setProject(null);
      else setProject({ ...state.project, name: p.name });
    }
  },
  onError: fail,
});

// --- account ---------------------------------------------------------------------

async function loadMe() {
  try {
    state.me = await call('GET', '/api/me');
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) fail(err);
    state.me = null;
  }
  renderAccount();
  if (state.me) {
    await Promise.all([refreshWallet(), projects.refresh()]);
  }
}

function renderAccount() {
  const in_ = !!state.me;
  byId('auth').hidden = in_;
  byId('account').hidden = !in_;
  byId('who').textContent = in_ ? state.me.username : '';
  byId('projects-hint').hidden = in_;
  document.body.classList.toggle('signed-in', in_);
  if (!in_) {
    $('wallet').textContent = '…';
    projects.clear();
  }
}

async function refreshWallet() {
  if (!state.me) return;
  try {
    const w = await call('GET', '/api/wallet');
    $('wallet').textContent = `$${w.balance}`;
    $('wallet').title = `${w.balanceMicros} micro-dollars; a run costs $${(w.priceMicros / 1e6).toFixed(2)}`;
  } catch (err) {
    fail(err);
  }
}

async function login() {
  const email = $('email').value.trim();
  const password = $('password').value;
  await call('POST', '/api/login', { email, password });
  $('password').value = '';
  await loadMe();
}

byId('auth').addEventListener('submit', (e) => {
  e.preventDefault();
  say('');
  login().catch(fail);
});

$('register').addEventListener('click', async () => {
  say('');
  try {
    const r = await call('POST', '/api/register', {
      email: $('email').value.trim(), username: $('username').value.trim(), password: $('password').value,
    });
    await login();
    say(`Welcome! Your API key, shown this once (for curl and the CLI): ${r.apiKey}`, 'info');
  } catch (err) {
    fail(err);
  }
});

$('logout').addEventListener('click', async () => {
  try {
    await call('POST', '/api/logout');
  } catch (err) {
    fail(err);
  }
  state.me = null;
  setProject(null);
  renderAccount();
});

// --- languages -----------------------------------------------------------------------

async function loadLanguages() {
  state.languages = await call('GET', '/api/v1/languages');
  const select = $('language');
  const current = select.value;
  select.replaceChildren(...state.languages.map((l) => {
    const o = document.createElement('option');
    o.value = l.language;
    o.textContent = `${l.language} ${l.version}${l.available ? '' : ' (no runner now)'}`;
    o.dataset.available = String(l.available);
    return o;
  }));
  if (current) select.value = current;
}

$('language').addEventListener('change', () => {
  workspace.setLanguage($('language').value);
});

// --- running -------------------------------------------------------------------------

// args are the lines of the args field; a final newline adds no empty argument.
function args() {
  const text = $('args').value;
  if (text === '') return [];
  return text.replace(/\n$/, '').split('\n');
}

function showResult(r) {
  const status = $('status');
  let text = r.runTimeStatus;
  if (r.exitCode !== null && r.exitCode !== undefined && r.runTimeStatus !== 'compile_error') text += ` · exit ${r.exitCode}`;
  if (r.errorMessage) text += ` · ${r.errorMessage}`;
  status.textContent = text;
  status.className = `status ${r.runTimeStatus === 'succeeded' ? 'ok' : 'bad'}`;
  const price = `$${(r.priceMicros / 1e6).toFixed(2)}`;
  $('usage').textContent = r.runTimeStatus === 'compile_error'
    ? `did not compile, so it did not run · ${price}`
    : `${r.wallTimeMs} ms wall · ${r.cpuTimeMs} ms CPU · ${r.memoryUsage} memory · ${price}`;
  $('stdout').textContent = r.stdout + (r.truncated ? '\n[output cut at its limit]' : '');
  let stderr = r.stderr;
  if (r.compileOutput) stderr = r.compileOutput + (stderr ? `\n${stderr}` : '');
  $('stderr').textContent = stderr;
}

async function run() {
  if (state.running) return;
  const language = $('language').value;
  const files = workspace.snapshot();
  const body = { language, stdin: $('stdin').value, args: args() };
  if (state.project) body.projectId = state.project.id;
  let path = '/api/v1/execute';
  if (files.length === 1) {
    body.code = files[0].code;
  } else {
    path = '/api/v2/execute';
    body.files = files;
  }
  state.running = true;
  $('run').disabled = true;
  $('status').textContent = 'running…';
  $('status').className = 'status';
  $('usage').textContent = '';
  say('');
  try {
    const a = await call('POST', path, body);
    showResult(a.result);
  } catch (err) {
    $('status').textContent = err instanceof ApiError ? `refused: ${err.status} ${err.code}` : 'failed';
    $('status').className = 'status bad';
    $('stdout').textContent = '';
    $('stderr').textContent = '';
    fail(err);
  } finally {
    state.running = false;
    $('run').disabled = false;
    await refreshWallet();
  }
}

$('run').addEventListener('click', () => run());
document.addEventListener('keydown', (e) => {
  // The editor handles its own Ctrl/Cmd+Enter; this covers stdin, args and the rest.
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !e.defaultPrevented) {
    e.preventDefault();
    run();
  }
});

// --- files ---------------------------------------------------------------------------

function fileAction(f) {
  try {
    f();
    say('');
  } catch (err) {
    say(err.message, 'error');
  }
}
byId('add-file').addEventListener('click', () => fileAction(() => {
  const name = byId('new-file').value.trim();
  if (!name) throw new Error('type a file name first, e.g. helper.py');
  workspace.addFile(name);
  byId('new-file').value = '';
}));
byId('new-file').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.ctrlKey && !e.metaKey) byId('add-file').click();
});
byId('remove-file').addEventListener('click', () => fileAction(() => workspace.removeActive()));
byId('entry-file').addEventListener('click', () => fileAction(() => workspace.makeActiveEntry()));

// --- projects ------------------------------------------------------------------------

function setProject(p) {
  state.project = p;
  $('project-name').value = p ? p.name : '';
  showShareLink(p && p.shareId);
}

function showShareLink(shareId) {
  const a = $('share-link');
  a.hidden = !shareId;
  a.href = shareId ? `/s/${shareId}` : '';
  a.textContent = shareId ? new URL(`/s/${shareId}`, location.href).href : '';
}

async function openProject(id) {
  const p = await call('GET', `/api/projects/${encodeURIComponent(id)}`);
  $('language').value = p.language;
  workspace.load(p.language, p.files || []);
  setProject({ id: p.id, name: p.name, shareId: p.shareId || '' });
  say(`Opened ${p.name}.`);
}

async function save(asNew) {
  if (!state.me) throw new ApiError(401, 'missing_credentials', '', 0, '');
  const name = $('project-name').value.trim() || 'untitled';
  const body = { name, language: $('language').value, files: workspace.snapshot() };
  const p = state.project && !asNew
    ? await call('PUT', `/api/projects/${encodeURIComponent(state.project.id)}`, body)
    : await call('POST', '/api/projects', body);
  setProject({ id: p.id, name: p.name, shareId: p.shareId || '' });
  await projects.refresh();
  say(`Saved ${p.name}.`);
}

$('save').addEventListener('click', () => save(false).catch(fail));
$('save-new').addEventListener('click', () => save(true).catch(fail));

$('share').addEventListener('click', async () => {
  try {
    await save(false); // what is shared is what the editor shows
    const r = await call('POST', `/api/projects/${encodeURIComponent(state.project.id)}/share`);
    state.project.shareId = r.shareId;
    showShareLink(r.shareId);
    say(`Saved and shared ${state.project.name}: anyone with the link sees a read-only view and, once logged in, can fork it.`);
  } catch (err) {
    fail(err);
  }
});

// --- the shared view -----------------------------------------------------------------

async function loadShared(shareId) {
  document.body.classList.add('shared-view');
  try {
    const s = await call('GET', `/api/shared/${encodeURIComponent(shareId)}`);
    state.shared = s;
    byId('shared-name').textContent = s.name;
    byId('shared-owner').textContent = s.owner;
    byId('shared-language').textContent = s.language;
    byId('shared-banner').hidden = false;
    $('language').value = s.language;
    $('language').disabled = true;
    workspace.load(s.language, s.files || [], true);
    document.title = `${s.name} · CodeExec playground`;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      say('This shared project does not exist, or its owner stopped sharing it.', 'error');
    } else {
      fail(err);
    }
  }
}

$('fork').addEventListener('click', async () => {
  if (!state.me) {
    say('Log in or register above to fork this project into your own.', 'error');
    return;
  }
  try {
    const p = await call('POST', `/api/shared/${encodeURIComponent(state.shared.shareId)}/fork`);
    location.assign(`/?project=${encodeURIComponent(p.id)}`);
  } catch (err) {
    fail(err);
  }
});

// --- start ---------------------------------------------------------------------------

window.codeexec = {
  setCode: (text) => workspace.setCode(text),
  getCode: () => workspace.getCode(),
};

async function start() {
  try {
    await loadLanguages();
  } catch (err) {
    fail(err);
  }
  const sharePath = location.pathname.match(/^\/s\/([^/]+)$/);
  if (sharePath) {
    await loadShared(decodeURIComponent(sharePath[1]));
  } else {
    const first = state.languages.find((l) => l.language === 'python') || state.languages[0];
    const language = first ? first.language : 'python';
    $('language').value = language;
    workspace.load(language, []);
  }
  await loadMe();
  const open = new URLSearchParams(location.search).get('project');
  if (open && state.me && !sharePath) await openProject(open).catch(fail);
  setInterval(() => loadLanguages().catch(() => {}), 15000);
  document.body.dataset.ready = 'true';
}

start();
