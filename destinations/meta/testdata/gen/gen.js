#!/usr/bin/env node
// gen.js runs Meta's own Node libraries (facebook-nodejs-business-sdk and
// capi-param-builder-nodejs, exact versions pinned in package.json) over a
// fixed set of inputs and writes the JSONL test vectors in ../vectors/.
//
// Run by hand, never in CI:  cd destinations/meta/testdata/gen && npm ci && node gen.js
//
// Determinism: the whole run sees a frozen clock (Date and Date.now return
// CLOCK_MS unless a cookie case sets its own) and Math.random returns a value
// chosen per case (RANDOM by default). Only the `generated` date in the two
// header lines changes between runs.
'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

// ---------------------------------------------------------------------------
// Deterministic clock and randomness, installed before the libraries load.

const CLOCK_MS = Date.UTC(2026, 1, 1); // 2026-02-01T00:00:00Z = 1769904000000
const RANDOM = 0.123456789;
const clock = { now: CLOCK_MS, random: RANDOM };
const RealDate = Date;
class FrozenDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(clock.now);
    else super(...args);
  }
  static now() { return clock.now; }
}
global.Date = FrozenDate;
Math.random = () => clock.random;

// The parameter builder prints some failures with console.error; keep them
// as data instead of noise.
let logs = [];
console.error = (...args) => { logs.push(args.map(String).join(' ')); };

// ---------------------------------------------------------------------------
// Load both libraries. Hash pre-images are captured by wrapping the hash
// function each library calls, so `normalized` is exactly what was hashed.

const modDir = path.join(__dirname, 'node_modules');
const pkgVersion = (name) =>
  JSON.parse(fs.readFileSync(path.join(modDir, name, 'package.json'), 'utf8')).version;

const sdk = require('facebook-nodejs-business-sdk');
const SSU = sdk.ServerSideUtils;
const sdkHashCalls = [];
const sdkToSHA256 = SSU.toSHA256;
SSU.toSHA256 = function (input) {
  sdkHashCalls.push(input);
  return sdkToSHA256.call(this, input);
};

const pbShaModule = require('capi-param-builder-nodejs/src/piiUtil/sha256_with_dependencies_new.js');
const pbHashCalls = [];
const pbSha = pbShaModule.sha256_main;
// PIIUtil destructures sha256_main when it loads, so patch before loading it.
pbShaModule.sha256_main = function (msg, ...rest) {
  pbHashCalls.push(msg);
  return pbSha(msg, ...rest);
};
const { ParamBuilder } = require('capi-param-builder-nodejs');

const SDK = `facebook-nodejs-business-sdk@${pkgVersion('facebook-nodejs-business-sdk')}`;
const PB = `capi-param-builder-nodejs@${pkgVersion('capi-param-builder-nodejs')}`;

function header(extra) {
  return {
    _meta: Object.assign({
      generator: 'gen.js',
      sdk: SDK,
      pb: PB,
      generated: new RealDate().toISOString().slice(0, 10),
      node: process.version,
      sdk_deps: {
        'email-validator': pkgVersion('email-validator'),
        'iso-3166-1': pkgVersion('iso-3166-1'),
        'js-sha256': pkgVersion('js-sha256'),
      },
    }, extra),
  };
}

const sha256hex = (s) => crypto.createHash('sha256').update(Buffer.from(s, 'utf8')).digest('hex');
const errText = (e) => {
  const m = String(e && e.message !== undefined ? e.message : e);
  return m.length > 200 ? m.slice(0, 200) + '…' : m;
};

// ---------------------------------------------------------------------------
// Normalization inputs.

const H64 = 'b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514';
const H32 = '5d41402abc4b2a76b9719d911017c592';
const COMMON = [
  '', '   ', '\u00a0', '\ufeff', '\t\n',
  H64, H64.toUpperCase(), ` ${H64} `, H32, H32.toUpperCase(),
  H64.slice(0, 63), H64 + 'a', H64.replace(/^b/, 'g'),
  H64 + '.AQQCAQMC', H64 + '.BA', H64 + '.ZZ',
];
const huge = (unit) => unit.repeat(Math.ceil(10000 / unit.length)).slice(0, 10000);

const NAMES = [
  'John', '  JOHN  ', 'john', 'Mary Ann', 'Mary-Ann', 'Mary  Ann', "O'Brien", 'O\u2019Brien',
  "d'Artagnan", 'Jean-Luc', 'St. John', 'Smith Jr.', 'Smith, Jr.', 'Dr. Jane', 'J.R.R.',
  'Anne_Marie', 'Anne\u2013Marie', 'Anne\u2011Marie',
  'Jos\u00e9', 'Jose\u0301', 'Val\u00e9ry', '\u00c9MILE', 'E\u0301MILE', 'Zo\u00eb', '\u00d1\u00fa\u00f1ez', 'M\u00fcller', 'Mueller',
  'Stra\u00dfe', 'STRASSE', '\u0141ukasz', '\u00d8yvind', '\u00c6gir', '\u0130nci', 'I\u0307nci',
  '\u039f\u0394\u03a5\u03a3\u03a3\u0395\u0391\u03a3', '\u0414\u043c\u0438\u0442\u0440\u0438\u0439', '\u0414\u041c\u0418\u0422\u0420\u0418\u0419',
  '\u0645\u062d\u0645\u062f', '\u0645\u064f\u062d\u064e\u0645\u064e\u0651\u062f', '\u674e', '\u5c71\u7530', '\uc815', '\uae40\ubbfc\uc900',
  'Nguy\u1ec5n', '\u05d3\u05d5\u05d3', '\u0e2a\u0e21\u0e0a\u0e32\u0e22',
  'A', 'a.b', '123', 'John3', '\ud83d\ude00', 'John \ud83d\ude00', '\u200bJohn', 'Jo\u00adhn', 'John\u3000', '\uff2a\uff4f\uff48\uff4e',
  'Jo\ud800hn',
];

