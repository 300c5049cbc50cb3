// Random identifiers: event ids and the visitor seed.

// randomWords returns n random 32-bit unsigned integers, from
// crypto.getRandomValues, which every browser running ES2017 has.
const randomWords = (n) => crypto.getRandomValues(new Uint32Array(n));

// uuid returns a random (version 4) UUID in its lowercase canonical form:
// each 0 and 1 of the template becomes a random hex digit, the 8 one of
// 8 9 a b (the variant), and the 4 (the version) stays.
export const uuid = () =>
  '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, (c) => (c ^ (randomWords(1)[0] & (15 >> (c / 4)))).toString(16));

export const VID_KEY = '_tw_vid';
const VID_RE = /^\d{13}\.\d{10}$/;

// visitorSeed returns the visitor seed "<Unix ms>.<10 random digits>", minted
// once and kept in localStorage so every tab of the visitor sends the same one.
// The gateway derives a new _fbp from it. store(f) calls f with the storage,
// which may be missing or throw (Safari private mode, blocked storage): the
// seed then lives for the page.
let seed;
export const visitorSeed = (store) => {
  let v = store((st) => st.getItem(VID_KEY));
  // 10 digits, the first not 0, as in Meta's own _fbp: 1e9 plus 32 random
  // bits.
  if (!VID_RE.test(v)) {
    v = seed ||= Date.now() + '.' + (1e9 + randomWords(1)[0]);
    store((st) => st.setItem(VID_KEY, v));
  }
  return v;
};
