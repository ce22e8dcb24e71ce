/*
 * Trackhouse browser tracker, served by the collector at /tracker.js.
 *
 * Speaks OpenPanel's wire protocol (POST {apiUrl}/track, one request per event, fetch with
 * keepalive) and OpenPanel's script-tag interface, so a page that uses op1.js can switch by
 * changing the script URL:
 *
 *   <script>
 *     window.op = window.op || function () { (window.op.q = window.op.q || []).push(arguments) };
 *     op('init', { clientId: '...', apiUrl: 'https://collector.example', trackScreenViews: true,
 *                  trackOutgoingLinks: true, trackAttributes: true });
 *   </script>
 *   <script src="https://collector.example/tracker.js" defer></script>
 *
 * Calls made before the script loads (OpenPanel's Proxy stub or the plain stub above) are
 * replayed once it does. Every event carries __eventId, so a retried request never counts
 * twice. No cookies, no storage: the collector derives the device id.
 *
 * Methods: init, track, screenView, identify, increment, decrement, revenue,
 * setGlobalProperties, clear, ready.
 *
 * init options: clientId (required), apiUrl (default: where this script came from),
 * trackScreenViews (page views, SPA route changes included), trackHashChanges (hash routes
 * count as pages), trackOutgoingLinks (link_out events), trackAttributes (clicks on
 * [data-track="name"] elements, their other data-* attributes as properties),
 * respectPrivacySignals (default true: send nothing when the browser says Do Not Track or
 * Global Privacy Control; false ignores both), disabled (hold events until op('ready'), for
 * consent banners), filter(message).
 *
 * A visitor (the site's owner, say) excludes their own browser with
 * localStorage.trackhouse_ignore = 'true' (checked before every request, like Plausible's
 * plausible_ignore); removing the item counts them again.
 */
