// One chat turn on screen, built from its events (live from the stream, or from history) in the
// order they happen: the prompt, thinking, one line per tool call, the answer, then sources.
import { el, plural } from './ui.js';

// The Markdown renderer and sanitizer are most of the page's code: loaded beside the page
// rather than before it can paint. Answers render once they are here.
let renderMarkdown = null;
const markdownLoaded = import('./markdown.js').then((module) => {
  renderMarkdown = module.renderMarkdown;
});

const MAX_SOURCES = 8;
const CANCELLED = /cancel/i;

export class TurnView {
  // `indexNames`: the names of the indexes this turn searches; `onSource(source, button)`.
  constructor({ indexNames = [], onSource, onFirstToken }) {
    this.indexNames = indexNames;
    this.onSource = onSource;
    this.onFirstToken = onFirstToken;
    this.hits = [];
    this.calls = new Map();
    this.texts = [];
    this.streamingText = null;
    this.streamingThought = null;
    this.renderQueued = false;
    this.rendered = false;
    this.finished = false;
    this.promptNode = el('div', { class: 'prompt' });
    this.flow = el('div', { class: 'response' });
    this.node = el('article', { class: 'turn' }, this.promptNode, this.flow);
  }

  apply(event) {
    const handler = HANDLERS[event.type];
    if (handler) handler(this, event);
  }

  // The turn ended without its stop event (the connection dropped).
  interrupt(message) {
    if (this.finished) return;
    this.finishStreaming();
    this.flow.append(el('div', { class: 'turn-error', role: 'alert', text: message }));
  }

  answerText() {
    return this.texts.map((block) => block.text).join('\n\n');
  }

  textBlock() {
    if (!this.streamingText) {
      const node = el('div', { class: 'answer streaming' });
      this.streamingText = { node, text: '' };
      this.texts.push(this.streamingText);
      this.flow.append(node);
    }
    return this.streamingText;
  }

  // Resolves once every answer block is on screen as rendered Markdown.
  async settle() {
    await markdownLoaded;
    this.renderText();
  }

  queueRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.renderText();
    });
  }

  renderText() {
    if (!renderMarkdown) {
      markdownLoaded.then(() => this.renderText());
      return;
    }
    for (const block of this.texts) {
      if (block.shown === block.text) continue;
      renderMarkdown(block.node, block.text);
      block.shown = block.text;
    }
    if (!this.rendered && this.texts.some((block) => block.text)) {
      this.rendered = true;
      if (this.onFirstToken) this.onFirstToken();
    }
  }

  thoughtBlock() {
    if (!this.streamingThought) {
      const text = el('div', { class: 'thinking-text' });
      const node = el('details', { class: 'thinking' }, el('summary', { text: 'Thinking…' }), text);
      this.streamingThought = { node, text };
      this.flow.append(node);
    }
    return this.streamingThought;
  }

  stepsList() {
    const last = this.flow.lastElementChild;
    if (last && last.classList.contains('steps')) return last;
    const list = el('ul', { class: 'steps', 'aria-label': 'Steps' });
    this.flow.append(list);
    return list;
  }

  closeText() {
    if (this.streamingText) this.streamingText.node.classList.remove('streaming');
    this.streamingText = null;
    this.renderText();
  }

  finishStreaming() {
    this.closeText();
    if (this.streamingThought) this.streamingThought.node.querySelector('summary').textContent = 'Thinking';
    this.streamingThought = null;
    for (const call of this.calls.values()) {
      if (call.item.classList.contains('pending')) call.item.classList.replace('pending', 'failed');
    }
  }

  finish(stop) {
    this.finished = true;
    this.finishStreaming();
    const error = stop.error || (stop.is_error ? 'The turn failed.' : null);
    if (error && CANCELLED.test(error)) {
      this.flow.append(el('p', { class: 'turn-note', text: 'Stopped.' }));
    } else if (error) {
      this.flow.append(el('div', { class: 'turn-error', role: 'alert', text: error }));
    }
    if (stop.skipped_index_ids && stop.skipped_index_ids.length) {
      const text = `Not searched (unknown or never synced): ${stop.skipped_index_ids.join(', ')}`;
      this.flow.append(el('p', { class: 'turn-note', text }));
    }
    this.renderSources();
    this.flow.append(el('p', { class: 'usage', text: usageLine(stop.usage || {}) }));
  }

  renderSources() {
    const sources = pickSources(this.hits, this.answerText());
    if (!sources.length) return;
    const list = el('ol');
    sources.forEach((source, i) => {
      const button = el('button', {
        type: 'button', class: 'source-button', 'aria-pressed': 'false',
        'aria-label': `Source ${i + 1}: ${source.file_name}${pagesText(source) ? `, ${pagesText(source)}` : ''}`,
      },
      el('span', { class: 'n', text: `${i + 1}` }),
      el('span', { class: 'file', text: source.file_name }),
      pagesText(source) ? el('span', { class: 'page', text: pagesText(source) }) : null);
      button.addEventListener('click', () => this.onSource(source, button));
      list.append(el('li', {}, button));
    });
    this.flow.append(el('section', { class: 'sources', 'aria-label': 'Sources' }, el('h3', { text: 'Sources' }), list));
  }
}