const INPUTS = {
  em: [
    '  John_Smith@Gmail.com ', 'john_smith@gmail.com', 'JOHN@EXAMPLE.COM', 'jane+newsletter@example.com',
    'Jane+Tag@Example.co.uk', 'first.last@sub.example.org', 'a@b.c', 'a@b.co', 'user@localhost',
    'user@[127.0.0.1]', 'user@192.168.0.1', 'no-at-sign.example.com', 'two@@example.com', 'john smith@example.com',
    'john@exa mple.com', 'john@example.com.', '.john@example.com', 'john.@example.com', 'jo..hn@example.com',
    '"quoted"@example.com', 'user@xn--bcher-kva.example', 'user@b\u00fccher.example', 'jos\u00e9@example.com',
    '\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a', 'ivan@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444',
    'x'.repeat(64) + '@example.com', 'x'.repeat(65) + '@example.com', 'u@' + 'd'.repeat(64) + '.com',
    'u@' + 'a'.repeat(60) + '.' + 'b'.repeat(60) + '.' + 'c'.repeat(60) + '.' + 'd'.repeat(60) + '.com',
    'user@example.com\n', '\tuser@example.com\t', '\u00a0user@example.com\u00a0', '\ufeffuser@example.com',
    '\u0085user@example.com', '\u3000user@example.com\u3000', 'user@example.com\u200b',
    'mailto:user@example.com', '<user@example.com>', 'User Name <user@example.com>', 'user@example..com',
    'user@-example.com', 'user@example-.com', 'user_@example.com', 'user%tag@example.com', 'user`@example.com',
    "o'brien@example.ie", 'x@example.c0m', 'x@example.123', 'x@example.c', '\u00c9MILE@EXAMPLE.COM',
    '\u0130nci@example.com', 'K\u212Aelvin@example.com', '\ud83d\ude00@example.com', 'user@example.com,other@example.com',
    'user@EXAMPLE.com', 'USER@example.COM ', huge('a') + '@example.com',
  ],
  ph: [
    '+1 (650) 555-1212', '(650)555-1212', '(650) 555-1212', '650-555-1212', '6505551212', '16505551212', '+16505551212',
    '001 650 555 1212', '0016505551212', '+1.650.555.1212', '650.555.1212', '1-650-555-1212 ext. 123',
    '+1 650 555 1212 x123', '+1 650 555 1212;ext=5', 'tel:+1-650-555-1212', '+44 20 7946 0958',
    '+44 (0)20 7946 0958', '020 7946 0958', '0044 20 7946 0958', '00044 20 7946 0958', '+44 7911 123456',
    '07911 123456', '+49 30 1234567', '030 1234567', '+49 (0) 30 1234567', '+33 1 23 45 67 89', '01 23 45 67 89',
    '+81 3-1234-5678', '03-1234-5678', '+86 138 0013 8000', '+7 (495) 123-45-67', '8 (495) 123-45-67',
    '+91 98765 43210', '+55 11 91234-5678', '+61 2 1234 5678', '+971 50 123 4567', '+353 1 234 5678',
    '1-800-FLOWERS', '1-800-356-9377', '555-1212', '12345', '123456', '1234567', '1234567890123456',
    '12345678901234567', '+', 'abc', 'ABC-DEF-GHIJ',
    '+\u0661 \u0666\u0665\u0660 \u0665\u0665\u0665 \u0661\u0662\u0661\u0662',
    '\u096f\u096e\u096d\u096c\u096b\u096a\u0969\u0968\u0967\u0966',
    '\uff11\uff16\uff15\uff10\uff15\uff15\uff15\uff11\uff12\uff11\uff12',
    '+1\u00a0650\u00a0555\u00a01212', '+1\u2011650\u2011555\u20111212', '+1\u2013650\u2013555\u20131212',
    '+1/650/555/1212', '+1_650_555_1212', '+1*650*555*1212', '650 555 1212 (mobile)', 'PHONE: 650-555-1212',
    'Phone: 650-555-1212', '0000000', '0', '+00 1 650 555 1212', '+0016505551212', '000016505551212',
    '+1 (650) 555-1212 ', '\t+16505551212\n', '+1 650 555 12 12 / 13', huge('5'), 16505551212,
  ],
  fn: NAMES.concat([huge('Ab')]),
  ln: ['Smith', ' SMITH ', 'Smith-Jones', "O'Neil", 'van der Berg', 'Van Der Berg', 'McDonald', 'M\u00fcller-L\u00fcdenscheidt',
    'Garc\u00eda M\u00e1rquez', '\u7530\u4e2d', '\u0418\u0432\u0430\u043d\u043e\u0432', '\u0627\u0644\u0639\u0644\u064a', 'St. Clair',
    'Smith III', 'Smith.'],
  db: [
    '1997-02-16', '19970216', '02/16/1997', '2/16/1997', '16/02/1997', '16.02.1997', '1997/02/16', '1997.02.16',
    '02-16-1997', 'Feb 16 1997', 'February 16, 1997', '16 Feb 1997', '2/16/97', '16/2/97', '97-02-16', '1997-2-16',
    '1997-16-02', '05/06/1997', '06/05/1997', '1997-02-30', '1997-13-01', '13/13/1997', '00/00/0000', '2099-01-01',
    '2027-01-01', '2027-12-31', '2028-01-01', '2026-01-15', '1900-01-01', '1899-12-31', '1850-06-01', '1800-01-01',
    '1799-12-31', '0001-01-01', '1997-02-16T10:20:30Z', '1997-02-16 10:20', '19970216T000000Z', '16021997',
    '02161997', '1997', '1997-02', '97', 'abc', '  1997-02-16  ', '1997 02 16', '1997-02-16-05',
    '\u0661\u0669\u0669\u0667-\u0660\u0662-\u0661\u0666', '\uff11\uff19\uff19\uff17-\uff10\uff12-\uff11\uff16',
    '1997\u5e742\u670816\u65e5', '16-\u0424\u0435\u0432-1997', 19970216,
  ],
  ge: ['f', 'F', 'female', 'Female', 'FEMALE', ' f ', 'm', 'M', 'male', 'Male', ' MALE ', 'woman', 'Woman', 'man', 'boy',
    'girl', 'mr', 'Mr.', 'mrs', 'Ms.', "ma'am", 'he', 'she', 'x', 'X', 'other', 'non-binary', 'nonbinary', 'u',
    'unknown', 'fem', 'femme', 'F.', 'f-', 'm/f', 'mf', 'fe male', 'm\u00e4nnlich', 'weiblich', 'h', 'mujer', 'hombre',
    '\u5973', '\u7537', '1', '0', 'f\u200b', '\uff26'],
  ct: ['New York', 'new york', 'NEW-YORK', 'newyork', 'New York City', 'San Francisco', 'St. Louis', 'Saint-\u00c9tienne',
    'Saint-E\u0301tienne', 'S\u00e3o Paulo', 'Z\u00fcrich', 'M\u00fcnchen', 'Krak\u00f3w', 'K\u00f6ln', 'Ho Chi Minh City',
    'Winston-Salem', "Coeur d'Alene", 'Washington, D.C.', 'Washington D.C.', 'London', '\u041c\u043e\u0441\u043a\u0432\u0430',
    '\u5317\u4eac', '\u6771\u4eac', '\u0627\u0644\u0642\u0627\u0647\u0631\u0629', 'Tel Aviv-Yafo', '10115 Berlin',
    'Berlin 10115', 'District 9', '29 Palms', 'Twentynine Palms', "L'Aquila", "'s-Hertogenbosch", 'Reykjav\u00edk',
    '\u0130stanbul', '\u00c5lesund', 'K\u00f8benhavn', 'San Jos\u00e9', 'Fort Worth/Dallas', 'Stratford-upon-Avon',
    'Ciudad de M\u00e9xico', 'Frankfurt am Main', 'Frankfurt (Oder)', huge('City ')],
  st: ['CA', 'ca', 'California', 'CALIFORNIA', ' california ', 'Calif.', 'New York', 'NY', 'new-york', 'North Carolina',
    'West Virginia', 'Virginia', 'Kansas', 'Arkansas', 'District of Columbia', 'DC', 'D.C.', 'Puerto Rico', 'PR',
    'Ontario', 'ON', 'Quebec', 'Qu\u00e9bec', 'British Columbia', 'Bavaria', 'Bayern', '\u00cele-de-France', 'England',
    'Scotland', 'Greater London', 'Tokyo', '\u6771\u4eac\u90fd', '\u041c\u043e\u0441\u043a\u0432\u0430', 'NSW',
    'New South Wales', 'Texas ', 'TX.', 'T.X.', 'Tex', 'Mass.', 'Massachusetts', 'Washington', 'Washington State',
    'State of Washington', 'a', '1', '12', 'Nordrhein-Westfalen', 'S\u00e3o Paulo', 'Kansas City', 'Arkansas Pass'],
  zp: ['94103', '94103-1234', '941031234', '94103 1234', ' 94103 ', '02134', '2134', 'SW1A 1AA', 'SW1A1AA', 'sw1a 1aa',
    'M1 1AE', 'EC1A 1BB', 'W1A 0AX', 'K1A 0B1', 'K1A0B1', 'k1a 0b1', 'H0H 0H0', '10115', '75008', '100-0001',
    '1000001', '01310-100', '110001', '2000', '1010', 'D02 X285', 'NL 1012 AB', '1012 AB', '1012AB', '9410', '9', 'A',
    '94103\u20101234', '94103\u20131234', 'ABC-123', '-12345', '94103.1234', 'ZIP: 94103', '\u0669\u0664\u0661\u0660\u0663',
    '\uff19\uff14\uff11\uff10\uff13', '94103\u00a01234', huge('9'), 94103],
  country: ['US', 'us', 'us ', 'USA', 'usa', 'U.S.', 'U.S.A.', 'United States', 'united states',
    'United States of America', 'America', 'GB', 'gb', 'UK', 'uk', 'Great Britain', 'United Kingdom', 'England',
    'Deutschland', 'Germany', 'DE', 'de', 'DEU', '\u00d6sterreich', 'Austria', 'France', 'FR', 'Fra', 'Japan', '\u65e5\u672c',
    '\u0420\u043e\u0441\u0441\u0438\u044f', 'Russia', 'Brasil', 'Brazil', 'Espa\u00f1a', 'Spain',
    "C\u00f4te d'Ivoire", 'Ivory Coast', 'Korea', 'South Korea', 'XX', 'ZZ', 'EU', 'u', '1', 'Canada', 'CA',
    'India', 'IND', 'IN', 'Georgia', 'GE', 'Netherlands', 'The Netherlands', 'Holland', 'NL', 'Nederland',
    '\uff35\uff33', 'U S'],
  external_id: ['cust-9', 'CUST-9', '  cust-9  ', 'Cust 9', 'a\tb', '12345', '0012345',
    '3f0c9a2e-5b1d-4c3e-9f1a-2b3c4d5e6f70', '3F0C9A2E-5B1D-4C3E-9F1A-2B3C4D5E6F70', 'user@example.com',
    'User@Example.com', '\ud83d\ude00', 'Jos\u00e9', 'Jose\u0301', 'ID:ABC/123?x=1', '1732752000000.482913756104',
    huge('x'), 12345],
};
for (const f of Object.keys(INPUTS)) INPUTS[f] = INPUTS[f].concat(COMMON);

