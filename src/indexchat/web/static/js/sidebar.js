// The sessions sidebar: newest first, paged with the API's next_page_token as it scrolls.
import { sessions as api } from './api.js';
import { absoluteTime, el, errorText, relativeTime } from './ui.js';

const PAGE_SIZE = 50;
export const UNTITLED = 'New chat';

export class SessionList {
  constructor({ list, sentinel, note, scroller, onOpen }) {
    this.list = list;
    this.note = note;
    this.onOpen = onOpen;
    this.items = new Map();
    this.pageToken = undefined;
    this.done = false;
    this.loading = null;
    this.currentId = null;
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) this.loadMore();
    }, { root: scroller, rootMargin: '0px 0px 400px 0px' });
    this.observer.observe(sentinel);
    setInterval(() => this.refreshTimes(), 60_000);
  }

  // The next page; resolves when it is on screen. Pages are timed for bench/bench_page.py:
  // "indexchat:sidebar-page" from request to rendered, "indexchat:sidebar-render" the DOM part.
  loadMore() {
    if (this.done || this.loading) return this.loading;
    this.loading = (async () => {
      const started = performance.now();
      try {
        const page = await api.list(this.pageToken, PAGE_SIZE);
        const fetched = performance.now();
        const group = el('div', { class: 'session-page' });
        for (const session of page.items) {
          if (!this.items.has(session.session_id)) group.append(this.item(session));
        }
        this.list.append(group);
        this.pageToken = page.next_page_token || undefined;
        this.done = !this.pageToken;
        this.note.textContent = this.items.size ? '' : 'No chats yet.';
        void this.list.offsetHeight; // lay out now (the next frame would anyway): it is measured
        const rendered = performance.now();
        performance.measure('indexchat:sidebar-page', { start: started, end: rendered });
        performance.measure('indexchat:sidebar-render', { start: fetched, end: rendered });
      } catch (error) {
        this.note.textContent = `Could not load chats: ${errorText(error)}`;
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  item(session) {
    const link = el('a', { href: `/?session=${encodeURIComponent(session.session_id)}` },
      el('span', { class: 'title' }),
      el('time', { class: 'when' }));
    link.addEventListener('click', (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      this.onOpen(session.session_id);
    });
    const node = el('div', { role: 'listitem' }, link);
    this.items.set(session.session_id, { node, link, session });
    this.fill(this.items.get(session.session_id));
    return node;
  }

  fill(entry) {
    const { link, session } = entry;
    link.querySelector('.title').textContent = session.generated_title || UNTITLED;
    const when = link.querySelector('.when');
    when.dateTime = session.last_updated_at;
    when.title = absoluteTime(session.last_updated_at);
    when.textContent = relativeTime(session.last_updated_at);
    if (session.session_id === this.currentId) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }

  // A session that was created or changed: it moves to the top (the API's order).
  upsert(session) {
    let entry = this.items.get(session.session_id);
    if (!entry) {
      this.item(session);
      entry = this.items.get(session.session_id);
    }
    entry.session = session;
    this.fill(entry);
    let first = this.list.firstElementChild;
    if (!first) {
      first = el('div', { class: 'session-page' });
      this.list.append(first);
    }
    first.prepend(entry.node);
    this.note.textContent = '';
  }

  remove(sessionId) {
    const entry = this.items.get(sessionId);
    if (!entry) return;
    entry.node.remove();
    this.items.delete(sessionId);
    if (!this.items.size && this.done) this.note.textContent = 'No chats yet.';
  }

  setCurrent(sessionId) {
    this.currentId = sessionId;
    for (const entry of this.items.values()) this.fill(entry);
  }

  refreshTimes() {
    for (const entry of this.items.values()) {
      entry.link.querySelector('.when').textContent = relativeTime(entry.session.last_updated_at);
    }
  }
}

// Search as you type: results replace the recent chats while the box holds a query; each opens
// its chat at the turn that matched. Later keystrokes cancel the request of earlier ones.
const SEARCH_DELAY_MS = 200;
const SEARCH_MIN_CHARS = 2;

export class SessionSearch {
  constructor({ input, area, list, note, sentinel, scroller, hide, onOpen }) {
    Object.assign(this, { input, area, list, note, hide, onOpen });
    this.query = '';
    this.timer = null;
    this.controller = null;
    this.pageToken = undefined;
    this.loading = null;
    input.addEventListener('input', () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.start(input.value.trim()), SEARCH_DELAY_MS);
    });
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && input.value) {
        event.stopPropagation();
        input.value = '';
        this.start('');
      }
    });
    new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting) && this.pageToken) this.loadMore();
    }, { root: scroller, rootMargin: '0px 0px 300px 0px' }).observe(sentinel);
  }

  start(query) {
    if (query === this.query) return;
    this.query = query;
    if (this.controller) this.controller.abort();
    const searching = query.length >= SEARCH_MIN_CHARS;
    this.area.hidden = !searching;
    for (const node of this.hide) node.hidden = searching;
    this.list.replaceChildren();
    this.note.textContent = '';
    this.pageToken = undefined;
    this.loading = null;
    if (searching) this.loadMore();
  }

  loadMore() {
    if (this.loading) return this.loading;
    const controller = new AbortController();
    this.controller = controller;
    const query = this.query;
    this.note.textContent = this.list.childElementCount ? '' : 'Searching…';
    this.loading = (async () => {
      try {
        const page = await api.search(query, this.pageToken, 20, controller.signal);
        if (query !== this.query) return;
        for (const found of page.items) this.list.append(this.item(found));
        this.pageToken = page.next_page_token || undefined;
        this.note.textContent = this.list.childElementCount ? '' : 'No chat matches.';
      } catch (error) {
        if (error.name !== 'AbortError' && query === this.query) {
          this.note.textContent = `Could not search: ${errorText(error)}`;
        }
      } finally {
        if (this.controller === controller) this.loading = null;
      }
    })();
    return this.loading;
  }

  item(found) {
    const href = `/?session=${encodeURIComponent(found.session_id)}&event=${found.event_index}`;
    const link = el('a', { href },
      el('span', { class: 'title', text: found.generated_title || UNTITLED }),
      el('span', { class: 'snippet' }, ...marked(found.snippet)),
      el('time', { class: 'when', datetime: found.last_updated_at, title: absoluteTime(found.last_updated_at), text: relativeTime(found.last_updated_at) }));
    link.addEventListener('click', (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      const terms = [...link.querySelectorAll('.snippet mark')].map((mark) => mark.textContent);
      this.onOpen(found.session_id, found.event_index, terms);
    });
    return el('div', { role: 'listitem' }, link);
  }
}

// The API marks matches «like this»: text nodes and <mark> elements, never markup.
export function marked(snippet) {
  return (snippet || '').split(/(«[^«»]*»)/).filter(Boolean).map((part) =>
    part.startsWith('«') && part.endsWith('»') ? el('mark', { text: part.slice(1, -1) }) : document.createTextNode(part));
}
