// A config form generated from the lab's JSON Schema (schemars, draft 2020-12): numbers,
// integers, booleans, strings and enums become inputs; nested objects become fieldsets;
// tagged unions (oneOf with a `type` const) become a variant picker with its fields;
// anything else (arrays such as fault scripts) is edited as JSON.
import type { JsonSchema } from "distlab";

type S = { [key: string]: unknown };
type Value = unknown;

function isObj(v: unknown): v is S {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export class SchemaForm {
  private root: S = {};
  private read: () => Value = () => ({});

  constructor(private form: HTMLFormElement) {}

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

  /** Builds the form for `schema`, filled with `value` (the effective config). */
  build(schema: JsonSchema, value: Value): void {
    this.root = schema as S;
    this.form.replaceChildren();
    this.read = this.field(this.form, "", schema as S, value, "config");
  }

  value(): Value {
    return this.read();
  }

  /** Marks the input of a field named in an error message (`config.network.loss`). */
  markError(message: string): void {
    this.form.querySelectorAll(".field-error").forEach((e) => e.classList.remove("field-error"));
    const m = /`(config(?:\.[A-Za-z0-9_]+|\[\d+\])*)`/.exec(message);
    if (!m) return;
    const path = m[1] ?? "";
    let el: Element | null = null;
    for (let p = path; p && !el; p = p.replace(/(\.[^.[]+|\[\d+\])$/, "")) {
      el = this.form.querySelector(`[data-path="${CSS.escape(p)}"]`);
      if (p === "config") break;
    }
    el?.classList.add("field-error");
  }

  private field(parent: HTMLElement, name: string, raw: S, value: Value, path: string): () => Value {
    const s = this.resolve(raw);
    const title = name || "config";
    const desc = typeof s["description"] === "string" ? (s["description"] as string) : "";
    const types = Array.isArray(s["type"]) ? (s["type"] as string[]) : [s["type"]];
    const variants = (Array.isArray(s["oneOf"]) ? s["oneOf"] : Array.isArray(s["anyOf"]) ? s["anyOf"] : null) as unknown[] | null;

    if (variants && variants.every((v) => this.tagOf(v) !== null)) {
      return this.tagged(parent, title, desc, variants, value, path);
    }
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
    if (types.includes("string")) {
      const input = document.createElement("input");
      input.value = typeof value === "string" ? value : "";
      input.dataset["path"] = path;
      label.append(input);
      return () => input.value;
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

  private tagOf(v: unknown): string | null {
    const s = this.resolve(v);
    const props = s["properties"];
    if (!isObj(props)) return null;
    const t = this.resolve(props["type"]);
    return typeof t["const"] === "string" ? (t["const"] as string) : Array.isArray(t["enum"]) && t["enum"].length === 1 ? String(t["enum"][0]) : null;
  }

  private tagged(parent: HTMLElement, title: string, desc: string, variants: unknown[], value: Value, path: string): () => Value {
    const box = document.createElement("fieldset");
    box.dataset["path"] = path;
    const legend = document.createElement("legend");
    legend.textContent = title;
    legend.title = desc;
    const select = document.createElement("select");
    const current = isObj(value) && typeof value["type"] === "string" ? (value["type"] as string) : null;
    for (const v of variants) {
      const tag = this.tagOf(v) ?? "";
      select.add(new Option(tag, tag, false, tag === current));
    }
    legend.append(" ", select);
    box.append(legend);
    parent.append(box);
    const fields = document.createElement("div");
    box.append(fields);
    let read: () => Value = () => ({});
    const show = (): void => {
      fields.replaceChildren();
      const v = variants.find((x) => this.tagOf(x) === select.value);
      const s = this.resolve(v);
      const props = isObj(s["properties"]) ? (s["properties"] as S) : {};
      const seed = isObj(value) && value["type"] === select.value ? value : {};
      const readers: [string, () => Value][] = [];
      for (const [k, sub] of Object.entries(props)) {
        if (k === "type") continue;
        readers.push([k, this.field(fields, k, sub as S, seed[k], `${path}.${k}`)]);
      }
      read = () => ({ type: select.value, ...Object.fromEntries(readers.map(([k, r]) => [k, r()]).filter(([, x]) => x !== undefined)) });
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
