// The chat page: sessions sidebar, the open chat's turns, the composer and the source panel.
import * as api from './api.js';
import { ShareDialog } from './share.js';
import { SessionList, SessionSearch, UNTITLED } from './sidebar.js';
import { SourcePanel } from './sources.js';
import { TurnView } from './turn.js';
import { confirmAction, el, errorText, plural, relativeTime } from './ui.js';

const $ = (id) => document.getElementById(id);
const layout = $('chat-layout');
const transcript = $('transcript');
const turnsNode = $('turns');
const emptyState = $('empty-state');
const picker = $('index-picker');
const composer = $('composer');
const promptBox = $('prompt');
const sendButton = $('send');
const stopButton = $('stop');
const status = $('turn-status');
const DELTAS = new Set(['text_delta', 'thinking_delta']);

const state = {
  session: null, // the open session, null for a new chat
  indexes: new Map(), // id -> index, with sync state when known
  selected: new Set(), // indexes picked for a new chat
  pickedByUser: false,
  running: null, // { sessionId, controller } while a turn's stream is read
  opening: 0, // the latest openSession call wins
  found: null, // { sessionId, terms } of the search result being opened
};

const sources = new SourcePanel({ layout, indexById: (id) => state.indexes.get(id) });
const sidebar = new SessionList({
  list: $('session-list'),
  sentinel: $('sessions-more'),
  note: $('sessions-note'),
  scroller: $('sidebar'),
  onOpen: (id) => {
    setSidebarOpen(false);
    navigate(id);
  },
});
new SessionSearch({
  input: $('session-search'),
  area: $('search-area'),
  list: $('search-results'),
  note: $('search-note'),
  sentinel: $('search-more'),
  scroller: $('sidebar'),
  hide: [$('sessions-title'), $('session-list'), $('sessions-note'), $('sessions-more')],
  onOpen: (id, eventIndex, terms) => {
    setSidebarOpen(false);
    state.found = { sessionId: id, terms };
    navigate(id, eventIndex);
  },
});

// Navigation: /?session=<id> is an open chat, / a new one; &event=<n> opens it at the turn
// holding its n-th event (a search result).

function navigate(sessionId, eventIndex = null) {
  let target = sessionId ? `/?session=${encodeURIComponent(sessionId)}` : '/';
  if (sessionId && eventIndex !== null) target += `&event=${eventIndex}`;
  if (location.pathname + location.search !== target) history.pushState({}, '', target);
  route();
}

function route() {
  const params = new URLSearchParams(location.search);
  const sessionId = params.get('session');
  const event = Number.parseInt(params.get('event') ?? '', 10);
  if (sessionId) openSession(sessionId, Number.isNaN(event) ? null : event);
  else newChat();
}

function leaveRunningStream() {
  // Only stops reading: the turn goes on (continue_on_disconnect) and can be followed later.
  if (state.running) state.running.controller.abort();
}

function newChat() {
  state.opening++;
  leaveRunningStream();
  if (sources.isOpen) sources.close();
  state.session = null;
  sidebar.setCurrent(null);
  turnsNode.replaceChildren();
  emptyState.hidden = false;
  renderHead();
  renderPicker();
  updateComposer();
  promptBox.focus();
}

async function openSession(sessionId, eventIndex = null) {
  const ticket = ++state.opening;
  leaveRunningStream();
  if (sources.isOpen) sources.close();
  emptyState.hidden = true;
  turnsNode.replaceChildren();
  sidebar.setCurrent(sessionId);
  let session;
  try {
    session = await api.sessions.get(sessionId);
  } catch (error) {
    if (ticket !== state.opening) return;
    if (error.status === 404) {
      announce('That chat no longer exists.');
      navigate(null);
    } else {
      turnsNode.append(el('div', { class: 'turn-error', role: 'alert', text: `Could not open the chat: ${errorText(error)}` }));
    }
    return;
  }
  await indexesListed; // tool lines name the indexes
  if (ticket !== state.opening) return;
  state.session = session;
  renderHead();
  let view = null;
  let target = null;
  for (const [index, event] of (session.events || []).entries()) {
    if (event.type === 'user_input') {
      view = turnView();
      turnsNode.append(view.node);
    }
    if (view) view.apply(event);
    if (index === eventIndex) target = view;
  }
  const terms = state.found?.sessionId === sessionId ? state.found.terms : [];
  state.found = null;
  if (target) await showTurn(target, terms);
  else scrollToBottom(true);
  if (ticket !== state.opening) return;
  updateComposer();
  if (view && !view.finished) {
    await runStream(view, (onEvent, signal) =>
      api.followTurn(sessionId, session.events.length, onEvent, signal));
  }
}