// SDK-only sub-fields (UserData.f5first etc.); the parameter builder has no equivalent.
const SDK_SUB = {
  f5first: ['Johnathan', 'Jo', '  JOHNATHAN ', 'Jos\u00e9 Luis', '\u00c9milie', '\ud83d\ude00\ud83d\ude00\ud83d\ude00', '', H64],
  f5last: ['Smithson', 'Li', ' MacDonald ', 'M\u00fcller'],
  fi: ['John', '\u00e9lise', '\u00c9lise', ' j', '\ud83d\ude00x', H64],
  dobd: ['5', '05', '31', '32', '0', '1a', '005'],
  dobm: ['2', '02', '12', '13', '0', 'feb'],
  doby: ['1997', '97', '19970', 'abcd', ' 1997 '],
};

const SDK_MULTI = {
  em: 'emails', ph: 'phones', ge: 'genders', db: 'dates_of_birth', fn: 'first_names', ln: 'last_names',
  ct: 'cities', st: 'states', zp: 'zips', country: 'countries', external_id: 'external_ids',
};
const PB_TYPE = {
  em: 'email', ph: 'phone', ge: 'gender', db: 'date_of_birth', fn: 'first_name', ln: 'last_name',
  ct: 'city', st: 'state', zp: 'zip_code', country: 'country', external_id: 'external_id',
};

