// The source panel beside the chat: a passage, its page screenshot, and a link to the file.
import { originalFileUrl, screenshotUrl } from './api.js';
import { pageLabel } from './turn.js';

export class SourcePanel {
  // `screenshot(fileId, page)` and `originalFile(index, fileId)` find a source's page image and
  // file; a shared chat's viewer passes its own, or null where it may not look.
  constructor({ layout, indexById, screenshot = screenshotUrl, originalFile = originalFileUrl }) {
    this.layout = layout;
    this.indexById = indexById;
    this.screenshot = screenshot;
    this.originalFile = originalFile;
    this.panel = document.getElementById('source-panel');
    this.title = document.getElementById('source-title');
    this.where = document.getElementById('source-where');
    this.open = document.getElementById('source-open');
    this.figure = document.getElementById('source-figure');
    this.image = document.getElementById('source-image');
    this.imageNote = document.getElementById('source-image-note');
    this.passage = document.getElementById('source-passage');
    this.trigger = null;
    this.ticket = 0;
    document.getElementById('source-close').addEventListener('click', () => this.close());
  }

  get isOpen() {
    return !this.panel.hidden;
  }

  async show(source, trigger) {
    const ticket = ++this.ticket;
    if (this.trigger) this.trigger.setAttribute('aria-pressed', 'false');
    this.trigger = trigger;
    trigger.setAttribute('aria-pressed', 'true');
    this.title.textContent = source.file_name;
    this.where.textContent = pageLabel(source);
    // PDF text keeps the layout's line breaks; paragraphs (blank lines) stay.
    this.passage.textContent = (source.content || '').replace(/([^\n])\n(?!\n)/g, '$1 ');
    this.figure.hidden = true;
    this.imageNote.hidden = true;
    this.open.hidden = true;
    this.image.removeAttribute('src');
    this.panel.hidden = false;
    this.layout.classList.add('with-source');
    this.title.focus();
    await Promise.all([this.showScreenshot(source, ticket), this.showLink(source, ticket)]);
  }

  async showScreenshot(source, ticket) {
    const page = source.page_start;
    const url = typeof page === 'number' ? await this.screenshot(source.file_id, page).catch(() => null) : null;
    if (ticket !== this.ticket) return;
    if (url) {
      this.image.alt = `Page ${page} of ${source.file_name}`;
      this.image.src = url;
      this.figure.hidden = false;
    } else {
      this.imageNote.textContent = typeof page === 'number'
        ? 'No page screenshot is stored for this file.'
        : 'This file has no pages to show.';
      this.imageNote.hidden = false;
    }
  }

  async showLink(source, ticket) {
    const index = this.originalFile && this.indexById(source.index_id);
    if (!index) return;
    const url = await this.originalFile(index, source.file_id).catch(() => null);
    if (ticket !== this.ticket || !url) return;
    const page = source.page_start;
    const pdf = /\.pdf$/i.test(source.file_name);
    this.open.href = pdf && typeof page === 'number' ? `${url}#page=${page}` : url;
    this.open.textContent = pdf && typeof page === 'number' ? `Open the file at page ${page}` : 'Open the file';
    this.open.hidden = false;
  }

  close() {
    this.ticket++;
    this.panel.hidden = true;
    this.layout.classList.remove('with-source');
    if (this.trigger) {
      this.trigger.setAttribute('aria-pressed', 'false');
      this.trigger.focus();
      this.trigger = null;
    }
  }
}
