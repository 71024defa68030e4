// Checks response bodies against the SDK's own declared types: reads the interfaces of its
// .d.ts files (required and optional fields, null allowed or not, nested interfaces, arrays,
// maps, string literals) and reports where a value does not fit. JavaScript does not check
// what the server sends; this does, so a server that drifts from the SDK's types is caught.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), 'node_modules', '@llamaindex', 'llama-cloud');
const parsed = new Map(); // file -> Map(qualified interface name -> properties)

function stripComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

function braces(text) {
  let depth = 0;
  for (const char of text) {
    if (char === '{' || char === '<' || char === '(') depth += 1;
    if (char === '}' || char === '>' || char === ')') depth -= 1;
  }
  return depth;
}

// Interfaces of one declaration file, by qualified name ("Result.StaticFields").
function interfaces(file) {
  if (parsed.has(file)) return parsed.get(file);
  const found = new Map();
  const scopes = []; // {kind: 'namespace'|'interface', name, props}
  let pending = null; // a property whose type spans lines
  for (const raw of stripComments(readFileSync(join(ROOT, file), 'utf8')).split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (pending) {
      pending.type += ` ${line}`;
      if (braces(pending.type) === 0) {
        pending.props.set(pending.name, finish(pending));
        pending = null;
      }
      continue;
    }
    const opened = line.match(/^(?:export )?(?:declare )?(namespace|interface) (\w+)(?: extends [\w., <>]+)? \{$/);
    if (opened) {
      const path = [...scopes.map((s) => s.name), opened[2]].join('.');
      const scope = { kind: opened[1], name: opened[2], path, props: new Map() };
      if (scope.kind === 'interface') found.set(path, { props: scope.props, scope: path });
      scopes.push(scope);
      continue;
    }
    if (line === '}') {
      scopes.pop();
      continue;
    }
    const top = scopes.at(-1);
    const property = top?.kind === 'interface' && line.match(/^(\w+)(\??): (.*)$/);
    if (property) {
      const entry = { name: property[1], optional: property[2] === '?', type: property[3], props: top.props };
      if (braces(entry.type) === 0) top.props.set(entry.name, finish(entry));
      else pending = entry;
    }
  }
  parsed.set(file, found);
  return found;
}

function finish({ optional, type }) {
  return { optional, type: type.replace(/;$/, '').trim() };
}

// Top-level alternatives of a union type.
function alternatives(type) {
  const parts = [];
  let depth = 0;
  let current = '';
  for (const char of type) {
    if ('{<('.includes(char)) depth += 1;
    if ('}>)'.includes(char)) depth -= 1;
    if (char === '|' && depth === 0) {
      parts.push(current.trim());
      current = '';
    } else current += char;
  }
  parts.push(current.trim());
  return parts;
}

function resolve(types, scope, name) {
  const path = scope.split('.');
  for (let i = path.length; i >= 0; i -= 1) {
    const candidate = [...path.slice(0, i), name].join('.');
    if (types.has(candidate)) return types.get(candidate);
  }
  // `FilesAPI.PresignedURL`: a type of this same file, reached through its import alias.
  const alias = name.match(/^\w+API\.(.+)$/);
  return alias ? resolve(types, '', alias[1]) : null;
}

function fits(types, scope, type, value, where, problems) {
  const options = alternatives(type);
  for (const option of options) {
    const attempt = [];
    if (fitsOne(types, scope, option, value, where, attempt)) return true;
    if (options.length === 1) problems.push(...attempt);
  }
  if (options.length > 1) problems.push(`${where}: ${JSON.stringify(value)} is not ${type}`);
  return false;
}

function fail(problems, problem) {
  problems.push(problem);
  return false;
}

function fitsOne(types, scope, type, value, where, problems) {
  const simple = { string: 'string', number: 'number', boolean: 'boolean' };
  if (type in simple) return typeof value === simple[type] || fail(problems, `${where}: not a ${type}`);
  if (type === 'null') return value === null;
  if (type === 'unknown' || type === 'any') return true;
  if (/^'.*'$/.test(type)) return value === type.slice(1, -1);
  const array = type.match(/^Array<(.*)>$/);
  if (array) {
    if (!Array.isArray(value)) return fail(problems, `${where}: not an array`);
    return value.every((item, i) => fits(types, scope, array[1], item, `${where}[${i}]`, problems));
  }
  const map = type.match(/^\{\s*\[key: string\]: (.*?);?\s*\}$/);
  if (map) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return fail(problems, `${where}: not an object`);
    }
    return Object.entries(value).every(([k, v]) => fits(types, scope, map[1], v, `${where}.${k}`, problems));
  }
  const named = resolve(types, scope, type);
  if (named) return fitsInterface(types, named, value, where, problems);
  problems.push(`${where}: cannot check type ${type}`);
  return false;
}

function fitsInterface(types, { props, scope }, value, where, problems) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push(`${where}: not an object`);
    return false;
  }
  const before = problems.length;
  for (const [name, { optional, type }] of props) {
    if (!(name in value) || value[name] === undefined) {
      if (!optional) problems.push(`${where}.${name}: required by the SDK, missing`);
      continue;
    }
    fits(types, scope, type, value[name], `${where}.${name}`, problems);
  }
  return problems.length === before;
}

// Problems of `value` as the SDK's `typeName` declared in `file` (relative to the package).
export function shapeProblems(file, typeName, value) {
  const types = interfaces(file);
  const declared = types.get(typeName);
  if (!declared) return [`${file}: no interface ${typeName}`];
  const problems = [];
  fitsInterface(types, declared, value, typeName, problems);
  return problems;
}
