// A shared chat, for whoever holds its link: the transcript, live (later turns appear), with
// its sources; on a `query` link, questions go to the viewer's own copy (a fork).
import * as api from './api.js';
import { SourcePanel } from './sources.js';
import { TurnView } from './turn.js';
import { el, errorText } from './ui.js';

const $ = (id) => document.getElementById(id);
const token = decodeURIComponent(location.pathname.replace(/^\/s\//, ''));
const layout = $('chat-layout');
const transcript = $('transcript');
const turnsNode = $('turns');
const note = $('shared-note');
const composer = $('composer');
const promptBox = $('prompt');
const sendButton = $('send');
const DELTAS = new Set(['text_delta', 'thinking_delta']);
const WATCH_SECONDS = 2;

const state = {
  count: 0, // stored events of the session on screen
  view: null, // the last turn on screen
  forked: false, // the viewer has asked: the screen shows the viewer's copy
  running: false,
  watching: null, // AbortController of the shared session's follow loop
};

const sources = new SourcePanel({
  layout,
  indexById: () => null,
  screenshot: (fileId, page) => api.shared.screenshot(token, fileId, page),
  originalFile: null, // the link opens the chat, not the project's files
});

function turnView() {
  return new TurnView({ onSource: (source, button) => sources.show(source, button) });
}

function apply(event) {
  if (event.type === 'user_input') {
    state.view = turnView();
    turnsNode.append(state.view.node);
  }
  if (state.view) state.view.apply(event);
  if (!DELTAS.has(event.type)) state.count++;
  scrollToBottom();
}

function render(events) {
  turnsNode.replaceChildren();
  state.view = null;
  state.count = 0;
  for (const event of events) apply(event);
  scrollToBottom(true);
}

function describe() {
  note.textContent = state.forked
    ? 'Your own copy of this shared chat: only this browser sees it.'
    : 'New turns appear here as they happen.';
}

function gone() {
  if (state.watching) state.watching.abort();
  $('main').replaceChildren(el('div', { class: 'shared-gone', role: 'alert' },
    el('h1', { text: 'This link does not work any more' }),
    el('p', { class: 'muted', text: 'The chat is no longer shared, or the link has expired.' })));
}

async function load() {
  let data;
  try {
    data = await api.shared.get(token);
  } catch (error) {
    if (error.status === 404) gone();
    else note.textContent = `Could not load the chat: ${errorText(error)}`;
    return;
  }
  const title = data.session.generated_title || 'Untitled chat';
  $('chat-title').textContent = title;
  document.title = `${title} · indexchat`;
  state.forked = Boolean(data.fork);
  render((data.fork || data.session).events);
  // Answers render once the Markdown renderer is here; then the newest turn is in view.
  import('./markdown.js').then(() => requestAnimationFrame(() => scrollToBottom(true)));
  describe();
  updateComposer();
  if (!state.forked) watch();
  else if (state.view && !state.view.finished) {
    await follow({ fork: true }).catch(() => {});
  }
}

async function follow({ fork = false, signal } = {}) {
  await api.shared.follow(token, state.count, apply, signal, { fork });
}

// The shared session: its running turn live, then a look for new turns every few seconds.
async function watch() {
  const controller = new AbortController();
  state.watching = controller;
  while (!controller.signal.aborted) {
    try {
      await follow({ signal: controller.signal });
    } catch (error) {
      if (error.name === 'AbortError') return;
      if (error.status === 404) {
        gone();
        return;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, WATCH_SECONDS * 1000));
  }
}

async function send() {
  const prompt = promptBox.value;
  if (!prompt.trim() || state.running) return;
  if (state.watching) state.watching.abort();
  state.running = true;
  updateComposer();
  promptBox.value = '';
  const view = turnView();
  view.apply({ type: 'user_input', content: prompt });
  turnsNode.append(view.node);
  state.view = view;
  scrollToBottom(true);
  try {
    await api.shared.ask(token, prompt, (event) => {
      if (event.type !== 'user_input') view.apply(event);
      scrollToBottom();
    });
    state.forked = true;
    describe();
    if (!view.finished) view.interrupt('The answer stopped before it was complete. Reload the page to see the rest.');
  } catch (error) {
    if (error.status === 404) {
      gone();
      return;
    }
    view.interrupt(error instanceof api.ApiError ? errorText(error) : 'The connection to the server was lost.');
    if (!state.forked) watch();
  } finally {
    state.running = false;
    updateComposer();
  }
}

function updateComposer() {
  if (!sendButton) return;
  sendButton.disabled = state.running || !promptBox.value.trim();
}

function scrollToBottom(force = false) {
  const gap = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight;
  if (force || gap < 120) transcript.scrollTop = transcript.scrollHeight;
}

if (composer) {
  composer.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!sendButton.disabled) send();
  });
  promptBox.addEventListener('input', updateComposer);
  promptBox.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });
}
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && sources.isOpen) sources.close();
});

load();
