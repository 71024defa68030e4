// Drives a live indexchat server with the official TypeScript SDK, @llamaindex/llama-cloud:
// every call it has for chat, indexes, retrieval (all under client.beta), directories and
// files. Reads LLAMA_CLOUD_API_KEY and LLAMA_CLOUD_BASE_URL, as the SDK does.
//
// Prints one line per step, then `RESULT <json>` with what the steps saw, for the test to
// check. A failing step prints the SDK's error (class, status, body) and exits 1.

import LlamaCloud, { APIError, NotFoundError, toFile } from '@llamaindex/llama-cloud';

import { shapeProblems } from './shapes.mjs';

const client = new LlamaCloud({ maxRetries: 0, timeout: 120_000 });
const result = { shape_problems: [] };

// Checks `values` against the SDK's declared type `typeName` in `file` (resources/…).
function shape(file, typeName, ...values) {
  for (const value of values) {
    result.shape_problems.push(...shapeProblems(`resources/${file}.d.ts`, typeName, value));
  }
}
const SYNC_TIMEOUT_MS = 180_000;

async function step(name, run) {
  try {
    const value = await run();
    console.log(`ok ${name}`);
    return value;
  } catch (error) {
    if (error instanceof APIError) {
      const body = JSON.stringify(error.error);
      console.log(`FAILED ${name}: ${error.constructor.name} status=${error.status} ${body}`);
    } else {
      console.log(`FAILED ${name}: ${error?.stack ?? error}`);
    }
    process.exit(1);
  }
}

async function collect(iterable) {
  const items = [];
  for await (const item of iterable) items.push(item);
  return items;
}

async function expectNotFound(name, run) {
  await step(name, async () => {
    try {
      await run();
    } catch (error) {
      if (error instanceof NotFoundError) return;
      throw error;
    }
    throw new Error('expected a NotFoundError');
  });
}

function sseEvents(text) {
  return text
    .split('\n')
    .filter((line) => line.startsWith('data:'))
    .map((line) => JSON.parse(line.slice(5)));
}

// --- files ----------------------------------------------------------------------------------
const notes = {
  'leave.md': '# Leave\n\nRequest annual leave in the HR portal two weeks ahead.',
  'expenses.md': '# Expenses\n\nKeep every receipt; expense claims close on the 5th.',
};
const plain = await step('files.create', async () =>
  client.files.create({
    file: await toFile(Buffer.from('Parking permits are renewed every January.'), 'parking.txt'),
    purpose: 'user_data',
  }),
);
const fetched = await step('files.retrieve', () => client.files.retrieve(plain.id));
const listedFiles = await step('files.list', () =>
  collect(client.files.list({ file_ids: [plain.id], page_size: 1 })),
);
const content = await step('files.content', () => client.files.content(plain.id));
const queried = await step('files.query', () =>
  client.files.query({ filter: { file_ids: [plain.id] }, order_by: 'name', page_size: 10 }),
);
const projects = await step('projects.list', () => client.projects.list());
const project = await step('projects.get', () => client.projects.get(plain.project_id));
shape('files', 'PresignedURL', content);
shape('files', 'FileQueryResponse', queried);
shape('projects', 'Project', ...projects, project);
shape('files', 'FileCreateResponse', plain);
shape('files', 'FileRetrieveResponse', fetched);
shape('files', 'FileListResponse', ...listedFiles);
result.files = {
  name: fetched.name,
  listed: listedFiles.map((f) => f.id),
  queried: queried.items.map((f) => f.id),
  content_url: content.url,
  project: project.id,
  projects: projects.map((p) => p.id),
};

