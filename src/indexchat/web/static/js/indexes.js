// The indexes page: create and delete indexes, drop files or folders on one, follow its sync.
import * as api from './api.js';
import { absoluteTime, confirmAction, el, errorText, plural, relativeTime } from './ui.js';

const $ = (id) => document.getElementById(id);
const listNode = $('index-list');
const statusNode = $('indexes-status');
const form = $('create-index');
const newButton = $('new-index');
const POLL_MS = 1000;
const PARALLEL_UPLOADS = 3;
const cards = new Map();

class IndexCard {
  constructor(index) {
    this.index = index;
    this.polling = false;
    this.node = el('li', { class: 'card index-card', 'aria-labelledby': `name-${index.id}` });
    this.build();
    this.render();
  }

  build() {
    this.name = el('h2', { id: `name-${this.index.id}` });
    this.state = el('p', { class: 'index-state' }, el('span', { class: 'dot', 'aria-hidden': 'true' }), el('span'));
    this.syncButton = el('button', { type: 'button', class: 'button small', text: 'Sync', onclick: () => this.sync() });
    this.cancelButton = el('button', { type: 'button', class: 'button small', text: 'Cancel sync', onclick: () => this.cancel() });
    const deleteButton = el('button', { type: 'button', class: 'button ghost small danger', text: 'Delete', onclick: () => this.remove() });
    this.stats = el('dl', { class: 'stats' });
    this.progress = el('progress', { max: '1', value: '0', 'aria-label': 'Sync progress' });
    this.progressText = el('span');
    this.progressRow = el('div', { class: 'sync-progress' }, this.progress, this.progressText);
    this.uploads = el('ul', { class: 'uploads', 'aria-label': 'Uploads' });
    this.failed = el('details', { class: 'failed-files' });
    this.message = el('p', { class: 'notice error', role: 'alert', hidden: true });
    this.node.append(
      el('div', { class: 'index-top' }, el('div', {}, this.name, this.state),
        el('div', { class: 'index-actions' }, this.syncButton, this.cancelButton, deleteButton)),
      this.stats, this.progressRow, this.dropzone(), this.uploads, this.message, this.failed);
  }

  dropzone() {
    const files = el('input', { type: 'file', multiple: true, 'aria-label': `Choose files to add to ${this.index.name}` });
    const folder = el('input', { type: 'file', webkitdirectory: true, 'aria-label': `Choose a folder to add to ${this.index.name}` });
    files.addEventListener('change', () => this.upload([...files.files].map((file) => ({ file, name: file.name }))).finally(() => { files.value = ''; }));
    folder.addEventListener('change', () => this.upload([...folder.files].map((file) => ({ file, name: file.webkitRelativePath || file.name }))).finally(() => { folder.value = ''; }));
    const zone = el('div', { class: 'dropzone' },
      el('span', { text: 'Drop files or a folder here' }),
      el('span', { class: 'choose' },
        el('span', { class: 'file-pick button ghost small' }, 'Choose files', files),
        el('span', { class: 'file-pick button ghost small' }, 'Choose a folder', folder)));
    zone.addEventListener('dragover', (event) => {
      event.preventDefault();
      event.dataTransfer.dropEffect = 'copy';
      zone.classList.add('over');
    });
    zone.addEventListener('dragleave', () => zone.classList.remove('over'));
    zone.addEventListener('drop', async (event) => {
      event.preventDefault();
      zone.classList.remove('over');
      this.upload(await droppedFiles(event.dataTransfer));
    });
    return zone;
  }