// runSDK feeds one value through UserData.normalize(), the path the SDK takes
// when it builds a request.
function runSDK(field, input) {
  sdkHashCalls.length = 0;
  const ud = new sdk.UserData();
  let out;
  try {
    if (SDK_MULTI[field]) ud[SDK_MULTI[field]] = [input];
    else ud[field] = input;
    out = ud.normalize();
  } catch (e) {
    return { error: errText(e) };
  }
  let sent = out[field];
  if (Array.isArray(sent)) sent = sent[0];
  if (sent === undefined) sent = null;
  const r = {};
  if (sdkHashCalls.length > 0) {
    r.normalized = sdkHashCalls[0];
    r.hash = sent;
    if (r.normalized !== null && sent !== null && sha256hex(r.normalized) !== sent) r.hash_is_not_sha256_of_utf8 = true;
  } else if (field === 'external_id') {
    r.normalized = null;
    r.hash = null;
    r.unhashed = true;
  } else {
    r.normalized = null;
    r.hash = sent;
    if (sent !== null) r.passthrough = true;
  }
  r.sent = sent;
  return r;
}

// runPB feeds one value through ParamBuilder.getNormalizedAndHashedPII.
function runPB(field, input) {
  pbHashCalls.length = 0;
  logs = [];
  let ret;
  try {
    ret = new ParamBuilder().getNormalizedAndHashedPII(input, PB_TYPE[field]);
  } catch (e) {
    return { error: errText(e) };
  }
  const r = {};
  if (ret === null || ret === undefined) {
    r.normalized = null;
    r.hash = null;
  } else {
    const dot = ret.indexOf('.');
    r.normalized = pbHashCalls.length > 0 ? pbHashCalls[0] : null;
    r.hash = dot >= 0 ? ret.slice(0, dot) : ret;
    r.appendix = dot >= 0 ? ret.slice(dot + 1) : null;
    if (pbHashCalls.length === 0) r.passthrough = true;
    else if (sha256hex(r.normalized) !== r.hash) r.hash_is_not_sha256_of_utf8 = true;
  }
  r.sent = ret === undefined ? null : ret;
  if (logs.length) r.log = logs.slice();
  return r;
}

// ---------------------------------------------------------------------------
// docsRule is tagway's literal reading of Meta's customer-information table
// (reference meta-capi.md section 5). It is NOT Meta code; it exists so the
// vectors can count where each library departs from the documented rules.

