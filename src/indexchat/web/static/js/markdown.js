// Answers are Markdown written by a model from documents nobody here checked: untrusted. They
// become HTML only here, through marked and then DOMPurify; nothing else sets innerHTML.
import { marked } from '../vendor/marked-18.2.1/marked.esm.js';
import DOMPurify from '../vendor/dompurify-3.5.0/purify.es.mjs';

const PURIFY = {
  // No images (they would load from anywhere the text says), forms, frames or media.
  FORBID_TAGS: ['img', 'picture', 'source', 'video', 'audio', 'svg', 'math', 'iframe', 'frame',
    'object', 'embed', 'form', 'input', 'button', 'textarea', 'select', 'style', 'link', 'meta', 'base'],
  FORBID_ATTR: ['style', 'id', 'name'],
  ALLOW_DATA_ATTR: false,
};

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

export function renderMarkdown(target, text) {
  const html = marked.parse(text, { async: false, gfm: true });
  target.innerHTML = DOMPurify.sanitize(html, PURIFY);
}
