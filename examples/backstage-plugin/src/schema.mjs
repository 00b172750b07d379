// The spec's JSON Schema (generated from the Rust types by the Harmonix
// core, `harmonix.schema()`) in the two shapes the scaffolder needs:
//
// - `specZod(z)`: a zod schema for the actions' `spec` input (the
//   scaffolder validates step input against it, after createTemplateAction
//   turns it back into JSON Schema);
// - `formSchema(def)`: a self-contained JSON Schema for a template form
//   page (`$ref`s inlined, `null` alternatives and `format`s dropped), as
//   react-jsonschema-form and the template's `ui:*` extraction expect.
//
// Nothing here re-implements validation: the engine validates every spec
// again, with field paths, before doing anything.
import harmonix from '@harmonix/node';

/** @typedef {Record<string, any>} JsonSchema */

/** @type {JsonSchema | undefined} */
let cached;

/** The spec's JSON Schema, from the core. */
export function specJsonSchema() {
  cached ??= harmonix.schema();
  return cached;
}

/**
 * Resolve a local `$ref` (`#/$defs/Name`).
 * @param {JsonSchema} root
 * @param {string} ref
 * @returns {JsonSchema}
 */
function deref(root, ref) {
  const name = ref.replace(/^#\/\$defs\//, '');
  const def = root.$defs?.[name];
  if (!def) throw new Error(`unresolvable $ref ${ref} in the Harmonix spec schema`);
  return def;
}

/**
 * Whether a schema only allows `null`.
 * @param {JsonSchema} s
 */
const isNull = (s) => s && (s.type === 'null' || (Array.isArray(s.type) && s.type.every((t) => t === 'null')));

/**
 * A zod schema for a JSON Schema node.
 * @param {typeof import('zod/v3').z} z
 * @param {JsonSchema} root
 * @param {JsonSchema} s
 * @param {number} depth
 * @returns {import('zod/v3').ZodTypeAny}
 */
function toZod(z, root, s, depth = 0) {
  if (depth > 32) return z.any();
  /** @type {(t: import('zod/v3').ZodTypeAny) => import('zod/v3').ZodTypeAny} */
  const described = (t) => (s.description ? t.describe(s.description) : t);
  if (s.$ref) {
    const { $ref, ...rest } = s;
    const target = deref(root, $ref);
    return described(toZod(z, root, { ...target, ...rest, description: s.description ?? target.description }, depth + 1));
  }
  // Alternatives that only say which of two names must be present (the
  // legacy spelling of `account` / `region`) constrain presence, not
  // shape: the engine checks them; here they are left out.
  /** @param {JsonSchema} o */
  const presenceOnly = (o) => o && typeof o === 'object' && Object.keys(o).every((k) => k === 'required' || k === 'oneOf' || k === 'anyOf') &&
    ['oneOf', 'anyOf'].every((k) => !o[k] || o[k].every(presenceOnly));
  if (Array.isArray(s.allOf) && s.allOf.every(presenceOnly)) {
    const { allOf, ...rest } = s;
    return toZod(z, root, rest, depth + 1);
  }
  for (const key of ['oneOf', 'anyOf']) {
    if (Array.isArray(s[key]) && s[key].every(presenceOnly)) {
      const { [key]: _, ...rest } = s;
      return toZod(z, root, rest, depth + 1);
    }
    if (Array.isArray(s[key])) {
      const options = s[key];
      const nullable = options.some(isNull);
      const rest = options.filter((o) => !isNull(o));
      const consts = rest.every((o) => o.const !== undefined);
      let t;
      if (consts && rest.length > 0) {
        const values = rest.map((o) => o.const);
        t = values.every((v) => typeof v === 'string') && values.length > 0
          ? z.enum(/** @type {[string, ...string[]]} */ (values))
          : z.union(/** @type {any} */ (values.map((v) => z.literal(v))));
      } else if (rest.length === 1) {
        t = toZod(z, root, rest[0], depth + 1);
      } else {
        t = z.union(/** @type {any} */ (rest.map((o) => toZod(z, root, o, depth + 1))));
      }
      return described(nullable ? t.nullable() : t);
    }
  }
  if (Array.isArray(s.allOf)) {
    const [first, ...others] = s.allOf.map((/** @type {JsonSchema} */ o) => toZod(z, root, o, depth + 1));
    return described(others.reduce((acc, o) => z.intersection(acc, o), first ?? z.any()));
  }
  if (s.const !== undefined) return described(z.literal(s.const));
  if (Array.isArray(s.enum)) {
    return described(
      s.enum.length > 0 && s.enum.every((/** @type {unknown} */ v) => typeof v === 'string')
        ? z.enum(/** @type {[string, ...string[]]} */ (s.enum))
        : z.any(),
    );
  }
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  const nullable = types.includes('null');
  const type = types.find((t) => t !== 'null');
  /** @type {import('zod/v3').ZodTypeAny} */
  let t;
  switch (type) {
    case 'object': {
      /** @type {Record<string, import('zod/v3').ZodTypeAny>} */
      const shape = {};
      const required = new Set(s.required ?? []);
      for (const [name, prop] of Object.entries(s.properties ?? {})) {
        const p = toZod(z, root, /** @type {JsonSchema} */ (prop), depth + 1);
        shape[name] = required.has(name) ? p : p.optional();
      }
      let o = z.object(shape);
      if (s.additionalProperties === false) t = o.strict();
      else if (s.additionalProperties && typeof s.additionalProperties === 'object') {
        t = Object.keys(shape).length
          ? o.catchall(toZod(z, root, s.additionalProperties, depth + 1))
          : z.record(z.string(), toZod(z, root, s.additionalProperties, depth + 1));
      } else t = o.passthrough();
      break;
    }
    case 'array': {
      let a = z.array(s.items ? toZod(z, root, s.items, depth + 1) : z.any());
      if (typeof s.minItems === 'number') a = a.min(s.minItems);
      t = a;
      break;
    }
    case 'string': {
      let str = z.string();
      if (typeof s.pattern === 'string') str = str.regex(new RegExp(s.pattern));
      if (typeof s.minLength === 'number') str = str.min(s.minLength);
      if (typeof s.maxLength === 'number') str = str.max(s.maxLength);
      t = str;
      break;
    }
    case 'integer':
    case 'number': {
      let n = type === 'integer' ? z.number().int() : z.number();
      if (typeof s.minimum === 'number') n = n.min(s.minimum);
      if (typeof s.maximum === 'number') n = n.max(s.maximum);
      t = n;
      break;
    }
    case 'boolean':
      t = z.boolean();
      break;
    default:
      t = z.any();
  }
  return described(nullable ? t.nullable() : t);
}

/**
 * The zod schema of a whole spec (`providers`, `environments`).
 * @param {typeof import('zod/v3').z} z
 */
export function specZod(z) {
  const root = specJsonSchema();
  return toZod(z, root, root);
}

/**
 * A self-contained JSON Schema of one `$defs` entry (e.g. `ProviderSpec`)
 * for a form: `$ref`s inlined, `null` alternatives, `format`s and legacy
 * fields (`omit`) dropped; `const` alternatives become an `enum`.
 * @param {string} defName
 * @param {{ omit?: string[] }} [opts]
 * @returns {JsonSchema}
 */
export function formSchema(defName, opts = {}) {
  const root = specJsonSchema();
  const omit = new Set(opts.omit ?? []);
  /** @param {JsonSchema} s @param {number} depth @returns {JsonSchema} */
  const clean = (s, depth) => {
    // Legacy-name alternatives are the engine's to check (see toZod).
    if (Array.isArray(s.allOf)) {
      const { allOf, ...rest } = s;
      s = rest;
    }
    if (depth > 32) return {};
    if (s.$ref) {
      const { $ref, ...rest } = s;
      const target = deref(root, $ref);
      return clean({ ...target, ...rest, description: s.description ?? target.description }, depth + 1);
    }
    /** @type {JsonSchema} */
    const out = {};
    for (const [k, v] of Object.entries(s)) {
      if (k === 'format' || k === '$schema' || k === '$defs' || k === 'title') continue;
      if (k === 'anyOf' || k === 'oneOf') {
        const rest = v.filter((/** @type {JsonSchema} */ o) => !isNull(o)).map((/** @type {JsonSchema} */ o) => clean(o, depth + 1));
        if (rest.length > 0 && rest.every((/** @type {JsonSchema} */ o) => o.const !== undefined)) {
          out.type = 'string';
          out.enum = rest.map((/** @type {JsonSchema} */ o) => o.const);
        } else if (rest.length === 1) {
          Object.assign(out, rest[0], s.description ? { description: s.description } : {});
        } else {
          out[k] = rest;
        }
        continue;
      }
      if (k === 'type' && Array.isArray(v)) {
        const types = v.filter((t) => t !== 'null');
        out.type = types.length === 1 ? types[0] : types;
        continue;
      }
      if (k === 'properties') {
        out.properties = Object.fromEntries(
          Object.entries(v)
            .filter(([name]) => depth > 0 || !omit.has(name))
            .map(([name, p]) => [name, clean(/** @type {JsonSchema} */ (p), depth + 1)]),
        );
        continue;
      }
      if (k === 'required') {
        out.required = v.filter((/** @type {string} */ n) => depth > 0 || !omit.has(n));
        continue;
      }
      if (k === 'items' || k === 'additionalProperties') {
        out[k] = typeof v === 'object' ? clean(v, depth + 1) : v;
        continue;
      }
      out[k] = v;
    }
    return out;
  };
  return clean(deref(root, `#/$defs/${defName}`), 0);
}
