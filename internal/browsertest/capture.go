package browsertest

// ConsoleHook is a script element for the start of a test page's head. It
// records in the page what the page prints (console.error, warn, info, log,
// debug) and throws (uncaught errors and rejections, elements that failed
// to load), for an engine whose protocol cannot report the console: W3C
// WebDriver (WebKit) has no console. Entries are kept in sessionStorage, so
// that those of a page survive its same-origin navigations, through the
// storage and JSON functions as they were before the page's scripts ran.
// The other engines' consoles come from their protocols; the hook is
// harmless there.
const ConsoleHook = `<script>(function () {
  var K = '__browsertest_console', W = window, kept = [], ss, get, set, del, stringify = JSON.stringify, parse = JSON.parse;
  function str(v) { return stringify(v, function (k) { return this[k] }) } // no toJSON
  try { ss = W.sessionStorage; get = Storage.prototype.getItem; set = Storage.prototype.setItem; del = Storage.prototype.removeItem } catch (e) {}
  function text(a) {
    try { return typeof a == 'string' ? a : a instanceof Error ? a + (a.stack ? ' ' + a.stack : '') : str(a) } catch (e) { return String(a) }
  }
  function add(level, args) {
    var t = [];
    for (var i = 0; i < args.length; i++) t.push(text(args[i]));
    var m = { level: level, text: t.join(' ') };
    try { var l = parse(get.call(ss, K) || '[]'); l.push(m); set.call(ss, K, str(l)); return } catch (e) {}
    kept.push(m);
  }
  ['error', 'warn', 'info', 'log', 'debug'].forEach(function (level) {
    var orig = console[level];
    console[level] = function () {
      add(level, level == 'error' ? ['console.error:'].concat([].slice.call(arguments)) : arguments);
      return orig.apply(this, arguments);
    };
  });
  W.addEventListener('error', function (e) {
    var el = e.target;
    add('error', [e.error || e.message ? 'uncaught exception: ' + text(e.error || e.message) : 'failed to load ' + (el && (el.src || el.href))]);
  }, true);
  W.addEventListener('unhandledrejection', function (e) { add('error', ['unhandled rejection: ' + text(e.reason)]) });
  W.__browsertest_stringify = stringify;
  W.__browsertest_console = function () {
    var l = kept;
    kept = [];
    try { l = parse(get.call(ss, K) || '[]').concat(l); del.call(ss, K) } catch (e) {}
    return str(l);
  };
})();</script>`
