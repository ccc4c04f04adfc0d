/**
 * How values cross the database wire beyond postgres.js's defaults: int8 as exact JS integers, and arrays
 * of the built-in types without asking the server for its array types.
 *
 * postgres.js learns array types by querying pg_type on every new connection (`fetch_types`): one more round
 * trip before a new isolate's first query, and ≈3 MiB of its memory (issue #14). The element and array OIDs
 * of PostgreSQL's built-in types are fixed (pg_type.dat), so they are a table here instead and the fetch is
 * off. An array of a type not listed (an enum, a composite, a domain) arrives as its text literal: select it
 * as `to_jsonb(…)` instead. As parameters, plain JS arrays are sent as array literals whenever the server
 * types the parameter as one of these (`${ids}::uuid[]`).
 */

/** int8 (bigint) columns hold money in minor units; they arrive as exact JS integers or fail loudly. */
function parseInt8(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) {
    throw new RangeError(`int8 value ${text} is outside the safe integer range`);
  }
  return value;
}

type Parse = (text: string) => unknown;
type Serialize = (value: unknown) => string;

const asText: Parse = (text) => text;
const asNumber: Parse = (text) => Number(text);
const asDate: Parse = (text) => new Date(text);
const asJson: Parse = (text) => JSON.parse(text);
const fromValue: Serialize = (value) => String(value);
const fromDate: Serialize = (value) =>
  (value instanceof Date ? value : new Date(value as string)).toISOString();

/**
 * Each built-in element type's OID and its array's, with the codecs postgres.js uses for the scalar (so an
 * element reads as the same column would): [element OID, array OID, parse, serialize].
 */
const builtInArrays: Record<string, readonly [number, number, Parse, Serialize]> = {
  bool: [16, 1000, (text) => text === "t", (value) => (value === true ? "t" : "f")],
  int2: [21, 1005, asNumber, fromValue],
  int4: [23, 1007, asNumber, fromValue],
  int8: [20, 1016, parseInt8, fromValue],
  float4: [700, 1021, asNumber, fromValue],
  float8: [701, 1022, asNumber, fromValue],
  numeric: [1700, 1231, asText, fromValue],
  text: [25, 1009, asText, fromValue],
  varchar: [1043, 1015, asText, fromValue],
  bpchar: [1042, 1014, asText, fromValue],
  name: [19, 1003, asText, fromValue],
  uuid: [2950, 2951, asText, fromValue],
  json: [114, 199, asJson, (value) => JSON.stringify(value)],
  jsonb: [3802, 3807, asJson, (value) => JSON.stringify(value)],
  date: [1082, 1182, asDate, fromDate],
  timestamp: [1114, 1115, asDate, fromDate],
  timestamptz: [1184, 1185, asDate, fromDate],
};

const quoteElement = (text: string) => `"${text.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;

/** A JS array (nested for more dimensions) as an array literal; anything else is sent as it is. */
function toArrayLiteral(value: unknown, serialize: Serialize): string {
  if (!Array.isArray(value)) return String(value);
  const elements = value.map((element) => {
    if (element === undefined) throw new TypeError("an array parameter holds undefined");
    if (element === null) return "NULL";
    if (Array.isArray(element)) return toArrayLiteral(element, serialize);
    return quoteElement(serialize(element));
  });
  return `{${elements.join(",")}}`;
}

/**
 * An array literal as PostgreSQL writes it (`{a,"b c",NULL,{…}}`, optionally after `[1:2]=` bounds) into
 * nested JS arrays; unquoted NULL is null, a quoted "NULL" the string.
 */
function parseArrayLiteral(text: string, parse: Parse): unknown[] {
  let at = text.startsWith("[") ? text.indexOf("=") + 1 : 0;

  const level = (): unknown[] => {
    if (text[at] !== "{") throw new SyntaxError(`not an array literal: ${text.slice(0, 40)}`);
    at++;
    const items: unknown[] = [];
    if (text[at] === "}") {
      at++;
      return items;
    }
    for (;;) {
      if (text[at] === "{") {
        items.push(level());
      } else if (text[at] === '"') {
        let element = "";
        for (at++; text[at] !== '"'; at++) {
          if (at >= text.length) throw new SyntaxError("unterminated quoted array element");
          if (text[at] === "\\") at++;
          element += text[at];
        }
        at++;
        items.push(parse(element));
      } else {
        const start = at;
        while (at < text.length && text[at] !== "," && text[at] !== "}") at++;
        const element = text.slice(start, at);
        items.push(element.toUpperCase() === "NULL" ? null : parse(element));
      }
      const separator = text[at++];
      if (separator === "}") return items;
      if (separator !== ",") throw new SyntaxError(`malformed array literal: ${text.slice(0, 40)}`);
    }
  };

  return level();
}

interface WireType {
  readonly to: number;
  readonly from: number[];
  readonly parse: Parse;
  readonly serialize: Serialize;
}

/** postgres.js's `types` option: int8 as safe integers, and every array type of the table above. */
export const wireTypes: Record<string, WireType> = {
  int8: { to: 20, from: [20], parse: parseInt8, serialize: fromValue },
  ...Object.fromEntries(
    Object.entries(builtInArrays).map(([name, [, array, parse, serialize]]) => [
      `${name}_array`,
      {
        to: array,
        from: [array],
        parse: (text: string) => parseArrayLiteral(text, parse),
        serialize: (value: unknown) => toArrayLiteral(value, serialize),
      },
    ]),
  ),
};

/**
 * Element OID → array OID, what postgres.js's fetch would have put in `options.shared.typeArrayMap`: with it
 * `sql.array(values)` sends an array of the values' type on a new connection too.
 */
export const arrayTypeOf: Record<number, number> = Object.fromEntries(
  Object.values(builtInArrays).map(([element, array]) => [element, array]),
);
