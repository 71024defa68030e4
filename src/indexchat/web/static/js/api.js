// The one place that talks to the server: the public JSON API and its event streams, signed in
// with the session cookie (the browser never holds an API key).

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === 'string' ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

const enc = encodeURIComponent;

export function apiUrl(path, query = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue;
    for (const one of [].concat(value)) url.searchParams.append(name, one);
  }
  return url.pathname + url.search;
}

function signInAgain() {
  location.assign('/login?next=' + enc(location.pathname + location.search));
}

async function failure(response) {
  if (response.status === 401) signInAgain();
  let detail = response.statusText || `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (body && body.detail !== undefined) detail = body.detail;
  } catch {
    // not JSON: keep the status text
  }
  return new ApiError(response.status, detail);
}

async function call(method, path, { query, json, signal, accept = 'application/json' } = {}) {
  const init = { method, signal, credentials: 'same-origin', headers: { Accept: accept } };
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  }
  const response = await fetch(apiUrl(path, query), init);
  if (!response.ok) throw await failure(response);
  return response;
}

async function json(method, path, options) {
  const response = await call(method, path, options);
  return response.status === 204 ? null : response.json();
}

// Chat sessions

export const sessions = {
  list: (pageToken, pageSize) =>
    json('GET', '/api/v1/chat', { query: { page_size: pageSize, page_token: pageToken } }),
  create: (indexIds) => json('POST', '/api/v1/chat', { json: { index_ids: indexIds } }),
  get: (id) => json('GET', `/api/v1/chat/${enc(id)}`),
  summary: (id) => json('GET', `/api/v1/chat/${enc(id)}/summary`),
  remove: (id) => json('DELETE', `/api/v1/chat/${enc(id)}`),
  cancel: (id) => json('POST', `/api/v1/chat/${enc(id)}/messages/cancel`),
  // Best match first; each item adds `snippet` (matches between « and ») and `event_index`.
  search: (q, pageToken, pageSize, signal) =>
    json('GET', '/api/v1/chat/search', { query: { q, page_size: pageSize, page_token: pageToken }, signal }),
  exportUrl: (id, format) => apiUrl(`/api/v1/chat/${enc(id)}/export`, { format }),
};

// Share links of a session (the owner's side)

export const shareLinks = {
  list: (sessionId) => json('GET', `/api/v1/chat/${enc(sessionId)}/share-links`),
  create: (sessionId, body) => json('POST', `/api/v1/chat/${enc(sessionId)}/share-links`, { json: body }),
  revoke: (sessionId, linkId) =>
    json('DELETE', `/api/v1/chat/${enc(sessionId)}/share-links/${enc(linkId)}`),
};

// A shared chat, as a link's viewer reads it (no sign-in: the token is the key).

export const shared = {
  get: (token) => json('GET', `/s/${enc(token)}/chat`),
  async follow(token, after, onEvent, signal, { fork = false } = {}) {
    const path = `/s/${enc(token)}/${fork ? 'fork' : 'chat'}/messages/stream`;
    const response = await call('GET', path, { query: { after }, signal, accept: 'text/event-stream' });
    await readEvents(response, onEvent);
  },
  async ask(token, prompt, onEvent, signal) {
    const response = await call('POST', `/s/${enc(token)}/chat/messages/stream`, {
      json: { prompt }, signal, accept: 'text/event-stream',
    });
    await readEvents(response, onEvent);
  },
  // A cited page screenshot as a local object URL, or null when the link does not cite it.
  async screenshot(token, sourceId, page) {
    const response = await fetch(`/s/${enc(token)}/attachments/${enc(sourceId)}/screenshots/page_${page}.png`);
    return response.ok ? URL.createObjectURL(await response.blob()) : null;
  },
};

// Run a turn; `onEvent` gets each chat event as it arrives. Resolves when the stream ends.
export async function streamTurn(sessionId, body, onEvent, signal) {
  const response = await call('POST', `/api/v1/chat/${enc(sessionId)}/messages/stream`, {
    json: body, signal, accept: 'text/event-stream',
  });
  onEvent({ type: '_open' });
  await readEvents(response, onEvent);
}

// Follow a session's running turn, after the `after` events already shown.
export async function followTurn(sessionId, after, onEvent, signal) {
  const response = await call('GET', `/api/v1/chat/${enc(sessionId)}/messages/stream`, {
    query: { after }, signal, accept: 'text/event-stream',
  });
  await readEvents(response, onEvent);
}

// Server-Sent Events from a fetch body (EventSource cannot POST). Fields as in the HTML spec:
// `event:` and `data:` lines, a blank line ends an event, lines starting with ':' are comments.
export async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parse = sseParser((message) => onEvent(JSON.parse(message.data)));
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parse(value);
  }
  parse('\n\n');
}

export function sseParser(onMessage) {
  let pending = '';
  let data = [];
  let event = '';
  return (chunk) => {
    pending += chunk;
    const lines = pending.split(/\r\n|\n|\r(?!$)/);
    pending = lines.pop();
    for (const line of lines) {
      if (line === '') {
        if (data.length) onMessage({ event: event || 'message', data: data.join('\n') });
        data = [];
        event = '';
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') data.push(value);
        else if (field === 'event') event = value;
      }
    }
  };
}

// Indexes, and the directories their files live in

async function allPages(path, query = {}) {
  const items = [];
  let pageToken;
  do {
    const page = await json('GET', path, { query: { ...query, page_size: 100, page_token: pageToken } });
    items.push(...page.items);
    pageToken = page.next_page_token;
  } while (pageToken);
  return items;
}

export const indexes = {
  list: () => allPages('/api/v1/indexes'),
  get: (id, { progress = false } = {}) =>
    json('GET', `/api/v1/indexes/${enc(id)}`, { query: progress ? { expand: 'sync_in_progress' } : {} }),
  async create(name, { screenshots }) {
    const directory = await json('POST', '/api/v1/beta/directories', { json: { name: `${name} files` } });
    try {
      return await json('POST', '/api/v1/indexes', {
        json: { name, source_directory_id: directory.id, store_attachments: screenshots ? ['screenshots'] : [] },
      });
    } catch (error) {
      await json('DELETE', `/api/v1/beta/directories/${enc(directory.id)}`).catch(() => {});
      throw error;
    }
  },
  async remove(index) {
    await json('DELETE', `/api/v1/indexes/${enc(index.id)}`);
    // The page made the source directory for this index; another index may still use it.
    await json('DELETE', `/api/v1/beta/directories/${enc(index.source_directory_id)}`).catch(() => {});
  },
  sync: (id) => json('POST', `/api/v1/indexes/${enc(id)}/sync`),
  cancelSync: (id) => json('POST', `/api/v1/indexes/${enc(id)}/sync/cancel`),
};

// Upload one file into a directory; `onProgress` gets the fraction sent (XHR reports upload
// progress, fetch does not).
export function uploadFile(directoryId, file, name, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/v1/beta/directories/${enc(directoryId)}/files/upload`);
    xhr.responseType = 'json';
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      if (xhr.status === 401) signInAgain();
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(new ApiError(xhr.status, xhr.response?.detail ?? (xhr.statusText || `HTTP ${xhr.status}`)));
    };
    xhr.onerror = () => reject(new ApiError(0, 'the connection to the server failed'));
    const form = new FormData();
    form.append('upload_file', file, file.name);
    form.append('display_name', name);
    form.append('unique_id', name);
    xhr.send(form);
  });
}

// What a source links to: its page screenshot and the original file.

export async function screenshotUrl(parsedFileId, page) {
  try {
    const found = await json('GET', `/api/v1/beta/attachments/screenshots/page_${page}.png`, {
      query: { source_id: parsedFileId },
    });
    return found.url;
  } catch (error) {
    if (error.status === 404) return null;
    throw error;
  }
}

// A parsed file is a file of the index's output directory whose unique_id is the source
// directory's file; that one holds the uploaded file, whose content has a signed URL.
export async function originalFileUrl(index, parsedFileId) {
  const parsed = await json('GET', `/api/v1/beta/directories/${enc(index.output_directory_id)}/files/${enc(parsedFileId)}`);
  const source = await json('GET', `/api/v1/beta/directories/${enc(index.source_directory_id)}/files/${enc(parsed.unique_id)}`);
  const content = await json('GET', `/api/v1/beta/files/${enc(source.file_id)}/content`);
  return content.url;
}