function turnView() {
  const ids = state.session?.index_ids || [...state.selected];
  return new TurnView({
    indexNames: ids.map((id) => state.indexes.get(id)?.name || id),
    onSource: (source, button) => sources.show(source, button),
    onFirstToken: () => performance.mark('indexchat:first-token'),
  });
}

// Sending, streaming, stopping

async function send() {
  const prompt = promptBox.value;
  if (!prompt.trim() || state.running) return;
  performance.mark('indexchat:send');
  let session = state.session;
  const created = !session;
  if (created) {
    const indexIds = [...state.selected];
    if (!indexIds.length) return;
    try {
      session = await api.sessions.create(indexIds);
    } catch (error) {
      announce(`Could not start the chat: ${errorText(error)}`);
      return;
    }
    state.session = session;
  }
  const view = turnView();
  view.apply({ type: 'user_input', content: prompt });
  const body = {
    index_ids: session.index_ids || [...state.selected],
    prompt,
    continue_on_disconnect: true,
  };
  // The request goes out first; the page updates while the server starts the turn.
  const streaming = runStream(view, (onEvent, signal) =>
    api.streamTurn(session.session_id, body, onEvent, signal));
  promptBox.value = '';
  autosize();
  emptyState.hidden = true;
  turnsNode.append(view.node);
  scrollToBottom(true);
  if (created) {
    history.pushState({}, '', `/?session=${encodeURIComponent(session.session_id)}`);
    sidebar.upsert(session);
    sidebar.setCurrent(session.session_id);
    renderHead();
  }
  await streaming;
}

async function runStream(view, start) {
  const sessionId = state.session.session_id;
  const controller = new AbortController();
  state.running = { sessionId, controller };
  let sawText = false;
  const streamed = start((event) => {
    if (!sawText && (event.type === 'text_delta' || event.type === 'text')) {
      sawText = true;
      performance.mark('indexchat:first-text-event');
    }
    view.apply(event);
    scrollToBottom();
  }, controller.signal);
  setRunning(true);
  try {
    await streamed;
    if (!view.finished) view.interrupt('The answer stopped before it was complete. Reload the page to see the rest.');
  } catch (error) {
    if (error.name === 'AbortError') return; // another chat was opened; the turn goes on
    view.interrupt(error instanceof api.ApiError ? errorText(error) : 'The connection to the server was lost. Reload the page to see the rest of the answer.');
  } finally {
    if (state.running && state.running.controller === controller) {
      state.running = null;
      setRunning(false);
      if (state.session && state.session.session_id === sessionId) refreshSession(sessionId);
    }
  }
}

async function refreshSession(sessionId) {
  try {
    const summary = await api.sessions.summary(sessionId);
    sidebar.upsert(summary);
    if (state.session && state.session.session_id === sessionId) {
      state.session = { ...state.session, ...summary };
      renderHead();
    }
  } catch {
    // the chat was deleted meanwhile: nothing to refresh
  }
}

async function stop() {
  if (!state.running) return;
  stopButton.disabled = true;
  announce('Stopping…');
  try {
    await api.sessions.cancel(state.running.sessionId);
  } catch (error) {
    if (error.status !== 409) announce(`Could not stop: ${errorText(error)}`); // 409: it had ended
  }
}

