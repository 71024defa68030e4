// Small DOM helpers shared by the pages. Text from the server goes in as text (textContent),
// never as markup; markdown.js is the only place that produces HTML, through the sanitizer.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

// The API's timestamps are UTC; some carry no offset.
export function parseTime(value) {
  if (!value) return null;
  const zoned = /[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`;
  const time = new Date(zoned);
  return Number.isNaN(time.getTime()) ? null : time;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const dateOnly = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const dateWithYear = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });

export function relativeTime(value, now = Date.now()) {
  const time = parseTime(value);
  if (!time) return '';
  const seconds = Math.round((time.getTime() - now) / 1000);
  const ago = -seconds;
  if (ago < 45) return 'just now';
  if (ago < 3600) return relative.format(Math.round(seconds / 60), 'minute');
  if (ago < 86400) return relative.format(Math.round(seconds / 3600), 'hour');
  if (ago < 7 * 86400) return relative.format(Math.round(seconds / 86400), 'day');
  const format = time.getFullYear() === new Date(now).getFullYear() ? dateOnly : dateWithYear;
  return format.format(time);
}

export function absoluteTime(value) {
  const time = parseTime(value);
  return time ? time.toLocaleString() : '';
}

export function plural(count, one, many = `${one}s`) {
  return `${count.toLocaleString()} ${count === 1 ? one : many}`;
}

// A confirm dialog (a <dialog> in the page): resolves true when the user confirms.
export function confirmAction({ title, text, confirm = 'Delete' }) {
  const dialog = document.getElementById('confirm-dialog');
  dialog.querySelector('#confirm-title').textContent = title;
  dialog.querySelector('#confirm-text').textContent = text;
  dialog.querySelector('#confirm-ok').textContent = confirm;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

export function errorText(error) {
  if (error && error.status === 0) return 'The server cannot be reached.';
  const detail = error && error.detail !== undefined ? error.detail : error?.message;
  if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join('; ');
  return String(detail || 'Something went wrong.');
}