  render() {
    const index = this.index;
    const meta = index.metadata || {};
    this.name.textContent = index.name;
    const running = Boolean(index.sync_in_progress);
    const [kind, text] = stateOf(index);
    this.state.className = `index-state ${kind}`;
    this.state.lastChild.textContent = text;
    this.state.title = index.last_synced_at ? `Last synced ${absoluteTime(index.last_synced_at)}` : '';
    this.syncButton.hidden = running;
    this.cancelButton.hidden = !running;
    this.stats.replaceChildren(
      stat('Files', (meta.files_parsed ?? 0).toLocaleString()),
      stat('Chunks', (meta.chunks ?? 0).toLocaleString()),
      stat('Failed', (meta.files_failed ?? 0).toLocaleString()),
      stat('Last synced', index.last_synced_at ? relativeTime(index.last_synced_at) : 'Never'));
    const progress = meta.sync_progress;
    this.progressRow.hidden = !running;
    if (running) {
      const total = progress?.files_total || 0;
      const done = progress?.files_done || 0;
      if (total) {
        this.progress.max = total;
        this.progress.value = done;
      } else {
        this.progress.removeAttribute('value'); // indeterminate until the sync has counted
      }
      this.progressText.textContent = progress?.status === 'queued' ? 'Waiting to start…' : total ? `${done} of ${plural(total, 'file')}` : 'Looking for changes…';
    }
    this.renderFailures(meta);
  }

  renderFailures(meta) {
    const failures = meta.failed_files || [];
    this.failed.hidden = !failures.length;
    if (!failures.length) return;
    const count = meta.files_failed ?? failures.length;
    this.failed.replaceChildren(
      el('summary', { text: `${plural(count, 'file')} could not be indexed` }),
      el('ul', {}, ...failures.map((failure) => el('li', {},
        el('strong', { text: failure.file_name }),
        el('span', { class: 'reason', text: failure.error || 'unknown reason' })))));
  }

  showMessage(text) {
    this.message.textContent = text || '';
    this.message.hidden = !text;
  }

  async upload(entries) {
    const files = entries.filter((entry) => !entry.name.split('/').some((part) => part.startsWith('.')));
    if (!files.length) return;
    this.showMessage('');
    const queue = files.map((entry) => ({ ...entry, row: uploadRow(entry.name) }));
    this.uploads.append(...queue.map((entry) => entry.row.node));
    let uploaded = 0;
    const worker = async () => {
      for (let entry = queue.shift(); entry; entry = queue.shift()) {
        const name = entry.name.slice(0, 255);
        try {
          await api.uploadFile(this.index.source_directory_id, entry.file, name, (fraction) => entry.row.progress(fraction));
          entry.row.done();
          uploaded++;
        } catch (error) {
          entry.row.fail(error.status === 409 ? 'A file with this name is already in the index.' : errorText(error));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, queue.length) }, worker));
    if (uploaded) await this.sync();
  }

  async sync() {
    this.showMessage('');
    try {
      await api.indexes.sync(this.index.id);
      this.index = { ...this.index, sync_in_progress: true };
      this.render();
      this.poll();
    } catch (error) {
      this.showMessage(`Could not start the sync: ${errorText(error)}`);
    }
  }

  async cancel() {
    try {
      await api.indexes.cancelSync(this.index.id);
      this.progressText.textContent = 'Cancelling…';
    } catch (error) {
      if (error.status !== 409) this.showMessage(`Could not cancel: ${errorText(error)}`);
    }
  }

  async poll() {
    if (this.polling) return;
    this.polling = true;
    try {
      for (;;) {
        const fresh = await api.indexes.get(this.index.id, { progress: true });
        this.index = fresh;
        this.render();
        if (!fresh.sync_in_progress) break;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
      this.uploads.querySelectorAll('.upload.uploaded').forEach((row) => row.remove());
    } catch (error) {
      if (error.status !== 404) this.showMessage(`Lost track of the sync: ${errorText(error)}`);
    } finally {
      this.polling = false;
    }
  }

  async remove() {
    const confirmed = await confirmAction({
      title: `Delete ${this.index.name}?`,
      text: 'The index, its files and everything built from them will be deleted. Chats that searched it keep their history.',
    });
    if (!confirmed) return;
    try {
      await api.indexes.remove(this.index);
      this.node.remove();
      cards.delete(this.index.id);
      updateEmpty();
    } catch (error) {
      this.showMessage(`Could not delete the index: ${errorText(error)}`);
    }
  }
}