function setRunning(running) {
  const hadFocus = document.activeElement === stopButton || document.activeElement === sendButton;
  sendButton.hidden = running;
  stopButton.hidden = !running;
  stopButton.disabled = false;
  transcript.setAttribute('aria-busy', running ? 'true' : 'false');
  announce(running ? 'Answering…' : 'Answer finished.');
  if (hadFocus) (running ? stopButton : promptBox).focus();
  updateComposer();
}

function announce(text) {
  status.textContent = text;
}

// The head of the chat: its title, its (locked) indexes, export and delete.

function renderHead() {
  const session = state.session;
  const title = session ? session.generated_title || UNTITLED : 'New chat';
  $('chat-title').textContent = title;
  document.title = `${title} · indexchat`;
  $('chat-actions').hidden = !session;
  const chips = $('chat-indexes');
  chips.replaceChildren();
  if (session && session.index_ids) {
    for (const id of session.index_ids) {
      chips.append(el('span', { class: 'chip', title: 'This chat always searches these indexes' },
        lockIcon(), document.createTextNode(state.indexes.get(id)?.name || id)));
    }
  }
  if (session) {
    $('export-md').href = api.sessions.exportUrl(session.session_id, 'md');
    $('export-json').href = api.sessions.exportUrl(session.session_id, 'json');
  }
}

function lockIcon() {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('width', '11');
  svg.setAttribute('height', '11');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', 'M4.5 7V5a3.5 3.5 0 0 1 7 0v2M3.5 7h9v7h-9z');
  path.setAttribute('fill', 'none');
  path.setAttribute('stroke', 'currentColor');
  path.setAttribute('stroke-width', '1.6');
  svg.append(path);
  return svg;
}

// The index picker of a new chat

// Resolves once the indexes are listed; their sync state follows.
async function loadIndexes() {
  let list;
  try {
    list = await api.indexes.list();
  } catch (error) {
    picker.replaceChildren(el('p', { class: 'muted', text: `Could not load indexes: ${errorText(error)}` }));
    return;
  }
  state.indexes = new Map(list.map((index) => [index.id, index]));
  renderPicker();
  renderHead();
  Promise.all(list.slice(0, 50).map((index) => api.indexes.get(index.id, { progress: true }).catch(() => index)))
    .then((detailed) => {
      for (const index of detailed) state.indexes.set(index.id, index);
      renderPicker();
    });
}

function syncState(index) {
  if (index.sync_in_progress) {
    const progress = index.metadata?.sync_progress;
    return progress && progress.files_total ? `Syncing · ${progress.files_done} of ${progress.files_total} files` : 'Syncing…';
  }
  if (!index.last_synced_at) return 'Not synced yet';
  const files = index.metadata?.files_parsed ?? 0;
  return `${plural(files, 'file')} · synced ${relativeTime(index.last_synced_at)}`;
}

function renderPicker() {
  if (state.session) return;
  const list = [...state.indexes.values()];
  if (!state.pickedByUser) {
    state.selected = new Set(list.filter((index) => index.last_synced_at).map((index) => index.id));
  }
  const legend = el('legend', { class: 'visually-hidden', text: 'Indexes to search' });
  if (!list.length) {
    picker.replaceChildren(legend,
      el('p', { class: 'muted', text: 'There are no indexes yet. Create one and drop your files on it to chat with them.' }),
      el('p', {}, el('a', { class: 'button primary', href: '/indexes', text: 'Create an index' })));
    updateComposer();
    return;
  }
  const options = list.map((index) => {
    const box = el('input', { type: 'checkbox', name: 'index', value: index.id, checked: state.selected.has(index.id) });
    box.addEventListener('change', () => {
      state.pickedByUser = true;
      if (box.checked) state.selected.add(index.id);
      else state.selected.delete(index.id);
      updateComposer();
    });
    return el('label', { class: 'index-option' }, box,
      el('span', {}, el('span', { class: 'name', text: index.name }), el('span', { class: 'state', text: syncState(index) })));
  });
  picker.replaceChildren(legend, ...options);
  updateComposer();
}

// The composer

