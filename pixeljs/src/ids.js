// Random identifiers: event ids and the visitor seed.

// randomWords returns n random 32-bit unsigned integers. crypto.getRandomValues
// exists in every browser that runs ES2017; Math.random only keeps the script
// alive where it does not.
function randomWords(n) {
  const a = new Uint32Array(n);
  try {
    crypto.getRandomValues(a);
  } catch (e) {
    for (let i = 0; i < n; i++) a[i] = Math.random() * 4294967296;
  }
  return a;
}

// hex8 formats a 32-bit word as 8 lowercase hex digits.
const hex8 = (w) => (w + 4294967296).toString(16).slice(1);

// uuid returns a random (version 4) UUID in its lowercase canonical form.
export function uuid() {
  const w = randomWords(4);
  w[1] = (w[1] & 0xffff0fff) | 0x4000; // version 4
  w[2] = (w[2] & 0x3fffffff) | 0x80000000; // variant 10
  const h = hex8(w[0]) + hex8(w[1]) + hex8(w[2]) + hex8(w[3]);
  return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
}

const VID_KEY = '_tw_vid';
const VID_RE = /^\d{12,14}\.\d{10,18}$/;

// visitorSeed returns the visitor seed "<Unix ms>.<10 random digits>", minted
// once and kept in localStorage so every tab of the visitor sends the same one.
// The gateway derives a new _fbp from it. Storage may be missing or throw
// (Safari private mode, blocked storage): the seed then lives for this page.
export function visitorSeed(storage, now) {
  let v;
  try {
    v = storage.getItem(VID_KEY);
  } catch (e) {}
  if (v && VID_RE.test(v)) return v;
  const w = randomWords(2);
  // A non-zero leading digit, then nine: 10 digits, as in Meta's own _fbp.
  v = now + '.' + ((w[0] % 9) + 1) + String(1e9 + (w[1] % 1e9)).slice(1);
  try {
    storage.setItem(VID_KEY, v);
  } catch (e) {}
  return v;
}