(function (win, doc) {
  'use strict';

  var SDK_NAME = 'trackhouse-web';
  var SDK_VERSION = '1.0.0';
  var MAX_RETRIES = 3;
  var RETRY_DELAY_MS = 500;

  var existing = win.op;
  // Loaded twice: keep the first instance. (typeof: OpenPanel's Proxy stub answers any
  // property with a function.)
  if (existing && typeof existing.trackhouse === 'string') return;
  var thisScript = doc.currentScript; // only set while this file first runs

  var options = null; // set by init
  var blocked = false; // the visitor asked not to be tracked (DNT / GPC): never send
  var held = null; // init({disabled: true}): messages wait here until ready()
  var MAX_HELD = 100;
  var globals = {};
  var profileId;
  var lastScreenViewUrl;
  var pending = []; // calls made before init
  var debounceTimer;

  function hex(bytes) {
    var out = '';
    for (var i = 0; i < bytes.length; i++) out += (bytes[i] + 0x100).toString(16).slice(1);
    return out;
  }

  // A random UUID v4; crypto.randomUUID exists only in secure contexts.
  function eventId() {
    var c = win.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    var b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (var i = 0; i < 16; i++) b[i] = (Math.random() * 256) | 0;
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    var h = hex(b);
    return [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20)].join('-');
  }

  function assign(target) {
    for (var i = 1; i < arguments.length; i++) {
      var src = arguments[i];
      if (src) for (var k in src) if (Object.prototype.hasOwnProperty.call(src, k)) target[k] = src[k];
    }
    return target;
  }

  // localStorage may be missing or throw (storage disabled, sandboxed frames): then no flag.
  function ignoredBrowser() {
    try {
      return win.localStorage.getItem('trackhouse_ignore') === 'true';
    } catch (e) {
      return false;
    }
  }

  function privacySignal() {
    var nav = win.navigator || {};
    var dnt = nav.doNotTrack || win.doNotTrack || nav.msDoNotTrack;
    return dnt === '1' || dnt === 'yes' || nav.globalPrivacyControl === true;
  }

  function post(body, attempt) {
    var headers = {
      'content-type': 'application/json',
      'openpanel-client-id': options.clientId,
      'openpanel-sdk-name': SDK_NAME,
      'openpanel-sdk-version': SDK_VERSION,
    };
    function retry() {
      if (attempt < MAX_RETRIES) {
        setTimeout(function () { post(body, attempt + 1); }, RETRY_DELAY_MS * Math.pow(2, attempt));
      }
    }
    try {
      fetch(options.apiUrl + '/track', {
        method: 'POST',
        headers: headers,
        body: body,
        keepalive: true,
        credentials: 'omit',
      }).then(function (res) {
        // 4xx other than 429 will not get better by asking again (401 = bad client id).
        if (res.status >= 500 || res.status === 429) retry();
      }, retry);
    } catch (e) {
      retry();
    }
  }

  function send(type, payload) {
    if (!options || blocked || ignoredBrowser()) return;
    var message = { type: type, payload: payload };
    if (options.filter && !options.filter(message)) return;
    if (held) {
      if (held.length < MAX_HELD) held.push(JSON.stringify(message));
      return;
    }
    post(JSON.stringify(message), 0);
  }

  function track(name, properties) {
    if (!name) return;
    var props = assign({}, globals, properties);
    var payload = {
      name: String(name),
      properties: assign(props, {
        __eventId: eventId(),
        __timestamp: new Date().toISOString(),
        __path: props.__path || win.location.href,
        __title: props.__title || doc.title,
        __referrer: props.__referrer !== undefined ? props.__referrer : doc.referrer,
      }),
    };
    var pid = props.profileId !== undefined ? props.profileId : profileId;
    delete payload.properties.profileId;
    if (pid !== undefined) payload.profileId = pid;
    send('track', payload);
  }

  // screenView(), screenView(props), screenView(path, props): like OpenPanel, a page view is
  // sent once per URL, so a replaceState to the same URL does not count again.
  function screenView(pathOrProps, props) {
    var url = win.location.href;
    if (typeof pathOrProps === 'string') url = pathOrProps;
    else props = pathOrProps;
    if (url === lastScreenViewUrl) return;
    lastScreenViewUrl = url;
    track('screen_view', assign({}, props, { __path: url }));
  }

  function profileCall(type, fields) {
    var payload = assign({}, fields);
    if (payload.profileId === undefined) payload.profileId = profileId;
    if (payload.profileId === undefined) return; // the protocol requires a profile
    send(type, payload);
  }

  function identify(fields) {
    if (!fields || fields.profileId === undefined || fields.profileId === null) return;
    profileId = fields.profileId;
    if (Object.keys(fields).length > 1) {
      profileCall('identify', assign({}, fields, { properties: assign({}, globals, fields.properties) }));
    }
  }

  function debouncedScreenView() {
    clearTimeout(debounceTimer);
    debounceTimer = setTimeout(function () { screenView(); }, 50);
  }

  function watchHistory() {
    var history = win.history;
    ['pushState', 'replaceState'].forEach(function (method) {
      var original = history[method];
      if (!original) return;
      history[method] = function () {
        var result = original.apply(this, arguments);
        debouncedScreenView();
        return result;
      };
    });
    win.addEventListener('popstate', debouncedScreenView);
    if (options.trackHashChanges) win.addEventListener('hashchange', debouncedScreenView);
  }

  function closest(el, selector) {
    while (el && el.nodeType !== 1) el = el.parentNode;
    return el && el.closest ? el.closest(selector) : null;
  }

  function onClick(event) {
    var link = closest(event.target, 'a[href]');
    if (options.trackOutgoingLinks && link) {
      var href = link.getAttribute('href') || '';
      if (/^https?:/i.test(href) && link.hostname !== win.location.hostname) {
        track('link_out', { href: link.href, text: (link.innerText || link.title || '').trim() });
      }
    }
    var tagged = options.trackAttributes && closest(event.target, '[data-track]');
    if (tagged) {
      var props = {};
      for (var i = 0; i < tagged.attributes.length; i++) {
        var attr = tagged.attributes[i];
        if (attr.name.indexOf('data-') === 0 && attr.name !== 'data-track') {
          var key = attr.name.slice(5).replace(/[-_]([a-z0-9])/g, function (_, c) {
            return c.toUpperCase();
          });
          props[key] = attr.value;
        }
      }
      track(tagged.getAttribute('data-track'), props);
    }
  }

  function init(opts) {
    if (options) return; // init runs once
    if (!opts || !opts.clientId) {
      if (win.console) console.warn('Trackhouse: init needs a clientId');
      return;
    }
    // Without apiUrl, events go to the server that served this script.
    var defaultApi = thisScript && thisScript.src
      ? thisScript.src.replace(/\/[^/]*$/, '')
      : win.location.origin;
    options = assign({}, opts);
    options.apiUrl = String(options.apiUrl || defaultApi).replace(/\/+$/, '');
    blocked = options.respectPrivacySignals !== false && privacySignal();
    held = options.disabled ? [] : null;
    if (options.trackScreenViews) {
      watchHistory();
      screenView();
    }
    if (options.trackOutgoingLinks || options.trackAttributes) {
      doc.addEventListener('click', onClick, true);
    }
    var queued = pending;
    pending = [];
    queued.forEach(function (call) { dispatch(call); });
  }

  var methods = {
    init: init,
    track: track,
    screenView: screenView,
    identify: identify,
    increment: function (fields) { profileCall('increment', fields); },
    decrement: function (fields) { profileCall('decrement', fields); },
    revenue: function (amount, properties) {
      track('revenue', assign({}, properties, { __revenue: amount }));
    },
    setGlobalProperties: function (properties) { assign(globals, properties); },
    clear: function () {
      profileId = undefined;
      globals = {};
    },
    // OpenPanel's consent flow: init with disabled: true (events wait, the page view too),
    // call ready() once the visitor agrees and they are sent.
    ready: function () {
      var waiting = held || [];
      held = null;
      waiting.forEach(function (body) { post(body, 0); });
    },
  };

  function dispatch(call) {
    var name = call[0];
    var method = methods[name];
    if (!method) {
      if (win.console) console.warn('Trackhouse: unknown method ' + name);
      return;
    }
    if (!options && name !== 'init') {
      pending.push(call);
      return;
    }
    method.apply(null, call.slice(1));
  }

  function op() {
    dispatch([].slice.call(arguments));
  }
  Object.keys(methods).forEach(function (name) {
    op[name] = function () {
      dispatch([name].concat([].slice.call(arguments)));
    };
  });
  op.trackhouse = SDK_VERSION;

  // Replay the stub's queue, init first whatever its position.
  var queue = [];
  try {
    queue = (existing && existing.q) || [];
  } catch (e) {
    queue = [];
  }
  queue = [].map.call(queue, function (call) { return [].slice.call(call); });
  win.op = op;
  queue.filter(function (c) { return c[0] === 'init'; }).forEach(dispatch);
  queue.filter(function (c) { return c[0] !== 'init'; }).forEach(dispatch);
})(window, document);
