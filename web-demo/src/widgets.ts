// The shared widgets: each renders from the document and writes user
// actions back to it. Lists are reconciled by key, so a remote change never
// replaces the element a person is typing in.

import type { Doc } from 'neuroplex';

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

/** Makes `list`'s children match `keys` in order, reusing the element of each key. */
function reconcile<T extends HTMLElement>(
  list: HTMLElement,
  keys: string[],
  make: (key: string) => T,
  update: (key: string, e: T) => void,
): void {
  const old = new Map<string, T>();
  for (const child of Array.from(list.children) as T[]) old.set(child.dataset.key ?? '', child);
  let prev: Element | null = null;
  for (const key of keys) {
    let e = old.get(key);
    old.delete(key);
    if (!e) {
      e = make(key);
      e.dataset.key = key;
    }
    update(key, e);
    const want: Element | null = prev ? prev.nextElementSibling : list.firstElementChild;
    if (want !== e) list.insertBefore(e, want);
    prev = e;
  }
  for (const e of old.values()) e.remove();
}

/** A key that sorts by creation time, then randomly: todo keys, so the list keeps its order. */
function newKey(): string {
  const rand = crypto.getRandomValues(new Uint32Array(2));
  return Date.now().toString(36).padStart(9, '0') + '-' + Array.from(rand, (n) => n.toString(36)).join('');
}

/** Sets an input's value unless the person is typing in it (their next keystroke wins anyway). */
function setValue(input: HTMLInputElement, value: string): void {
  if (input.value !== value && document.activeElement !== input) input.value = value;
}

/**
 * The todo list: doc.map('todos') holds one map per item (key: newKey()),
 * with the register 'text' and the flag 'done'.
 */
export function todos(doc: Doc, form: HTMLFormElement, list: HTMLUListElement, empty: HTMLElement) {
  const todos = doc.map('todos');
  const input = form.querySelector('input') as HTMLInputElement;
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    todos.map(newKey()).register('text').set(value);
    input.value = '';
  });

  const make = (key: string) => {
    const item = () => todos.map(key);
    const done = el('input', { type: 'checkbox', className: 'done' });
    done.addEventListener('change', () => {
      const flag = item().flag('done');
      if (done.checked) flag.enable();
      else flag.disable();
    });
    const text = el('input', { type: 'text', className: 'text', maxLength: 200 });
    text.addEventListener('input', () => item().register('text').set(text.value));
    // Once the person leaves the field, show what the document holds (a
    // later write by someone else may have won).
    text.addEventListener('blur', () => render());
    const remove = el('button', { type: 'button', className: 'remove', textContent: '×' });
    remove.addEventListener('click', () => todos.remove(key));
    return el('li', {}, done, text, remove);
  };

  const update = (key: string, li: HTMLLIElement) => {
    const item = todos.map(key);
    const value = String(item.register('text').get() ?? '');
    const isDone = item.flag('done').value();
    const [done, text, remove] = li.children as unknown as [HTMLInputElement, HTMLInputElement, HTMLButtonElement];
    done.checked = isDone;
    setValue(text, value);
    li.classList.toggle('is-done', isDone);
    const name = value || 'untitled';
    done.setAttribute('aria-label', `Done: ${name}`);
    text.setAttribute('aria-label', `Todo: ${name}`);
    remove.setAttribute('aria-label', `Remove todo: ${name}`);
  };

  const render = () => {
    const keys = todos.keys();
    reconcile(list, keys, make, update);
    empty.hidden = keys.length > 0;
  };
  return render;
}

/** The vote counters: doc.map('votes') holds one counter per option. */
export function votes(doc: Doc, list: HTMLUListElement, options: [key: string, label: string][]) {
  const votes = doc.map('votes');
  const make = (key: string) => {
    const label = options.find(([k]) => k === key)?.[1] ?? key;
    const count = el('output', { className: 'count', textContent: '0' });
    const up = el('button', { type: 'button', className: 'up', textContent: '+1' });
    up.setAttribute('aria-label', `Vote for ${label}`);
    up.addEventListener('click', () => votes.counter(key).increment());
    const down = el('button', { type: 'button', className: 'down', textContent: '−1' });
    down.setAttribute('aria-label', `Take back a vote for ${label}`);
    down.addEventListener('click', () => votes.counter(key).decrement());
    count.setAttribute('aria-label', `Votes for ${label}`);
    return el('li', {}, el('span', { className: 'option', textContent: label }), count, down, up);
  };
  const update = (key: string, li: HTMLLIElement) => {
    const n = votes.counter(key).value();
    const count = li.querySelector('output') as HTMLOutputElement;
    count.textContent = String(n);
    // Taking back more votes than there are would show a negative count.
    (li.querySelector('.down') as HTMLButtonElement).disabled = n <= 0;
  };
  const render = () => reconcile(list, options.map(([k]) => k), make, update);
  return render;
}

/** The tag set: doc.set('tags') of strings (add-wins). */
export function tags(doc: Doc, form: HTMLFormElement, list: HTMLUListElement) {
  const tags = doc.set('tags');
  const input = form.querySelector('input') as HTMLInputElement;
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    tags.add(value);
    input.value = '';
  });
  const make = (tag: string) => {
    const remove = el('button', { type: 'button', className: 'remove', textContent: '×' });
    remove.setAttribute('aria-label', `Remove tag ${tag}`);
    remove.addEventListener('click', () => tags.remove(tag));
    return el('li', {}, el('span', { textContent: tag }), remove);
  };
  const render = () =>
    reconcile(
      list,
      tags.values().filter((v): v is string => typeof v === 'string'),
      make,
      () => {},
    );
  return render;
}

export interface Person {
  name: string;
  color: string;
}

/** The presence list: `people` maps presence ids to states; `me` is ours. */
export function renderPeople(list: HTMLUListElement, people: Map<number, unknown>, me: number | undefined, online: boolean) {
  const entries = [...people]
    .filter((e): e is [number, Person] => isPerson(e[1]))
    .sort(([a, pa], [b, pb]) => (a === me ? -1 : b === me ? 1 : pa.name.localeCompare(pb.name) || a - b));
  reconcile(
    list,
    entries.map(([id]) => String(id)),
    () => el('li', {}, el('span', { className: 'dot' }), el('span', { className: 'name' })),
    (key, li) => {
      const person = people.get(Number(key)) as Person;
      const you = Number(key) === me;
      (li.firstElementChild as HTMLElement).style.background = person.color;
      li.lastElementChild!.textContent = you ? `${person.name} (you${online ? '' : ', offline'})` : person.name;
    },
  );
}

function isPerson(v: unknown): v is Person {
  // Anyone in the room can announce anything: accept only a name and a #rrggbb colour.
  const p = v as Person;
  return typeof v === 'object' && v !== null && typeof p.name === 'string' && /^#[0-9a-f]{6}$/i.test(String(p.color));
}
