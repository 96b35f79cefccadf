// Places the server's field paths (`tasks[3].id`, `resources.memory`, `` for the root)
// on the spec's text, using the YAML parser's node ranges.
import { isMap, isScalar, isSeq, parseDocument, type Node } from "yaml";

export type PathSegment = string | number;

export function parsePath(path: string): PathSegment[] {
  const out: PathSegment[] = [];
  const re = /([^.[\]]+)|\[(\d+)\]/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(path))) {
    if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(m[1]);
  }
  return out;
}

export interface Located {
  from: number;
  to: number;
  /** 1-based line of `from`. */
  line: number;
  /** False when the path (or part of it) is absent and an ancestor is shown instead. */
  exact: boolean;
}

export function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

export function locatePath(text: string, path: string): Located {
  const doc = parseDocument(text, { keepSourceTokens: false });
  const segs = parsePath(path);
  let node: unknown = doc.contents;
  let from = 0;
  let to = Math.min(text.length, Math.max(0, text.indexOf("\n") < 0 ? text.length : text.indexOf("\n")));
  const rootRange = (node as Node | null)?.range;
  if (rootRange) {
    from = rootRange[0];
    to = Math.min(rootRange[1], text.indexOf("\n", rootRange[0]) < 0 ? text.length : text.indexOf("\n", rootRange[0]));
  }
  let exact = true;
  for (const seg of segs) {
    if (isMap(node)) {
      const pair = node.items.find((p) => {
        const k = p.key;
        return isScalar(k) ? String(k.value) === String(seg) : String(k) === String(seg);
      });
      if (!pair) {
        exact = false;
        break;
      }
      const k = pair.key as Node | null;
      const v = pair.value as Node | null;
      if (k?.range) {
        from = k.range[0];
        to = v?.range && isScalar(v) ? v.range[1] : k.range[1];
      }
      node = v;
    } else if (isSeq(node) && typeof seg === "number") {
      const item = node.items[seg] as Node | undefined;
      if (!item?.range) {
        exact = false;
        break;
      }
      from = item.range[0];
      const nl = text.indexOf("\n", from);
      to = isScalar(item) ? item.range[1] : nl < 0 ? text.length : nl;
      node = item;
    } else {
      exact = false;
      break;
    }
  }
  if (to < from) to = from;
  return { from, to, line: lineOf(text, from), exact };
}

/** Syntax errors of the YAML itself, with their positions. */
export function yamlSyntaxErrors(text: string): { from: number; to: number; message: string }[] {
  const doc = parseDocument(text);
  return doc.errors.map((e) => ({
    from: e.pos[0],
    to: Math.max(e.pos[1], e.pos[0] + 1),
    message: e.message.split("\n")[0],
  }));
}
