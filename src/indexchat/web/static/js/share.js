// The Share dialog of the chat page: make a link (grant, expiry), copy it (shown once), list
// the chat's links with their grant and age, revoke one.
import { shareLinks } from './api.js';
import { el, errorText, parseTime, relativeTime } from './ui.js';

const $ = (id) => document.getElementById(id);
const GRANTS = { read_only: 'Read only', query: 'Read and ask' };

export class ShareDialog {
  constructor() {
    this.dialog = $('share-dialog');
    this.list = $('share-list');
    this.status = $('share-status');
    this.session = null;
    $('share-create').addEventListener('click', () => this.create());
    $('share-copy').addEventListener('click', () => this.copy());
  }

  async open(session) {
    this.session = session;
    $('share-access').value = session.shared_access || 'read_only';
    $('share-created').hidden = true;
    $('share-url').value = '';
    this.status.textContent = '';
    this.list.replaceChildren();
    this.dialog.showModal();
    await this.refresh();
  }

  async refresh() {
    const session = this.session;
    try {
      const page = await shareLinks.list(session.session_id);
      if (session !== this.session) return;
      this.render(page.items);
    } catch (error) {
      this.status.textContent = `Could not list the links: ${errorText(error)}`;
    }
  }

  render(links) {
    if (!links.length) {
      this.list.replaceChildren(el('li', { class: 'muted small', text: 'No links yet.' }));
      return;
    }
    this.list.replaceChildren(...links.map((link) => {
      const revoke = el('button', { type: 'button', class: 'button ghost small danger', text: 'Revoke' });
      revoke.addEventListener('click', () => this.revoke(link));
      return el('li', { class: 'share-link' + (link.expired ? ' expired' : '') },
        el('span', { class: 'grant', text: GRANTS[link.shared_access] || link.shared_access }),
        el('span', { class: 'age', text: age(link) }),
        revoke);
    }));
  }

  async create() {
    const expiry = $('share-expiry').value;
    const body = { shared_access: $('share-access').value, expires_in_seconds: expiry ? Number(expiry) : null };
    $('share-create').disabled = true;
    try {
      const link = await shareLinks.create(this.session.session_id, body);
      $('share-url').value = link.url;
      $('share-created').hidden = false;
      $('share-url').select();
      this.status.textContent = 'Link created.';
      await this.refresh();
    } catch (error) {
      this.status.textContent = `Could not create the link: ${errorText(error)}`;
    } finally {
      $('share-create').disabled = false;
    }
  }

  async copy() {
    const url = $('share-url').value;
    try {
      await navigator.clipboard.writeText(url);
      this.status.textContent = 'Link copied.';
    } catch {
      $('share-url').select();
      this.status.textContent = 'Press Ctrl+C to copy the selected link.';
    }
  }

  async revoke(link) {
    try {
      await shareLinks.revoke(this.session.session_id, link.id);
      this.status.textContent = 'Link revoked: it no longer works, and neither do the copies its viewers started.';
      await this.refresh();
    } catch (error) {
      this.status.textContent = `Could not revoke the link: ${errorText(error)}`;
    }
  }
}

function age(link) {
  const made = `made ${relativeTime(link.created_at)}`;
  if (!link.expires_at) return `${made} · never expires`;
  if (link.expired) return `${made} · expired`;
  const left = parseTime(link.expires_at).getTime() - Date.now();
  const days = Math.round(left / 86400000);
  return `${made} · expires in ${days >= 1 ? `${days} day${days === 1 ? '' : 's'}` : 'less than a day'}`;
}
