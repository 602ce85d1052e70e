// Binds a <textarea> to a shared text.
//
// Local typing becomes the one splice (delete + insert) that turns the old
// value into the new one, so concurrent edits elsewhere in the text survive.
// Remote changes arrive as a delta (retain / insert / delete, as in Yjs); the
// same delta moves this person's caret and selection, so a peer typing
// before the caret pushes it along instead of leaving it at a stale offset.

import type { Doc, Text, TextDelta } from 'neuroplex';

export interface Splice {
  index: number;
  remove: number;
  insert: string;
}

const isHigh = (c: number) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c: number) => c >= 0xdc00 && c <= 0xdfff;

/**
 * The smallest splice turning `before` into `after`. `caret` (in `after`) is
 * where the user's edit ended: when the change is ambiguous (typing "a" into
 * "aa"), the splice is put there, so others see the edit where it was made.
 */
export function diff(before: string, after: string, caret: number): Splice {
  const shortest = Math.min(before.length, after.length);
  // The unchanged tail cannot start before the caret: the edit ends at it.
  const maxSuffix = Math.max(0, Math.min(shortest, after.length - caret));
  let suffix = 0;
  while (
    suffix < maxSuffix &&
    before.charCodeAt(before.length - 1 - suffix) === after.charCodeAt(after.length - 1 - suffix)
  ) {
    suffix++;
  }
  let prefix = 0;
  while (prefix < shortest - suffix && before.charCodeAt(prefix) === after.charCodeAt(prefix)) prefix++;
  // Never split a surrogate pair: the text would hold half an emoji.
  if (prefix > 0 && isHigh(before.charCodeAt(prefix - 1))) prefix--;
  if (suffix > 0 && isLow(before.charCodeAt(before.length - suffix))) suffix--;
  return {
    index: prefix,
    remove: before.length - prefix - suffix,
    insert: after.slice(prefix, after.length - suffix),
  };
}

/**
 * Where position `pos` of the text before a change is after it. A remote
 * insert exactly at `pos` stays after it: the caret keeps its place before
 * what the other person typed there.
 */
export function transform(pos: number, delta: TextDelta[]): number {
  let at = 0; // walks the text as it becomes after each step
  for (const op of delta) {
    if ('retain' in op) {
      at += op.retain;
    } else if ('insert' in op) {
      if (at < pos) pos += op.insert.length;
      at += op.insert.length;
    } else {
      if (at < pos) pos -= Math.min(op.delete, pos - at);
    }
    if (at >= pos) break;
  }
  return pos;
}

/** `s` with `delta` applied, or undefined if the delta does not fit `s`. */
export function applyDelta(s: string, delta: TextDelta[]): string | undefined {
  let out = '';
  let i = 0;
  for (const op of delta) {
    if ('retain' in op) {
      if (i + op.retain > s.length) return undefined;
      out += s.slice(i, i + op.retain);
      i += op.retain;
    } else if ('insert' in op) {
      out += op.insert;
    } else {
      if (i + op.delete > s.length) return undefined;
      i += op.delete;
    }
  }
  return out + s.slice(i);
}

/** Keeps `area` and `text` equal both ways; returns the function that unbinds. */
export function bindTextarea(doc: Doc, text: Text, area: HTMLTextAreaElement): () => void {
  // What the textarea showed after the last change we know of, local or not.
  let shown = text.toString();
  area.value = shown;
  // Set while our own splice is committed, so its change event is skipped.
  let applyingOwn = false;

  const onInput = () => {
    const now = area.value;
    if (now === shown) return;
    const { index, remove, insert } = diff(shown, now, area.selectionEnd);
    shown = now;
    applyingOwn = true;
    try {
      // transact commits before it returns, so the change event of our own
      // splice comes while applyingOwn is set.
      doc.transact(() => {
        if (remove > 0) text.delete(index, remove);
        if (insert) text.insert(index, insert);
      });
    } finally {
      applyingOwn = false;
    }
  };

  // Every change we did not type: a peer's, or our own undo / redo.
  const unobserve = text.observe(({ delta }) => {
    if (applyingOwn) return;
    let next = applyDelta(shown, delta);
    if (next === undefined) next = text.toString(); // out of step: take the whole text
    const { selectionStart, selectionEnd, selectionDirection, scrollTop } = area;
    const start = Math.min(transform(selectionStart, delta), next.length);
    const end = Math.min(transform(selectionEnd, delta), next.length);
    shown = next;
    area.value = next;
    area.setSelectionRange(start, end, selectionDirection ?? undefined);
    area.scrollTop = scrollTop;
  });

  // The browser's own undo stack knows nothing of remote edits: use the
  // document's, which undoes only this person's changes.
  const onKey = (e: KeyboardEvent) => {
    if (!(e.ctrlKey || e.metaKey) || e.altKey) return;
    const key = e.key.toLowerCase();
    const redo = (key === 'z' && e.shiftKey) || key === 'y';
    if (key !== 'z' && !redo) return;
    e.preventDefault();
    if (redo) doc.redo();
    else doc.undo();
  };

  area.addEventListener('input', onInput);
  area.addEventListener('keydown', onKey);
  return () => {
    unobserve();
    area.removeEventListener('input', onInput);
    area.removeEventListener('keydown', onKey);
  };
}
