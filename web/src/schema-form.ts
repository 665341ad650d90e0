// A form generated from a JSON Schema (schemars, draft 2020-12), for a lab's config or for
// one of its actions: numbers, integers, booleans, strings and enums become inputs (a
// string marked `contentMediaType`, such as a pasted history, a text area that keeps its
// newlines); nested objects become fieldsets; tagged unions (oneOf with a string const
// tag, `type` or another, possibly a union of such unions, as a cluster lab's faults and
// own actions are) become a variant picker with its fields; anything else (arrays such as
// fault scripts) is edited as JSON.
import type { JsonSchema } from "distlab";

type S = { [key: string]: unknown };
type Value = unknown;

function isObj(v: unknown): v is S {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A tagged union: its tag's name and its variants, flattened (each with the name of the
 * union it came from, when it came from a nested one). */
interface Union {
  tag: string;
  variants: { schema: S; group: string | null }[];
}

export class SchemaForm {
  private root: S = {};
  private read: () => Value = () => ({});
  /** Values that prefill the root union's variants (a lab's example actions). */
  private examples: Value[] = [];

  /** `rootName` is what the lab's errors call the whole value: `config`, `action`. */
  constructor(private form: HTMLFormElement, private rootName = "config") {}

  private resolve(s: unknown): S {
    let cur: unknown = s;
    for (let i = 0; i < 16 && isObj(cur) && typeof cur["$ref"] === "string"; i++) {
      const path = (cur["$ref"] as string).replace(/^#\//, "").split("/");
      let t: unknown = this.root;
      for (const p of path) t = isObj(t) ? t[p] : undefined;
      cur = t;
    }
    if (isObj(cur) && Array.isArray(cur["allOf"]) && cur["allOf"].length === 1) {
      return { ...this.resolve(cur["allOf"][0]), ...cur, allOf: undefined };
    }
    return isObj(cur) ? cur : {};
  }

  /** Builds the form for `schema`, filled with `value` (the effective config, an action);
   * when the root is a tagged union, picking a variant fills it from the first of
   * `examples` with that tag, if any. */
  build(schema: JsonSchema, value: Value, examples: Value[] = []): void {
    this.root = schema as S;
    this.examples = examples;
    this.form.replaceChildren();
    this.read = this.field(this.form, "", schema as S, value, this.rootName);
  }

  value(): Value {
    return this.read();
  }

  /** Marks the input of a field named in an error message (`config.network.loss`,
   * `action.to`); an empty message clears the marks. */
  markError(message: string): void {
    this.form.querySelectorAll(".field-error").forEach((e) => e.classList.remove("field-error"));
    const root = this.rootName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const m = new RegExp(`\`(${root}(?:\\.[A-Za-z0-9_]+|\\[\\d+\\])*)\``).exec(message);
    if (!m) return;
    const path = m[1] ?? "";
    let el: Element | null = null;
    for (let p = path; p && !el; p = p.replace(/(\.[^.[]+|\[\d+\])$/, "")) {
      el = this.form.querySelector(`[data-path="${CSS.escape(p)}"]`);
      if (p === this.rootName) break;
    }
    el?.classList.add("field-error");
  }

  private field(parent: HTMLElement, name: string, raw: S, value: Value, path: string): () => Value {
    const s = this.resolve(raw);
    const title = name || this.rootName;
    const desc = typeof s["description"] === "string" ? (s["description"] as string) : "";
    const types = Array.isArray(s["type"]) ? (s["type"] as string[]) : [s["type"]];
    const variants = (Array.isArray(s["oneOf"]) ? s["oneOf"] : Array.isArray(s["anyOf"]) ? s["anyOf"] : null) as unknown[] | null;
    // Nothing given: the schema's default (an action's optional field, say).
    if (value === undefined && "default" in s) value = s["default"];

    const union = this.union(s);
    if (union) return this.tagged(parent, title, desc, union, value, path);
    // An optional structure (Rust's Option of a struct or enum: anyOf its $ref and null): a
    // checkbox says whether it is given, and its fields show only then.
    const isNull = (v: unknown): boolean => isObj(v) && v["type"] === "null";
    const some = variants?.length === 2 && variants.some(isNull) ? variants.find((v) => !isNull(v)) : undefined;
    if (isObj(some) && typeof some["$ref"] === "string") {
      const box = document.createElement("div");
      const label = document.createElement("label");
      label.title = desc;
      const span = document.createElement("span");
      span.textContent = `${title} (set)`;
      const given = document.createElement("input");
      given.type = "checkbox";
      given.checked = value !== null && value !== undefined;
      label.append(span, given);
      const inner = document.createElement("div");
      inner.hidden = !given.checked;
      given.addEventListener("change", () => (inner.hidden = !given.checked));
      box.append(label, inner);
      parent.append(box);
      const read = this.field(inner, name, some, value ?? undefined, path);
      return () => (given.checked ? read() : null);
    }
    if (types.includes("object") && isObj(s["properties"])) {
      const box = name ? document.createElement("fieldset") : parent;
      if (name) {
        const legend = document.createElement("legend");
        legend.textContent = name;
        legend.title = desc;
        box.append(legend);
        box.dataset["path"] = path;
        parent.append(box);
      }
      const readers: [string, () => Value][] = [];
      const v = isObj(value) ? value : {};
      for (const [k, sub] of Object.entries(s["properties"] as S)) {
        readers.push([k, this.field(box, k, sub as S, v[k], `${path}.${k}`)]);
      }
      return () => Object.fromEntries(readers.map(([k, r]) => [k, r()]).filter(([, x]) => x !== undefined));
    }
    const label = document.createElement("label");
    label.title = desc;
    const span = document.createElement("span");
    span.textContent = title;
    label.append(span);
    parent.append(label);
    if (types.includes("boolean")) {
      const input = document.createElement("input");
      input.type = "checkbox";
      input.checked = value === true;
      input.dataset["path"] = path;
      label.append(input);
      return () => input.checked;
    }
    if (types.includes("integer") || types.includes("number")) {
      const input = document.createElement("input");
      input.type = "number";
      input.step = types.includes("integer") ? "1" : "any";
      if (typeof s["minimum"] === "number") input.min = String(s["minimum"]);
      if (typeof s["maximum"] === "number") input.max = String(s["maximum"]);
      input.value = typeof value === "number" ? String(value) : "";
      input.dataset["path"] = path;
      // A number that may be null (Rust's Option): left empty, it is not given.
      if (types.includes("null")) input.placeholder = "null";
      label.append(input);
      return () => (input.value === "" ? undefined : Number(input.value));
    }
    // A string enum, plain or as a oneOf of documented string consts (schemars writes a
    // unit enum with doc comments that way): a select, each option titled by its doc.
    const choices: { value: string; doc: string }[] | null =
      types.includes("string") && Array.isArray(s["enum"])
        ? (s["enum"] as string[]).map((o) => ({ value: o, doc: "" }))
        : variants && variants.every((v) => isObj(v) && typeof v["const"] === "string")
          ? (variants as S[]).map((v) => ({ value: v["const"] as string, doc: typeof v["description"] === "string" ? v["description"] : "" }))
          : null;
    if (choices) {
      const select = document.createElement("select");
      for (const o of choices) {
        const option = new Option(o.value, o.value, false, o.value === value);
        option.title = o.doc;
        select.add(option);
      }
      select.dataset["path"] = path;
      label.append(select);
      return () => select.value;
    }
    // Text of many lines (a pasted history): a text area, read verbatim.
    if (types.includes("string") && typeof s["contentMediaType"] === "string") {
      label.classList.add("wide");
      const area = document.createElement("textarea");
      area.className = "text";
      area.rows = 8;
      area.spellcheck = false;
      area.wrap = "off";
      area.value = typeof value === "string" ? value : "";
      area.dataset["path"] = path;
      label.append(area);
      return () => area.value;
    }
    if (types.includes("string")) {
      const input = document.createElement("input");
      input.value = typeof value === "string" ? value : "";
      input.dataset["path"] = path;
      // A string that may be null (Rust's Option<String>): left empty, it is not given.
      if (types.includes("null")) input.placeholder = "null";
      label.append(input);
      return () => (input.value === "" && types.includes("null") ? undefined : input.value);
    }
    // A union of plain types (an integer or a string, as an edited register value is):
    // one input, read as the first of its types the text fits.
    const plain = variants?.map((v) => this.resolve(v)["type"]);
    if (plain && plain.length > 0 && plain.every((t) => t === "integer" || t === "number" || t === "string")) {
      const input = document.createElement("input");
      input.value = value === undefined || value === null ? "" : String(value);
      input.placeholder = plain.join(" or ");
      input.dataset["path"] = path;
      label.append(input);
      return () => {
        const text = input.value;
        const number = text.trim() === "" ? NaN : Number(text);
        if (plain.includes("integer") && Number.isSafeInteger(number)) return number;
        if (plain.includes("number") && Number.isFinite(number)) return number;
        if (plain.includes("string")) return text;
        throw new Error(`invalid \`${path}\`: expected ${plain.join(" or ")}, got ${JSON.stringify(text)}`);
      };
    }
    // Arrays and anything else: JSON.
    label.classList.add("wide");
    const area = document.createElement("textarea");
    area.value = JSON.stringify(value ?? null, null, 1);
    area.dataset["path"] = path;
    label.append(area);
    return () => {
      try {
        return JSON.parse(area.value) as Value;
      } catch {
        throw new Error(`invalid \`${path}\`: not valid JSON`);
      }
    };
  }

  /** The string const a variant's `key` holds, if it holds one. */
  private constOf(v: S, key: string): string | null {
    const props = v["properties"];
    if (!isObj(props) || props[key] === undefined) return null;
    const t = this.resolve(props[key]);
    return typeof t["const"] === "string" ? (t["const"] as string) : Array.isArray(t["enum"]) && t["enum"].length === 1 ? String(t["enum"][0]) : null;
  }

  /** `s` as a tagged union, if it is one: every variant (after flattening unions of
   * unions, as an untagged union of a lab's faults and its own actions is) an object with
   * one key, the same in all, holding a string const. `type` is preferred as the tag. */
  private union(s: S, depth = 0): Union | null {
    const list = (Array.isArray(s["oneOf"]) ? s["oneOf"] : Array.isArray(s["anyOf"]) ? s["anyOf"] : null) as unknown[] | null;
    if (!list || list.length === 0 || depth > 4) return null;
    const variants: Union["variants"] = [];
    for (const raw of list) {
      const v = this.resolve(raw);
      if (isObj(v["properties"])) {
        variants.push({ schema: v, group: null });
        continue;
      }
      const inner = this.union(v, depth + 1);
      if (!inner) return null;
      const ref = isObj(raw) && typeof raw["$ref"] === "string" ? (raw["$ref"] as string).split("/").pop() ?? null : null;
      variants.push(...inner.variants.map((x) => ({ schema: x.schema, group: x.group ?? ref })));
    }
    const first = variants[0]?.schema["properties"];
    const keys = ["type", ...Object.keys(isObj(first) ? first : {})];
    const tag = keys.find((k) => variants.every((v) => this.constOf(v.schema, k) !== null));
    return tag === undefined ? null : { tag, variants };
  }

  private tagged(parent: HTMLElement, title: string, desc: string, union: Union, value: Value, path: string): () => Value {
    const { tag, variants } = union;
    const isRoot = path === this.rootName;
    const box = document.createElement("fieldset");
    box.dataset["path"] = path;
    const legend = document.createElement("legend");
    legend.textContent = title;
    legend.title = desc;
    const select = document.createElement("select");
    select.setAttribute("aria-label", `${title} ${tag}`);
    select.dataset["tag"] = tag;
    const current = isObj(value) && typeof value[tag] === "string" ? (value[tag] as string) : null;
    const groups = new Map<string, HTMLOptGroupElement>();
    for (const v of variants) {
      const t = this.constOf(v.schema, tag) ?? "";
      const option = new Option(t, t, false, t === current);
      option.title = typeof v.schema["description"] === "string" ? (v.schema["description"] as string) : "";
      // Variants of nested unions are grouped by the union they came from (`Fault`).
      if (v.group === null) select.add(option);
      else {
        let g = groups.get(v.group);
        if (!g) {
          g = document.createElement("optgroup");
          g.label = v.group;
          groups.set(v.group, g);
          select.append(g);
        }
        g.append(option);
      }
    }
    legend.append(" ", select);
    box.append(legend);
    parent.append(box);
    // The root variant's doc, one line (an action's: what it does).
    const doc = document.createElement("small");
    doc.className = "doc";
    if (isRoot) box.append(doc);
    const fields = document.createElement("div");
    fields.className = "fields";
    box.append(fields);
    let read: () => Value = () => ({});
    const show = (): void => {
      fields.replaceChildren();
      const v = variants.find((x) => this.constOf(x.schema, tag) === select.value)?.schema ?? {};
      doc.textContent = typeof v["description"] === "string" ? (v["description"] as string).replace(/\s*\n\s*/g, " ") : "";
      const props = isObj(v["properties"]) ? (v["properties"] as S) : {};
      const example = isRoot ? this.examples.find((e) => isObj(e) && e[tag] === select.value) : undefined;
      const seed = isObj(value) && value[tag] === select.value ? value : isObj(example) ? example : {};
      const readers: [string, () => Value][] = [];
      for (const [k, sub] of Object.entries(props)) {
        if (k === tag) continue;
        readers.push([k, this.field(fields, k, sub as S, seed[k], `${path}.${k}`)]);
      }
      read = () => ({ [tag]: select.value, ...Object.fromEntries(readers.map(([k, r]) => [k, r()]).filter(([, x]) => x !== undefined)) });
    };
    select.addEventListener("change", show);
    show();
    return () => read();
  }
}

/** Every action `type` a lab's action schema allows. */
export function actionTypes(schema: JsonSchema): Set<string> {
  const out = new Set<string>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (isObj(v)) {
      const props = v["properties"];
      if (isObj(props) && isObj(props["type"])) {
        const t = props["type"];
        if (typeof t["const"] === "string") out.add(t["const"] as string);
        if (Array.isArray(t["enum"])) t["enum"].forEach((x) => typeof x === "string" && out.add(x));
      }
      Object.values(v).forEach(walk);
    }
  };
  walk(schema);
  return out;
}