function updateComposer() {
  const canPick = state.session || state.selected.size > 0;
  sendButton.disabled = Boolean(state.running) || !promptBox.value.trim() || !canPick;
  sendButton.title = canPick ? 'Send (Enter)' : 'Choose at least one index first';
}

function autosize() {
  promptBox.style.height = 'auto';
  promptBox.style.height = `${Math.min(promptBox.scrollHeight, window.innerHeight * 0.4)}px`;
}

// A turn a search result points at, once rendered: its matches marked, the first one (else the
// turn's start) scrolled into view, and the turn flashed once.
async function showTurn(view, terms) {
  await view.settle();
  const first = markTerms(view.node, terms);
  if (first) first.scrollIntoView({ block: 'center' });
  else view.node.scrollIntoView({ block: 'start' });
  view.node.classList.add('search-hit');
}

function markTerms(root, terms) {
  const words = [...new Set(terms.map((t) => t.trim()).filter(Boolean))];
  if (!words.length) return null;
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const pattern = new RegExp(`(${escaped.join('|')})`, 'i');
  const whole = new RegExp(`^(${escaped.join('|')})$`, 'i');
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  let first = null;
  for (const node of nodes) {
    const parts = node.data.split(pattern);
    if (parts.length === 1) continue;
    const marked = parts.filter(Boolean).map((part) =>
      whole.test(part) ? el('mark', { text: part }) : document.createTextNode(part));
    first = first || marked.find((part) => part.nodeName === 'MARK');
    node.replaceWith(...marked);
  }
  return first;
}

function scrollToBottom(force = false) {
  const gap = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight;
  if (force || gap < 120) transcript.scrollTop = transcript.scrollHeight;
}

function setSidebarOpen(open) {
  layout.classList.toggle('sidebar-open', open);
  $('sidebar-toggle').setAttribute('aria-expanded', String(open));
  $('sidebar-backdrop').hidden = !open;
}

composer.addEventListener('submit', (event) => {
  event.preventDefault();
  if (!sendButton.disabled) send();
});
promptBox.addEventListener('input', () => {
  autosize();
  updateComposer();
});
promptBox.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    composer.requestSubmit();
  }
});
stopButton.addEventListener('click', stop);
document.addEventListener('keydown', (event) => {
  if (event.key !== 'Escape' || event.target.closest('dialog')) return;
  const menu = document.querySelector('details.menu[open]');
  if (state.running) {
    event.preventDefault();
    stop();
  } else if (menu) {
    menu.open = false;
    menu.querySelector('summary').focus();
  } else if (sources.isOpen) {
    sources.close();
  } else if (layout.classList.contains('sidebar-open')) {
    setSidebarOpen(false);
  }
});
document.addEventListener('click', (event) => {
  // An open menu closes on a click outside it, or once one of its items is chosen.
  const menu = document.querySelector('details.menu[open]');
  if (menu && (!menu.contains(event.target) || event.target.closest('.menu-items a'))) menu.open = false;
});
$('new-chat').addEventListener('click', () => {
  setSidebarOpen(false);
  navigate(null);
});
$('sidebar-toggle').addEventListener('click', () => setSidebarOpen(!layout.classList.contains('sidebar-open')));
$('sidebar-backdrop').addEventListener('click', () => setSidebarOpen(false));
$('delete-chat').addEventListener('click', async () => {
  const session = state.session;
  if (!session) return;
  const confirmed = await confirmAction({
    title: 'Delete this chat?',
    text: `“${session.generated_title || UNTITLED}” and its history will be deleted. This cannot be undone.`,
  });
  if (!confirmed) return;
  try {
    await api.sessions.remove(session.session_id);
    sidebar.remove(session.session_id);
    navigate(null);
  } catch (error) {
    announce(`Could not delete the chat: ${errorText(error)}`);
  }
});
const shareDialog = new ShareDialog();
$('share-chat').addEventListener('click', () => {
  if (state.session) shareDialog.open(state.session);
});
window.addEventListener('popstate', route);

const indexesListed = loadIndexes();
sidebar.loadMore();
route();