// --- directories and directory files --------------------------------------------------------
const directory = await step('beta.directories.create', () =>
  client.beta.directories.create({ name: 'ts handbook', description: 'from the TS SDK' }),
);
const scratch = await step('beta.directories.create (a second one)', () =>
  client.beta.directories.create({ name: 'ts scratch' }),
);
const renamed = await step('beta.directories.update', () =>
  client.beta.directories.update(directory.id, { name: 'ts handbook (renamed)' }),
);
const gotDirectory = await step('beta.directories.get', () =>
  client.beta.directories.get(directory.id),
);
const directories = await step('beta.directories.list', () =>
  collect(client.beta.directories.list({ page_size: 1 })),
);
const uploaded = {};
for (const [name, text] of Object.entries(notes)) {
  uploaded[name] = await step(`beta.directories.files.upload ${name}`, async () =>
    client.beta.directories.files.upload(directory.id, {
      upload_file: await toFile(Buffer.from(text), name),
      metadata: JSON.stringify({ topic: name.split('.')[0] }),
    }),
  );
}
const added = await step('beta.directories.files.add', () =>
  client.beta.directories.files.add(directory.id, { file_id: plain.id, display_name: 'parking.txt' }),
);
const gotFile = await step('beta.directories.files.get', () =>
  client.beta.directories.files.get(added.id, { directory_id: directory.id }),
);
const updatedFile = await step('beta.directories.files.update', () =>
  client.beta.directories.files.update(added.id, {
    directory_id: directory.id,
    display_name: 'parking-permits.txt',
  }),
);
const directoryFiles = await step('beta.directories.files.list', () =>
  collect(client.beta.directories.files.list(directory.id, { page_size: 1 })),
);
shape('beta/directories/directories', 'DirectoryCreateResponse', directory);
shape('beta/directories/directories', 'DirectoryUpdateResponse', renamed);
shape('beta/directories/directories', 'DirectoryGetResponse', gotDirectory);
shape('beta/directories/directories', 'DirectoryListResponse', ...directories);
shape('beta/directories/files', 'FileUploadResponse', ...Object.values(uploaded));
shape('beta/directories/files', 'FileAddResponse', added);
shape('beta/directories/files', 'FileGetResponse', gotFile);
shape('beta/directories/files', 'FileUpdateResponse', updatedFile);
shape('beta/directories/files', 'FileListResponse', ...directoryFiles);
result.directories = {
  renamed: renamed.name,
  got: gotDirectory.name,
  listed: directories.map((d) => d.id),
  id: directory.id,
  files: directoryFiles.map((f) => f.display_name).sort(),
  got_file: gotFile.display_name,
  updated_file: updatedFile.display_name,
  upload_metadata: uploaded['leave.md'].metadata,
};