const US_STATES = {
  alabama: 'al', alaska: 'ak', arizona: 'az', arkansas: 'ar', california: 'ca', colorado: 'co', connecticut: 'ct',
  delaware: 'de', districtofcolumbia: 'dc', florida: 'fl', georgia: 'ga', hawaii: 'hi', idaho: 'id', illinois: 'il',
  indiana: 'in', iowa: 'ia', kansas: 'ks', kentucky: 'ky', louisiana: 'la', maine: 'me', maryland: 'md',
  massachusetts: 'ma', michigan: 'mi', minnesota: 'mn', mississippi: 'ms', missouri: 'mo', montana: 'mt',
  nebraska: 'ne', nevada: 'nv', newhampshire: 'nh', newjersey: 'nj', newmexico: 'nm', newyork: 'ny',
  northcarolina: 'nc', northdakota: 'nd', ohio: 'oh', oklahoma: 'ok', oregon: 'or', pennsylvania: 'pa',
  rhodeisland: 'ri', southcarolina: 'sc', southdakota: 'sd', tennessee: 'tn', texas: 'tx', utah: 'ut',
  vermont: 'vt', virginia: 'va', washington: 'wa', westvirginia: 'wv', wisconsin: 'wi', wyoming: 'wy',
};
const COUNTRY_NAMES = {
  unitedstates: 'us', unitedstatesofamerica: 'us', usa: 'us', us: 'us', america: 'us', unitedkingdom: 'gb',
  greatbritain: 'gb', uk: 'gb', england: 'gb', deutschland: 'de', germany: 'de', deu: 'de', osterreich: 'at',
  austria: 'at', france: 'fr', fra: 'fr', japan: 'jp', russia: 'ru', brasil: 'br', brazil: 'br', espana: 'es',
  spain: 'es', cotedivoire: 'ci', ivorycoast: 'ci', southkorea: 'kr', canada: 'ca', india: 'in', ind: 'in',
  georgia: 'ge', netherlands: 'nl', thenetherlands: 'nl', holland: 'nl', nederland: 'nl',
};
const ISO2 = new Set(require('iso-3166-1').all().map((c) => c.alpha2.toLowerCase()));
const asciiFold = (s) => s.normalize('NFD').replace(/\p{M}/gu, '');

function docsRule(field, input) {
  if (typeof input !== 'string') input = String(input);
  const t = input.trim();
  if (t === '') return null;
  if (/^[0-9a-f]{64}$/i.test(t)) return t.toLowerCase(); // already hashed: sent as is
  const lc = t.toLowerCase();
  switch (field) {
    case 'em': // trim, lowercase
      return lc;
    case 'ph': { // remove symbols, letters and leading zeros
      const d = lc.replace(/[^0-9]/g, '').replace(/^0+/, '');
      return d || null;
    }
    case 'fn': case 'ln': { // lowercase, no punctuation; UTF-8 kept
      const s = lc.replace(/[\p{P}\p{S}]/gu, '');
      return s.trim() || null;
    }
    case 'db': { // YYYYMMDD, year 1900..now; the documented example reads M/D/YYYY
      let y, m, d, g;
      if ((g = /^(\d{4})[-/.]?(\d{1,2})[-/.]?(\d{1,2})$/.exec(t))) [y, m, d] = [g[1], g[2], g[3]];
      else if ((g = /^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$/.exec(t))) {
        [m, d, y] = [g[1], g[2], g[3]];
        if (+m > 12) [m, d] = [d, m];
      } else return null;
      y = +y; m = +m; d = +d;
      const dt = new RealDate(RealDate.UTC(y, m - 1, d));
      if (y < 1900 || dt.getTime() > CLOCK_MS || dt.getUTCMonth() !== m - 1 || dt.getUTCDate() !== d) return null;
      return String(y) + String(m).padStart(2, '0') + String(d).padStart(2, '0');
    }
    case 'ge': // f or m
      if (lc === 'f' || lc === 'female') return 'f';
      if (lc === 'm' || lc === 'male') return 'm';
      return null;
    case 'ct': { // lowercase, no punctuation, no special characters, no spaces
      const s = lc.replace(/[^\p{L}\p{M}\p{N}]/gu, '');
      return s || null;
    }
    case 'st': { // US: 2-letter code; elsewhere lowercase, no punctuation/special/spaces
      const s = lc.replace(/[^\p{L}\p{M}\p{N}]/gu, '');
      if (US_STATES[s]) return US_STATES[s];
      return s || null;
    }
    case 'zp': { // lowercase, no spaces, no dash; US: first 5 digits
      if (/^\d{5}(-?\d{4}|\s\d{4})?$/.test(t)) return t.slice(0, 5);
      const s = lc.replace(/[\s-]/g, '');
      return s || null;
    }
    case 'country': { // lowercase ISO 3166-1 alpha-2
      const s = asciiFold(lc).replace(/[^a-z]/g, '');
      if (COUNTRY_NAMES[s]) return COUNTRY_NAMES[s];
      return s.length === 2 && ISO2.has(s) ? s : null;
    }
    case 'external_id': // any advertiser id, no normalization documented
      return t;
  }
  return null;
}

// ---------------------------------------------------------------------------
// Cookie (fbc / fbp) cases, run through ParamBuilder.processRequestFromContext
// with a fake Node request. Each case gets a fresh ParamBuilder.