const HANDLERS = {
  user_input(view, event) {
    view.promptNode.textContent = event.content;
  },
  thinking_delta(view, event) {
    view.thoughtBlock().text.textContent += event.content;
  },
  thinking(view, event) {
    view.thoughtBlock().text.textContent = event.content;
    view.streamingThought.node.querySelector('summary').textContent = 'Thinking';
    view.streamingThought = null;
  },
  tool_call(view, event) {
    view.closeText();
    const item = el('li', { class: 'step pending' });
    item.append(...describeCall(view, event.name, event.arguments || {}, null));
    view.calls.set(event.call_id, { item, name: event.name, args: event.arguments || {} });
    view.stepsList().append(item);
  },
  tool_result(view, event) {
    const result = event.result;
    if (event.name === 'retrieve' && Array.isArray(result)) view.hits.push(...result.filter((h) => h && h.file_name));
    const call = view.calls.get(event.call_id);
    if (!call) return;
    call.item.classList.remove('pending');
    call.item.replaceChildren(...describeCall(view, call.name, call.args, result));
  },
  text_delta(view, event) {
    view.textBlock().text += event.content;
    if (view.rendered) view.queueRender();
    else view.renderText(); // the first words at once, the rest once per frame
  },
  text(view, event) {
    view.textBlock().text = event.content;
    view.closeText();
  },
  stop(view, event) {
    view.finish(event);
  },
};

function quoted(text) {
  return `“${String(text ?? '').slice(0, 200)}”`;
}

function listNames(names) {
  if (!names.length) return 'the indexes';
  if (names.length === 1) return names[0];
  if (names.length === 2) return `${names[0]} and ${names[1]}`;
  return `${names.length} indexes`;
}

// A tool line, pending (result null) or done: text nodes and <em>, never markup.
function describeCall(view, name, args, result) {
  const done = result !== null && result !== undefined;
  const em = (text) => el('em', { text: String(text ?? '') });
  const count = (what, one, many) => (done ? ` — ${plural(what, one, many)}` : '…');
  switch (name) {
    case 'retrieve': {
      const fileName = args.file_id && view.hits.find((h) => h.file_id === args.file_id)?.file_name;
      const where = fileName || listNames(view.indexNames);
      const n = Array.isArray(result) ? result.length : 0;
      return [done ? 'Searched ' : 'Searching ', em(where), ` for ${quoted(args.query)}${count(n, 'passage')}`];
    }
    case 'find_files': {
      const n = Array.isArray(result) ? result.length : 0;
      return [`${done ? 'Looked' : 'Looking'} for files named ${quoted(args.name)}${count(n, 'file')}`];
    }
    case 'grep_file': {
      const n = Array.isArray(result?.matches) ? result.matches.length : 0;
      return [done ? 'Searched ' : 'Searching ', em(result?.file_name || 'a file'), ` for ${quoted(args.pattern)}${count(n, 'match', 'matches')}`];
    }
    case 'read_file': {
      const chars = typeof result?.content === 'string' ? result.content.length : 0;
      return [done ? 'Read ' : 'Reading ', em(result?.file_name || 'a file'), done ? ` — ${plural(chars, 'character')}` : '…'];
    }
    default:
      return [done ? `Used ${name}` : `Using ${name}…`];
  }
}

function pagesText(source) {
  const start = source.page_start;
  const end = source.page_end;
  if (typeof start !== 'number') return '';
  return typeof end === 'number' && end !== start ? `pp. ${start}–${end}` : `p. ${start}`;
}

// The passages the answer drew on, best first, one per file and page. When the answer names
// some of the files, only those.
export function pickSources(hits, answer) {
  const seen = new Set();
  const unique = [];
  for (const hit of hits) {
    const key = `${hit.file_id}:${hit.page_start ?? `c${hit.chunk_index}`}`;
    if (seen.has(key)) continue;
    seen.add(key);
    unique.push(hit);
  }
  const cited = unique.filter((hit) => answer.includes(hit.file_name));
  return (cited.length ? cited : unique).slice(0, MAX_SOURCES);
}

export function pageLabel(source) {
  const { page_start: start, page_end: end } = source;
  if (typeof start !== 'number') return `Passage ${(source.chunk_index ?? 0) + 1}`;
  return typeof end === 'number' && end !== start ? `Pages ${start}–${end}` : `Page ${start}`;
}

function usageLine(usage) {
  const parts = [`${((usage.duration_ms || 0) / 1000).toFixed(1)} s`];
  if (usage.turns) parts.push(plural(usage.turns, 'model call'));
  if (usage.total_input_tokens != null) {
    parts.push(`${usage.total_input_tokens.toLocaleString()} in / ${(usage.total_output_tokens || 0).toLocaleString()} out tokens`);
  }
  return parts.join(' · ');
}
