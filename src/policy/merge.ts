type Plain = Record<string, unknown>;

const isPlain = (v: unknown): v is Plain => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Merges policy layers (presets, then the file, then flags): objects merge key by key, lists add up
 * without repeats, anything else is overridden by the later layer.
 */
export function mergeLayers(...layers: unknown[]): Plain {
  let out: Plain = {};
  for (const layer of layers) if (isPlain(layer)) out = mergeTwo(out, layer);
  return out;
}

function mergeTwo(base: Plain, over: Plain): Plain {
  const out: Plain = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prior = out[key];
    if (Array.isArray(prior) && Array.isArray(value)) out[key] = [...new Set([...prior, ...value])];
    else if (isPlain(prior) && isPlain(value)) out[key] = mergeTwo(prior, value);
    else out[key] = value;
  }
  return out;
}