function stateOf(index) {
  const meta = index.metadata || {};
  if (index.sync_in_progress) return ['syncing', 'Syncing…'];
  if (meta.last_sync_status === 'failed') return ['failed', `Last sync failed: ${meta.last_error || 'unknown error'}`];
  if (meta.last_sync_status === 'cancelled') return ['', 'Last sync was cancelled'];
  if (!index.last_synced_at) return ['', 'Not synced yet'];
  return ['synced', `Synced ${relativeTime(index.last_synced_at)}`];
}

function stat(label, value) {
  return el('div', {}, el('dt', { text: label }), el('dd', { text: value }));
}

function uploadRow(name) {
  const bar = el('progress', { max: '1', value: '0', 'aria-label': `Upload of ${name}` });
  const pct = el('span', { class: 'pct', text: '0%' });
  const node = el('li', { class: 'upload' }, el('span', { class: 'name', text: name, title: name }), bar, pct);
  return {
    node,
    progress(fraction) {
      bar.value = fraction;
      pct.textContent = `${Math.floor(fraction * 100)}%`;
    },
    done() {
      bar.value = 1;
      pct.textContent = 'Done';
      node.classList.add('uploaded');
    },
    fail(reason) {
      node.classList.add('failed');
      pct.textContent = 'Failed';
      node.append(el('span', { class: 'why', text: reason }));
    },
  };
}

// Files of a drop, folders walked (names keep their folder path, e.g. "handbook/leave.pdf").
async function droppedFiles(dataTransfer) {
  const items = [...dataTransfer.items].filter((item) => item.kind === 'file');
  const entries = items.map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length || entries.length !== items.length) {
    return [...dataTransfer.files].map((file) => ({ file, name: file.name }));
  }
  const found = [];
  for (const entry of entries) await walk(entry, '', found);
  return found;
}

async function walk(entry, prefix, found) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    found.push({ file, name: prefix + file.name });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await walk(child, `${prefix}${entry.name}/`, found);
    }
  }
}

function addCard(index, { first = false } = {}) {
  const card = new IndexCard(index);
  cards.set(index.id, card);
  if (first) listNode.prepend(card.node);
  else listNode.append(card.node);
  return card;
}

function updateEmpty() {
  statusNode.textContent = cards.size ? '' : 'No indexes yet. Create one, then drop files on it.';
  statusNode.hidden = cards.size > 0;
}

function showForm(open) {
  form.hidden = !open;
  newButton.setAttribute('aria-expanded', String(open));
  if (open) $('index-name').focus();
}

newButton.addEventListener('click', () => showForm(form.hidden));
$('create-cancel').addEventListener('click', () => showForm(false));
form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const error = $('create-error');
  error.hidden = true;
  const name = form.elements.name.value.trim();
  if (!name) return;
  try {
    const index = await api.indexes.create(name, { screenshots: form.elements.screenshots.checked });
    form.reset();
    showForm(false);
    const card = addCard(index, { first: true });
    updateEmpty();
    card.node.querySelector('.dropzone input').focus();
  } catch (failure) {
    error.textContent = `Could not create the index: ${errorText(failure)}`;
    error.hidden = false;
  }
});
// Dropping outside a drop zone must not open the file in the tab.
window.addEventListener('dragover', (event) => event.preventDefault());
window.addEventListener('drop', (event) => event.preventDefault());

async function load() {
  try {
    const indexes = await api.indexes.list();
    for (const index of indexes) addCard(index);
    updateEmpty();
    // The list does not say which syncs run; each index does.
    await Promise.all([...cards.values()].map(async (card) => {
      const fresh = await api.indexes.get(card.index.id, { progress: true }).catch(() => null);
      if (!fresh) return;
      card.index = fresh;
      card.render();
      if (fresh.sync_in_progress) card.poll();
    }));
  } catch (error) {
    statusNode.textContent = `Could not load indexes: ${errorText(error)}`;
  }
}

load();