// --- indexes --------------------------------------------------------------------------------
const index = await step('beta.indexes.create', () =>
  client.beta.indexes.create({ source_directory_id: directory.id, name: 'ts index' }),
);
const spare = await step('beta.indexes.create (a second one)', () =>
  client.beta.indexes.create({ source_directory_id: directory.id, name: 'ts spare' }),
);
result.sync = await step('beta.indexes.sync', () => client.beta.indexes.sync(index.id));
const synced = await step('beta.indexes.get (until synced)', async () => {
  const deadline = Date.now() + SYNC_TIMEOUT_MS;
  for (;;) {
    const got = await client.beta.indexes.get(index.id);
    if (got.last_synced_at) return got;
    if (Date.now() > deadline) throw new Error(`not synced: ${JSON.stringify(got.metadata)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
});
const indexes = await step('beta.indexes.list', () =>
  collect(client.beta.indexes.list({ page_size: 1 })),
);
shape('beta/indexes', 'IndexCreateResponse', index, spare);
shape('beta/indexes', 'IndexGetResponse', synced);
shape('beta/indexes', 'IndexListResponse', ...indexes);
result.indexes = { listed: indexes.map((i) => i.id), name: synced.name, metadata: synced.metadata };

// --- retrieval ------------------------------------------------------------------------------
const retrieved = await step('beta.retrieval.retrieve', () =>
  client.beta.retrieval.retrieve({ index_id: index.id, query: 'annual leave', top_k: 2 }),
);
const found = await step('beta.retrieval.find', () =>
  collect(client.beta.retrieval.find({ index_id: index.id, page_size: 1 })),
);
const leave = found.find((f) => f.file_name === 'leave.md');
const matches = await step('beta.retrieval.grep', () =>
  collect(
    client.beta.retrieval.grep({
      index_id: index.id,
      file_id: leave.file_id,
      pattern: '\\b[Ll]eave\\b',
      context_chars: 0,
      page_size: 1,
    }),
  ),
);
const read = await step('beta.retrieval.read', () =>
  client.beta.retrieval.read({ index_id: index.id, file_id: leave.file_id, offset: 0 }),
);
shape('beta/retrieval', 'RetrievalRetrieveResponse', retrieved);
shape('beta/retrieval', 'RetrievalFindResponse', ...found);
shape('beta/retrieval', 'RetrievalGrepResponse', ...matches);
shape('beta/retrieval', 'RetrievalReadResponse', read);
result.retrieval = {
  first: retrieved.results[0].content,
  first_file: retrieved.results[0].static_fields.parsed_directory_file_id,
  attachments: retrieved.results[0].static_fields.attachments,
  found: found.map((f) => f.file_name).sort(),
  matches: matches.map((m) => [m.content, m.start_char, m.end_char]),
  read: read.content,
};

// --- chat -----------------------------------------------------------------------------------
const sessions = [];
for (let i = 0; i < 3; i += 1) {
  sessions.push(
    await step(`beta.chat.create ${i}`, () => client.beta.chat.create({ index_ids: [index.id] })),
  );
}
const listed = await step('beta.chat.list', () => collect(client.beta.chat.list({ page_size: 2 })));
const session = sessions[0];
const text = await step('beta.chat.stream', () =>
  client.beta.chat.stream(session.session_id, {
    index_ids: [index.id],
    prompt: 'How do I request annual leave?',
  }),
);
const incremental = await step('beta.chat.stream (read as it arrives)', async () => {
  const response = await client.beta.chat
    .stream(sessions[1].session_id, { index_ids: [index.id], prompt: 'When do claims close?' })
    .asResponse();
  const decoder = new TextDecoder();
  const chunks = [];
  for await (const chunk of response.body) chunks.push(decoder.decode(chunk, { stream: true }));
  return { content_type: response.headers.get('content-type'), chunks: chunks.length, text: chunks.join('') };
});
const history = await step('beta.chat.retrieve', () => client.beta.chat.retrieve(session.session_id));
const summary = await step('beta.chat.getSummary', () =>
  client.beta.chat.getSummary(session.session_id),
);
shape('beta/chat', 'ChatCreateResponse', ...sessions);
shape('beta/chat', 'ChatListResponse', ...listed);
shape('beta/chat', 'ChatRetrieveResponse', history);
shape('beta/chat', 'ChatGetSummaryResponse', summary);
result.chat = {
  created: sessions.map((s) => s.session_id),
  listed: listed.map((s) => s.session_id),
  stream_type: typeof text,
  streamed: sseEvents(text).map((e) => e.type),
  incremental: { ...incremental, events: sseEvents(incremental.text).map((e) => e.type), text: undefined },
  history: history.events.map((e) => e.type),
  answer: history.events.filter((e) => e.type === 'text').map((e) => e.content).join(''),
  summary_title: summary.generated_title,
  summary_has_events: 'events' in summary,
};

// --- deletes --------------------------------------------------------------------------------
await step('beta.chat.delete', () => client.beta.chat.delete(sessions[2].session_id));
await expectNotFound('beta.chat.getSummary (deleted)', () =>
  client.beta.chat.getSummary(sessions[2].session_id),
);
await step('beta.indexes.delete', () => client.beta.indexes.delete(spare.id));
await expectNotFound('beta.indexes.get (deleted)', () => client.beta.indexes.get(spare.id));
await step('beta.directories.files.delete', () =>
  client.beta.directories.files.delete(added.id, { directory_id: directory.id }),
);
const left = await step('beta.directories.files.list (after delete)', () =>
  collect(client.beta.directories.files.list(directory.id)),
);
await step('beta.directories.delete', () => client.beta.directories.delete(scratch.id));
await expectNotFound('beta.directories.get (deleted)', () => client.beta.directories.get(scratch.id));
const other = await step('files.create (to delete)', async () =>
  client.files.create({ file: await toFile(Buffer.from('scratch'), 'scratch.txt'), purpose: 'user_data' }),
);
await step('files.delete', () => client.files.delete(other.id));
await expectNotFound('files.retrieve (deleted)', () => client.files.retrieve(other.id));
result.deleted = { files_left: left.map((f) => f.display_name).sort() };

console.log(`RESULT ${JSON.stringify(result)}`);