const T0 = CLOCK_MS;
const OLD = 1700000000000;
const APX_NO_CHANGE = 'AQQAAQMC';
const CASES = [
  { name: 'new visitor, no fbclid', host: 'shop.example.com', url: '/' },
  { name: 'new visitor, apex host', host: 'example.com', url: '/' },
  { name: 'new visitor, www host', host: 'www.example.com', url: '/p' },
  { name: 'new visitor, 4-label host', host: 'a.b.example.com', url: '/' },
  { name: 'co.uk without resolver (first label dropped)', host: 'example.co.uk', url: '/' },
  { name: 'www co.uk without resolver', host: 'www.example.co.uk', url: '/' },
  { name: 'co.uk with domain list', host: 'www.example.co.uk', url: '/', domains: ['example.co.uk'] },
  { name: 'domain list with scheme and port', host: 'shop.example.co.uk', url: '/', domains: ['https://example.co.uk:443'] },
  { name: 'domain list not matching', host: 'shop.other.com', url: '/', domains: ['example.co.uk'] },
  { name: 'resolver object', host: 'www.shop.example.co.uk', url: '/', resolver: 'example.co.uk' },
  { name: 'host with port', host: 'www.example.com:8443', url: '/' },
  { name: 'uppercase host', host: 'WWW.Example.COM', url: '/' },
  { name: 'host with trailing dot', host: 'www.example.com.', url: '/' },
  { name: 'single-label host', host: 'localhost', url: '/' },
  { name: 'localhost with port', host: 'localhost:3000', url: '/' },
  { name: 'IPv4 host with port', host: '203.0.113.7:8080', url: '/' },
  { name: 'IPv6 host bracketed with port', host: '[2001:db8::1]:8080', url: '/' },
  { name: 'empty host', host: '', url: '/' },
  { name: 'fbclid in URL', host: 'www.example.com', url: '/p?fbclid=IwAR2xYz_AbC-123' },
  { name: 'fbclid in URL, apex', host: 'example.com', url: '/?utm_source=fb&fbclid=IwAR2xYz' },
  { name: 'fbclid empty', host: 'www.example.com', url: '/p?fbclid=' },
  { name: 'fbclid percent-encoded', host: 'www.example.com', url: '/p?fbclid=a%2Bb%2Fc%3D' },
  { name: 'fbclid with plus (decoded to space)', host: 'www.example.com', url: '/p?fbclid=a+b' },
  { name: 'fbclid repeated (last wins)', host: 'www.example.com', url: '/p?fbclid=FIRST&fbclid=SECOND' },
  { name: 'FBCLID uppercase key ignored', host: 'www.example.com', url: '/p?FBCLID=upper' },
  { name: 'fbclid containing dots', host: 'www.example.com', url: '/p?fbclid=abc.def', then: true },
  { name: 'fbclid in fragment ignored', host: 'www.example.com', url: '/p#fbclid=frag' },
  { name: 'fbclid only in Referer', host: 'www.example.com', url: '/p', referer: 'https://www.example.com/landing?fbclid=REF123' },
  { name: 'fbclid in URL and Referer (URL wins)', host: 'www.example.com', url: '/p?fbclid=URL1', referer: 'https://x.example/?fbclid=REF1' },
  { name: 'Referer without scheme', host: 'www.example.com', url: '/p', referer: 'www.example.com/?fbclid=NOSCHEME' },
  { name: 'Referer from l.facebook.com (fbclid nested in u=)', host: 'www.example.com', url: '/p', referer: 'https://l.facebook.com/l.php?u=https%3A%2F%2Fwww.example.com%2F%3Ffbclid%3DNESTED' },
  { name: 'Referer unparsable (throws)', host: 'www.example.com', url: '/p', referer: 'http://[bad' },
  { name: 'Referer without fbclid', host: 'www.example.com', url: '/p', referer: 'https://www.google.com/' },
  { name: 'valid 4-part _fbp gets no-change appendix', host: 'www.example.com', url: '/', cookie: `_fbp=fb.1.${OLD}.1234567890` },
  { name: 'valid 5-part _fbp (v2 appendix) kept', host: 'www.example.com', url: '/', cookie: `_fbp=fb.1.${OLD}.1234567890.${APX_NO_CHANGE}` },
  { name: 'valid 5-part _fbp (legacy BA token) kept', host: 'www.example.com', url: '/', cookie: `_fbp=fb.1.${OLD}.1234567890.BA` },
  { name: '_fbp with unknown 2-char token replaced', host: 'www.example.com', url: '/', cookie: `_fbp=fb.1.${OLD}.1234567890.ZZ` },
  { name: '_fbp with 8-char appendix, language 7', host: 'www.example.com', url: '/', cookie: `_fbp=fb.1.${OLD}.1234567890.AQcAAQMC` },
  { name: '_fbp with 8-char appendix, format byte 2', host: 'www.example.com', url: '/', cookie: `_fbp=fb.1.${OLD}.1234567890.AgQAAQMC` },
  { name: '_fbp with 3-char appendix', host: 'www.example.com', url: '/', cookie: `_fbp=fb.1.${OLD}.1234567890.abc` },
  { name: '_fbp 6 parts replaced', host: 'www.example.com', url: '/', cookie: `_fbp=fb.1.${OLD}.1.2.BA` },
  { name: '_fbp 3 parts replaced', host: 'www.example.com', url: '/', cookie: `_fbp=fb.1.${OLD}` },
  { name: '_fbp non-digit time replaced', host: 'www.example.com', url: '/', cookie: '_fbp=fb.1.abc.1234567890' },
  { name: '_fbp non-digit index replaced', host: 'www.example.com', url: '/', cookie: `_fbp=fb.x.${OLD}.1234567890` },
  { name: '_fbp uppercase FB prefix replaced', host: 'www.example.com', url: '/', cookie: `_fbp=FB.1.${OLD}.1234567890` },
  { name: '_fbp empty payload replaced', host: 'www.example.com', url: '/', cookie: `_fbp=fb.1.${OLD}.` },
  { name: '_fbp seconds timestamp accepted', host: 'www.example.com', url: '/', cookie: '_fbp=fb.1.1700000000.1234567890' },
  { name: '_fbp index 0 on www host kept as is', host: 'www.example.com', url: '/', cookie: `_fbp=fb.0.${OLD}.1234567890.${APX_NO_CHANGE}` },
  { name: '_fbp non-numeric payload accepted', host: 'www.example.com', url: '/', cookie: `_fbp=fb.1.${OLD}.hello` },
  { name: '_fbp percent-encoded in Cookie header', host: 'www.example.com', url: '/', cookie: `_fbp=fb%2E1%2E${OLD}%2E42` },
  { name: '_fbp bad percent-encoding skipped', host: 'www.example.com', url: '/', cookie: `_fbp=fb.1.${OLD}.42%ZZ` },
  { name: 'duplicate _fbp in Cookie header (last wins)', host: 'www.example.com', url: '/', cookie: `_fbp=fb.1.${OLD}.111; _fbp=fb.2.${OLD}.222` },
  { name: '_fbp quoted value replaced', host: 'www.example.com', url: '/', cookie: `_fbp="fb.1.${OLD}.1234567890"` },
  { name: 'existing _fbc same fbclid kept', host: 'www.example.com', url: '/p?fbclid=SAME', cookie: `_fbp=fb.1.${OLD}.1.${APX_NO_CHANGE}; _fbc=fb.1.${OLD}.SAME.${APX_NO_CHANGE}` },
  { name: 'existing 4-part _fbc same fbclid: appendix added', host: 'www.example.com', url: '/p?fbclid=SAME', cookie: `_fbp=fb.1.${OLD}.1.${APX_NO_CHANGE}; _fbc=fb.1.${OLD}.SAME` },
  { name: 'existing _fbc different fbclid replaced (modified)', host: 'www.example.com', url: '/p?fbclid=NEW', cookie: `_fbp=fb.1.${OLD}.1.${APX_NO_CHANGE}; _fbc=fb.1.${OLD}.OLD.${APX_NO_CHANGE}` },
  { name: 'existing 4-part _fbc different fbclid replaced', host: 'www.example.com', url: '/p?fbclid=NEW', cookie: `_fbp=fb.1.${OLD}.1.${APX_NO_CHANGE}; _fbc=fb.1.${OLD}.OLD` },
  { name: 'existing _fbc differs only in case replaced', host: 'www.example.com', url: '/p?fbclid=abc', cookie: `_fbp=fb.1.${OLD}.1.${APX_NO_CHANGE}; _fbc=fb.1.${OLD}.ABC.${APX_NO_CHANGE}` },
  { name: 'existing _fbc kept when no fbclid', host: 'www.example.com', url: '/', cookie: `_fbp=fb.1.${OLD}.1.${APX_NO_CHANGE}; _fbc=fb.1.${OLD}.KEEP.${APX_NO_CHANGE}` },
  { name: 'invalid _fbc, no fbclid: dropped, not cleared', host: 'www.example.com', url: '/', cookie: `_fbp=fb.1.${OLD}.1.${APX_NO_CHANGE}; _fbc=garbage` },
  { name: 'invalid _fbc with fbclid: net new', host: 'www.example.com', url: '/p?fbclid=NEW', cookie: `_fbp=fb.1.${OLD}.1.${APX_NO_CHANGE}; _fbc=fb.1.x.OLD` },
  { name: '_fbc same fbclid from Referer kept', host: 'www.example.com', url: '/p', referer: 'https://www.example.com/?fbclid=SAME', cookie: `_fbp=fb.1.${OLD}.1.${APX_NO_CHANGE}; _fbc=fb.1.${OLD}.SAME.${APX_NO_CHANGE}` },
  { name: 'Math.random 0 gives payload 0', host: 'www.example.com', url: '/', random: 0 },
  { name: 'Math.random near 1 gives 2147483646', host: 'www.example.com', url: '/', random: 0.9999999999 },
  { name: 'other clock', host: 'www.example.com', url: '/p?fbclid=T', now: 1732752000123 },
  { name: 'public XFF first entry used', host: 'www.example.com', url: '/', xff: '203.0.113.9, 10.0.0.1', remote: '10.0.0.2' },
  { name: 'private XFF falls back to socket', host: 'www.example.com', url: '/', xff: '10.0.0.1, 203.0.113.9', remote: '198.51.100.4' },
  { name: 'private socket only: no client ip', host: 'www.example.com', url: '/', remote: '192.168.1.10' },
  { name: 'IPv6 request preferred', host: 'www.example.com', url: '/', xff: '2001:db8:85a3::8a2e:370:7334', remote: '198.51.100.4' },
  { name: '_fbi cookie IPv4 with token vs public request IPv4', host: 'www.example.com', url: '/', remote: '198.51.100.4', cookie: `_fbi=203.0.113.50.${APX_NO_CHANGE}` },
  { name: '_fbi cookie IPv4 without token', host: 'www.example.com', url: '/', remote: '10.0.0.3', cookie: '_fbi=203.0.113.50' },
  { name: 'IPv4 _fbi loses to IPv6 request', host: 'www.example.com', url: '/', remote: '2001:db8::5', cookie: '_fbi=203.0.113.50' },
  { name: 'IPv4-mapped IPv6 socket', host: 'www.example.com', url: '/', remote: '::ffff:203.0.113.8' },
  { name: 'HTTPS event_source_url', host: 'www.example.com', url: '/thank-you?order=1', encrypted: true },
];

