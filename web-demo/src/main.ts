// The demo page: one document per room (?room=NAME), connected to the relay
// that serves the page, with four shared widgets, presence and an offline
// switch.

import init, { Doc, connect, type Connection, type ConnectionStatus } from 'neuroplex';

import { bindTextarea } from './notes';
import { renderPeople, tags, todos, votes, type Person } from './widgets';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

// The .wasm sits next to the bundle (build.mjs copies it there).
await init(new URL('./neuroplex.wasm', import.meta.url));

const params = new URLSearchParams(location.search);
const room = params.get('room')?.trim() || 'lobby';
if (params.get('room') !== room) {
  // Show the room in the address bar, so copying the URL invites people to it.
  params.set('room', room);
  history.replaceState(null, '', `${location.pathname}?${params}`);
}
$('room-name').textContent = room;
document.title = `${room} · Neuroplex demo`;
const syncUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/sync/${encodeURIComponent(room)}`;

const doc = new Doc();

const renderTodos = todos(doc, $('todo-form'), $('todos'), $('todos-empty'));
const renderVotes = votes(doc, $('votes'), [
  ['pizza', 'Pizza'],
  ['sushi', 'Sushi'],
  ['tacos', 'Tacos'],
]);
const renderTags = tags(doc, $('tag-form'), $('tags'));
const renderers: Record<string, () => void> = { todos: renderTodos, votes: renderVotes, tags: renderTags };
for (const render of Object.values(renderers)) render();
doc.on('change', ({ names }) => {
  for (const name of names) renderers[name]?.();
});
bindTextarea(doc, doc.text('notes'), $('notes'));

// Who I am: kept per browser, so a reload keeps name and colour.
const COLORS = ['#d1495b', '#edae49', '#00798c', '#30638e', '#6a4c93', '#2a9d8f', '#e76f51', '#8a5a44'];
const ANIMALS = ['Otter', 'Heron', 'Lynx', 'Marten', 'Puffin', 'Ibex', 'Gecko', 'Wombat'];
const pick = <T,>(a: T[]) => a[crypto.getRandomValues(new Uint32Array(1))[0] % a.length];
const me: Person = loadMe() ?? { name: pick(ANIMALS), color: pick(COLORS) };
function loadMe(): Person | undefined {
  try {
    const v = JSON.parse(localStorage.getItem('neuroplex-demo-me') ?? 'null');
    return v && typeof v.name === 'string' && typeof v.color === 'string' ? v : undefined;
  } catch {
    return undefined; // storage blocked or garbage: a new identity
  }
}
function saveMe() {
  try {
    localStorage.setItem('neuroplex-demo-me', JSON.stringify(me));
  } catch {
    // Storage may be blocked; the name then lasts as long as the tab.
  }
}
const nameInput = $<HTMLInputElement>('my-name');
nameInput.value = me.name;
nameInput.addEventListener('input', () => {
  me.name = nameInput.value.trim() || 'Anonymous';
  saveMe();
  conn?.presence.set(me);
  showPeople();
});
saveMe();

// The connection, or null while switched offline.
let conn: Connection | null = null;
let unsubscribe: (() => void)[] = [];

const statusEl = $('status');
const STATUS_TEXT: Record<ConnectionStatus, string> = {
  connecting: 'Connecting…',
  online: 'Online',
  offline: 'Offline — reconnecting',
};
function showStatus() {
  const status: ConnectionStatus = conn?.status ?? 'offline';
  statusEl.dataset.status = status;
  statusEl.textContent = conn ? STATUS_TEXT[status] : 'Offline — edits are kept';
}

function showPeople() {
  const people = conn ? conn.presence.states() : new Map<number, unknown>();
  const id = conn?.presence.clientId ?? -1;
  people.set(id, { ...me }); // always listed, also while offline
  renderPeople($('people'), people, id, conn?.status === 'online');
}

function goOnline() {
  if (conn) return;
  const c = connect(doc, syncUrl);
  conn = c;
  c.presence.set(me);
  unsubscribe = [
    c.on('status', () => {
      showStatus();
      showPeople();
    }),
    c.presence.on('change', showPeople),
  ];
  showStatus();
  showPeople();
}

function goOffline() {
  const c = conn;
  if (!c) return;
  conn = null;
  for (const off of unsubscribe) off();
  unsubscribe = [];
  // Closing a socket still opening makes the browser log an error: let
  // the attempt finish (or fail) first. Edits made meanwhile stay local
  // until the next connection anyway, or go out on this one; both merge.
  if (c.status === 'connecting') {
    const off = c.on('status', (s) => {
      if (s === 'connecting') return;
      off();
      c.close();
    });
  } else {
    c.close();
  }
  showStatus();
  showPeople();
}

const offline = $<HTMLInputElement>('offline');
offline.checked = false; // a reload starts online, whatever the form kept
offline.addEventListener('change', () => (offline.checked ? goOffline() : goOnline()));
goOnline();
document.body.dataset.ready = 'true';