function makeReq(c) {
  const headers = { host: c.host };
  if (c.referer !== undefined) headers.referer = c.referer;
  if (c.cookie !== undefined) headers.cookie = c.cookie;
  if (c.xff !== undefined) headers['x-forwarded-for'] = c.xff;
  return { headers, url: c.url, socket: { remoteAddress: c.remote || null, encrypted: !!c.encrypted } };
}

function builderFor(c) {
  if (c.domains) return new ParamBuilder(c.domains);
  if (c.resolver) return new ParamBuilder({ resolveETLDPlus1: () => c.resolver });
  return new ParamBuilder();
}

function runCookieRequest(c, cookieHeader, laterMs) {
  clock.now = (c.now !== undefined ? c.now : T0) + (laterMs || 0);
  clock.random = c.random !== undefined ? c.random : RANDOM;
  logs = [];
  const pb = builderFor(c);
  const req = makeReq(Object.assign({}, c, cookieHeader !== undefined ? { cookie: cookieHeader } : {}));
  const out = {};
  try {
    const set = pb.processRequestFromContext(req);
    const randPart = String(Math.floor(clock.random * 2147483647));
    out.set_cookies = set.map((s) => {
      const o = { name: s.name, value: s.value, domain: s.domain, max_age: s.maxAge };
      const parts = s.value.split('.');
      if (s.name === '_fbp' && parts[2] === String(clock.now) && parts[3] === randPart) {
        o.variable = { time: 'Date.now()', random: 'floor(Math.random()*2147483647)' };
      } else if (s.name === '_fbc' && parts[2] === String(clock.now)) {
        o.variable = { time: 'Date.now()' };
      }
      return o;
    });
    out.fbc = pb.getFbc();
    out.fbp = pb.getFbp();
    out.client_ip_address = pb.getClientIpAddress();
    out.event_source_url = pb.getEventSourceUrl();
    out.referrer_url = pb.getReferrerUrl();
  } catch (e) {
    out.error = errText(e);
  }
  if (logs.length) out.log = logs.slice();
  clock.now = T0;
  clock.random = RANDOM;
  return out;
}

// ---------------------------------------------------------------------------

function main() {
  const outDir = path.join(__dirname, '..', 'vectors');
  fs.mkdirSync(outDir, { recursive: true });

  const norm = [JSON.stringify(header({
    clock_ms: CLOCK_MS,
    clock_note: 'global Date and Date.now frozen at clock_ms (PB date_of_birth accepts years up to the current year + 1)',
    sdk_path: 'new UserData(); <plural setter> = [input]; normalize(); ServerSideUtils.toSHA256 wrapped to capture the pre-image',
    pb_path: 'new ParamBuilder().getNormalizedAndHashedPII(input, <pb data type>); sha256_main wrapped to capture the pre-image',
    pb_data_types: PB_TYPE,
    docs_note: 'docs = tagway literal reading of meta-capi.md section 5, not Meta code',
  }))];
  let count = 0;
  for (const field of Object.keys(INPUTS)) {
    for (const input of INPUTS[field]) {
      norm.push(JSON.stringify({
        field, input,
        sdk: runSDK(field, input),
        pb: runPB(field, input),
        docs: { normalized: docsRule(field, input) },
      }));
      count++;
    }
  }
  for (const field of Object.keys(SDK_SUB)) {
    for (const input of SDK_SUB[field]) {
      norm.push(JSON.stringify({ field, input, sdk: runSDK(field, input), pb: { unsupported: true } }));
      count++;
    }
  }
  fs.writeFileSync(path.join(outDir, 'normalize.jsonl'), norm.join('\n') + '\n');

  const cookies = [JSON.stringify(header({
    clock_ms: T0,
    random: RANDOM,
    random_part: Math.floor(RANDOM * 2147483647),
    stub_note: 'global Date/Date.now return clock_ms (or the case `now`); Math.random returns `random` (or the case `random`); a new _fbp payload is floor(Math.random()*2147483647)',
    pb_path: 'new ParamBuilder(domains | resolver | nothing).processRequestFromContext({headers:{host,referer,cookie,x-forwarded-for}, url, socket:{remoteAddress, encrypted}})',
  }))];
  for (const c of CASES) {
    const inp = { host: c.host, url: c.url };
    for (const k of ['referer', 'cookie', 'xff', 'remote', 'encrypted', 'domains', 'resolver', 'now', 'random']) {
      if (c[k] !== undefined) inp[k] = c[k];
    }
    const line = { name: c.name, input: inp, output: runCookieRequest(c) };
    if (c.then && line.output.set_cookies) {
      // Second request from the same browser one minute later, sending back
      // what the first one set.
      const header2 = line.output.set_cookies.map((s) => `${s.name}=${s.value}`).join('; ');
      line.then = { cookie: header2, later_ms: 60000, output: runCookieRequest(c, header2, 60000) };
    }
    cookies.push(JSON.stringify(line));
  }
  fs.writeFileSync(path.join(outDir, 'cookies.jsonl'), cookies.join('\n') + '\n');
  process.stdout.write(`normalize.jsonl: ${count} vectors; cookies.jsonl: ${CASES.length} cases\n`);
}

main();
